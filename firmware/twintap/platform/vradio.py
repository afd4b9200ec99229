# The virtual board's BLE radio: the subset of MicroPython's `bluetooth.BLE` that the Tap link
# uses (active, config gap_name/mtu/mac, irq, gap_advertise, gap_disconnect,
# gatts_register_services, gatts_set_buffer, gatts_read, gatts_write, gatts_notify), with the
# same IRQ events and GATT semantics, over a unix-domain socket to emulated centrals on the
# host. The socket protocol and the ATT rules it enforces are described in proto/vble.py.
#   - advertising stops when a central connects (as NimBLE does): one central at a time
#   - MTU 23 until the central exchanges it; effective MTU = min(central's, config mtu)
#   - a write longer than MTU-3 is refused (ATT error 0x0D) and never reaches the board
#   - a written value is kept in a buffer of 20 bytes unless gatts_set_buffer says more
#     (longer values are cut, as the stack does)
#   - gatts_notify raises OSError for a value longer than MTU-3 or a connection that is gone
# IRQs are called from the radio's own asyncio tasks (MicroPython's scheduled-IRQ model).
# Heap: no import of proto/vble.py (the host's side of the socket protocol: its record
# layout and codes are repeated here as const()), a connection is a list, UUIDs are strings.
import asyncio
import os
import socket
import struct
from asyncio import core

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)
_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_DEFAULT_BUFFER = const(20)
_EINVAL = const(22)
_ENOMEM = const(12)
_ENOTCONN = const(107)
_OUT_MAX = const(16384)  # bytes queued to a central that does not read: "out of buffers"
# proto/vble.py: record ops, ATT error codes, limits
_SCAN = const(0x01)
_CONNECT = const(0x02)
_MTU = const(0x03)
_DISCOVER = const(0x04)
_WRITE = const(0x05)
_ADV = const(0x81)
_CONNECTED = const(0x82)
_REFUSED = const(0x83)
_MTU_EXCHANGED = const(0x84)
_SERVICES = const(0x85)
_WRITTEN = const(0x86)
_ERROR = const(0x87)
_NOTIFY = const(0x88)
_DISCONNECTED = const(0x89)
_ATT_INVALID_HANDLE = const(0x01)
_ATT_WRITE_NOT_PERMITTED = const(0x03)
_ATT_REQUEST_NOT_SUPPORTED = const(0x06)
_ATT_INVALID_LENGTH = const(0x0D)
_MIN_MTU = const(23)
_MAX_MTU = const(517)
_MAX_RECORD = const(1024)
# a connected central: [stream, conn handle, address, MTU, MTU exchanged]
_ST = const(0)
_HANDLE = const(1)
_ADDR = const(2)
_CMTU = const(3)
_EXCHANGED = const(4)

# bluetooth.UUID for 128-bit UUIDs given as text (all the Tap services use): the text itself
UUID = str


def _rec(op, body=b""):
    # one record: length u16 | op u8 | body (proto/vble.py record())
    return struct.pack(">HB", len(body) + 1, op) + bytes(body)


class Radio:
    def __init__(self, path, mac=None):
        self.path = path
        self.mac = bytes(mac or os.urandom(6))[:6]
        self._active = False
        self._irq = None
        self._name = "MPY NIMBLE"
        self._mtu = 256
        self._chars = {}  # value handle -> [value bytes, buffer size, append, flags]
        self._table = b""  # SERVICES body
        self._adv = None  # (adv_data, resp_data) while advertising
        self._centrals = {}  # conn handle -> [stream, handle, addr, mtu, exchanged]
        self._next = 0
        self._sock = None
        self._task = None

    # -- bluetooth.BLE ------------------------------------------------------------------------
    def active(self, on=None):
        if on is None:
            return self._active
        if on and not self._active:
            try:
                os.remove(self.path)  # a socket left by an earlier boot
            except OSError:
                pass
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(struct.pack("H", socket.AF_UNIX) + self.path.encode() + b"\0")
            s.listen(4)
            s.setblocking(False)
            self._sock = s
            self._task = asyncio.create_task(self._listen())
        elif not on and self._active:
            self._adv = None
            for c in list(self._centrals.values()):
                try:
                    c[_ST].s.close()
                except OSError:
                    pass
            self._centrals = {}
            if self._task:
                self._task.cancel()
            self._sock.close()
            try:
                os.remove(self.path)
            except OSError:
                pass
        self._active = bool(on)
        return self._active

    def config(self, *args, **kw):
        if args:
            name = args[0]
            if name == "mac":
                return (0, self.mac)
            if name == "gap_name":
                return self._name.encode()
            if name == "mtu":
                return self._mtu
            raise ValueError("unknown config param")
        if "gap_name" in kw:
            self._name = str(kw["gap_name"])
        if "mtu" in kw:
            mtu = int(kw["mtu"])
            if mtu < _MIN_MTU or mtu > _MAX_MTU:
                raise ValueError("mtu")
            self._mtu = mtu

    def irq(self, handler):
        self._irq = handler

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        if not self._active:
            raise OSError(_EINVAL)
        if interval_us is None:
            self._adv = None
        elif connectable:
            self._adv = (bytes(adv_data or b""), bytes(resp_data or b""))

    def gap_disconnect(self, conn):
        c = self._centrals.pop(conn, None)
        if c is None:
            return False
        # the central closes its end on DISCONNECTED; the serving task then ends
        c[_ST].write(_rec(_DISCONNECTED, b"\x16"))  # 0x16: local host
        if self._irq:
            self._irq(_IRQ_CENTRAL_DISCONNECT, (conn, 0, c[_ADDR]))
        return True

    def gatts_register_services(self, services):
        if not self._active:
            raise OSError(_EINVAL)
        self._chars = {}
        table = []
        handles = []
        h = 0
        for svc_uuid, chars in services:
            h += 1  # the service declaration
            hs = []
            for ch in chars:
                flags = ch[1]
                h += 2  # declaration, value
                self._chars[h] = [b"", _DEFAULT_BUFFER, False, flags]
                hs.append(h)
                table.append(
                    bytes.fromhex(str(svc_uuid).replace("-", ""))
                    + bytes.fromhex(str(ch[0]).replace("-", ""))
                    + struct.pack(">HH", h, flags)
                )
                if flags & 0x0030:
                    h += 1  # the CCCD of a notify/indicate characteristic
            handles.append(tuple(hs))
        self._table = b"".join(table)
        return tuple(handles)

    def gatts_set_buffer(self, handle, size, append=False):
        ch = self._chars.get(handle)
        if ch is None:
            raise ValueError("invalid handle")
        ch[1] = size
        ch[2] = append

    def gatts_read(self, handle):
        ch = self._chars.get(handle)
        if ch is None:
            raise ValueError("invalid handle")
        v = ch[0]
        if ch[2]:
            ch[0] = b""
        return v

    def gatts_write(self, handle, data, send_update=False):
        ch = self._chars.get(handle)
        if ch is None:
            raise ValueError("invalid handle")
        ch[0] = bytes(data)
        if send_update:
            for conn in self._centrals:
                self.gatts_notify(conn, handle)

    def gatts_notify(self, conn, handle, data=None):
        c = self._centrals.get(conn)
        if c is None:
            raise OSError(_ENOTCONN)
        ch = self._chars.get(handle)
        if ch is None:
            raise ValueError("invalid handle")
        v = ch[0] if data is None else bytes(data)
        if len(v) > c[_CMTU] - 3:
            raise OSError(_EINVAL)
        st = c[_ST]
        if len(st.out_buf) > _OUT_MAX:
            raise OSError(_ENOMEM)
        st.write(_rec(_NOTIFY, struct.pack(">H", handle) + v))

    # -- the socket side ------------------------------------------------------------------------
    async def _listen(self):
        s = self._sock
        while True:
            yield core._io_queue.queue_read(s)
            try:
                c, _ = s.accept()
            except OSError:
                continue
            c.setblocking(False)
            asyncio.create_task(self._serve(asyncio.StreamReader(c)))

    async def _serve(self, st):
        c = None
        try:
            while True:
                n = struct.unpack(">H", await st.readexactly(2))[0]
                if n < 1 or n > _MAX_RECORD:
                    break
                body = await st.readexactly(n)
                op = body[0]
                body = body[1:]
                if c is None:
                    if op == _SCAN:
                        adv = self._adv
                        out = b"" if adv is None else bytes((len(adv[0]),)) + adv[0] + adv[1]
                        st.write(_rec(_ADV, out))
                        break
                    if op != _CONNECT or len(body) != 7:
                        st.write(_rec(_REFUSED, b"connect first"))
                        break
                    if self._adv is None:
                        st.write(_rec(_REFUSED, b"not advertising"))
                        break
                    self._adv = None  # a connection stops advertising
                    self._next += 1
                    h = self._next
                    c = [st, h, body[1:7], _MIN_MTU, False]
                    self._centrals[h] = c
                    st.write(_rec(_CONNECTED, struct.pack(">H", h) + self.mac))
                    if self._irq:
                        self._irq(_IRQ_CENTRAL_CONNECT, (h, body[0], memoryview(c[_ADDR])))
                elif self._centrals.get(c[_HANDLE]) is not c:
                    break  # the board disconnected it
                elif op == _MTU:
                    if c[_EXCHANGED] or len(body) != 2:
                        st.write(_rec(_ERROR, bytes((_ATT_REQUEST_NOT_SUPPORTED,))))
                    else:
                        c[_EXCHANGED] = True
                        mtu = c[_CMTU] = max(_MIN_MTU, min(body[0] << 8 | body[1], self._mtu))
                        st.write(_rec(_MTU_EXCHANGED, struct.pack(">H", mtu)))
                        if self._irq:
                            self._irq(_IRQ_MTU_EXCHANGED, (c[_HANDLE], mtu))
                elif op == _DISCOVER:
                    st.write(_rec(_SERVICES, self._table))
                elif op == _WRITE:  # response u8 | handle u16 | value
                    request = body[0] == 1
                    handle = body[1] << 8 | body[2]
                    value = body[3:]
                    ch = self._chars.get(handle)
                    code = 0
                    if ch is None:
                        code = _ATT_INVALID_HANDLE
                    elif not ch[3] & (_FLAG_WRITE if request else _FLAG_WRITE_NO_RESPONSE):
                        code = _ATT_WRITE_NOT_PERMITTED
                    elif len(value) > c[_CMTU] - 3:
                        code = _ATT_INVALID_LENGTH
                    if code:
                        st.write(_rec(_ERROR, bytes((code,)) + b"write refused"))
                    else:
                        if ch[2]:
                            ch[0] = (ch[0] + value)[: ch[1]]
                        else:
                            ch[0] = value[: ch[1]]
                        if self._irq:
                            self._irq(_IRQ_GATTS_WRITE, (c[_HANDLE], handle))
                        if request:
                            st.write(_rec(_WRITTEN, struct.pack(">H", handle)))
                else:  # DISCONNECT, or anything else
                    break
                await st.drain()
        except (EOFError, OSError, ValueError, IndexError):
            pass
        if c is not None and self._centrals.get(c[_HANDLE]) is c:
            del self._centrals[c[_HANDLE]]
            if self._irq:
                self._irq(_IRQ_CENTRAL_DISCONNECT, (c[_HANDLE], 0, memoryview(c[_ADDR])))
        try:
            await st.drain()
        except OSError:
            pass
        try:
            st.s.close()
        except OSError:
            pass
