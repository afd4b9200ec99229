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
import asyncio
import os
import socket
import struct
from asyncio import core

from ..proto import vble

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_MTU_EXCHANGED = 21
_FLAG_WRITE_NO_RESPONSE = 0x0004
_FLAG_WRITE = 0x0008
_DEFAULT_BUFFER = 20
_EINVAL = 22
_ENOMEM = 12
_ENOTCONN = 107
_OUT_MAX = 16384  # bytes queued to a central that does not read: "out of buffers"


class UUID:
    # bluetooth.UUID for 128-bit UUIDs given as text (all the Tap services use)
    def __init__(self, value):
        self.text = str(value).lower()

    def __eq__(self, other):
        return isinstance(other, UUID) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    def __str__(self):
        return "UUID('%s')" % self.text


class _Central:
    def __init__(self, stream, handle, addr):
        self.stream = stream
        self.handle = handle
        self.addr = addr
        self.mtu = vble.MIN_MTU
        self.exchanged = False


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
        self._centrals = {}  # conn handle -> _Central
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
                self._close(c.stream)
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
            if mtu < vble.MIN_MTU or mtu > vble.MAX_MTU:
                raise ValueError("mtu")
            self._mtu = mtu

    def irq(self, handler):
        self._irq = handler

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        self._need_active()
        if interval_us is None:
            self._adv = None
        elif connectable:
            self._adv = (bytes(adv_data or b""), bytes(resp_data or b""))

    def gap_disconnect(self, conn):
        c = self._centrals.pop(conn, None)
        if c is None:
            return False
        # the central closes its end on DISCONNECTED; the serving task then ends
        c.stream.write(vble.record(vble.DISCONNECTED, b"\x16"))  # 0x16: local host
        self._call(_IRQ_CENTRAL_DISCONNECT, (conn, 0, c.addr))
        return True

    def gatts_register_services(self, services):
        self._need_active()
        self._chars = {}
        table = []
        handles = []
        h = 0
        for svc_uuid, chars in services:
            h += 1  # the service declaration
            hs = []
            for ch in chars:
                ch_uuid, flags = ch[0], ch[1]
                h += 2  # declaration, value
                self._chars[h] = [b"", _DEFAULT_BUFFER, False, flags]
                hs.append(h)
                table.append(
                    vble.uuid_bytes(svc_uuid.text) + vble.uuid_bytes(ch_uuid.text)
                    + struct.pack(">HH", h, flags)
                )
                if flags & 0x0030:
                    h += 1  # the CCCD of a notify/indicate characteristic
            handles.append(tuple(hs))
        self._table = b"".join(table)
        return tuple(handles)

    def gatts_set_buffer(self, handle, size, append=False):
        ch = self._char(handle)
        ch[1] = size
        ch[2] = append

    def gatts_read(self, handle):
        ch = self._char(handle)
        v = ch[0]
        if ch[2]:
            ch[0] = b""
        return v

    def gatts_write(self, handle, data, send_update=False):
        ch = self._char(handle)
        ch[0] = bytes(data)
        if send_update:
            for conn in self._centrals:
                self.gatts_notify(conn, handle)

    def gatts_notify(self, conn, handle, data=None):
        c = self._centrals.get(conn)
        if c is None:
            raise OSError(_ENOTCONN)
        ch = self._char(handle)
        v = ch[0] if data is None else bytes(data)
        if len(v) > c.mtu - 3:
            raise OSError(_EINVAL)
        if len(c.stream.out_buf) > _OUT_MAX:
            raise OSError(_ENOMEM)
        c.stream.write(vble.record(vble.NOTIFY, struct.pack(">H", handle) + v))

    # -- the socket side ------------------------------------------------------------------------
    def _need_active(self):
        if not self._active:
            raise OSError(_EINVAL)

    def _char(self, handle):
        ch = self._chars.get(handle)
        if ch is None:
            raise ValueError("invalid handle")
        return ch

    def _call(self, event, data):
        if self._irq is not None:
            self._irq(event, data)

    def _close(self, st):
        try:
            st.s.close()
        except OSError:
            pass

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
                if n < 1 or n > vble.MAX_RECORD:
                    break
                body = await st.readexactly(n)
                op = body[0]
                body = body[1:]
                if c is None:
                    if op == vble.SCAN:
                        adv = self._adv
                        out = b"" if adv is None else bytes((len(adv[0]),)) + adv[0] + adv[1]
                        st.write(vble.record(vble.ADV, out))
                        break
                    if op != vble.CONNECT or len(body) != 7:
                        st.write(vble.record(vble.REFUSED, b"connect first"))
                        break
                    if self._adv is None:
                        st.write(vble.record(vble.REFUSED, b"not advertising"))
                        break
                    self._adv = None  # a connection stops advertising
                    self._next += 1
                    c = _Central(st, self._next, body[1:7])
                    self._centrals[c.handle] = c
                    st.write(vble.record(vble.CONNECTED, struct.pack(">H", c.handle) + self.mac))
                    self._call(_IRQ_CENTRAL_CONNECT, (c.handle, body[0], memoryview(c.addr)))
                elif self._centrals.get(c.handle) is not c:
                    break  # the board disconnected it
                elif op == vble.MTU:
                    self._mtu_exchange(c, body)
                elif op == vble.DISCOVER:
                    st.write(vble.record(vble.SERVICES, self._table))
                elif op == vble.WRITE:
                    self._write(c, body)
                else:  # DISCONNECT, or anything else
                    break
                await st.drain()
        except (EOFError, OSError, ValueError, IndexError):
            pass
        if c is not None and self._centrals.get(c.handle) is c:
            del self._centrals[c.handle]
            self._call(_IRQ_CENTRAL_DISCONNECT, (c.handle, 0, memoryview(c.addr)))
        try:
            await st.drain()
        except OSError:
            pass
        self._close(st)

    def _mtu_exchange(self, c, body):
        if c.exchanged or len(body) != 2:
            c.stream.write(vble.record(vble.ERROR, bytes((vble.ATT_REQUEST_NOT_SUPPORTED,))))
            return
        c.exchanged = True
        c.mtu = max(vble.MIN_MTU, min(vble.u16(body), self._mtu))
        c.stream.write(vble.record(vble.MTU_EXCHANGED, struct.pack(">H", c.mtu)))
        self._call(_IRQ_MTU_EXCHANGED, (c.handle, c.mtu))

    def _write(self, c, body):
        request = body[0] == 1
        handle = vble.u16(body, 1)
        value = body[3:]
        ch = self._chars.get(handle)
        code = 0
        if ch is None:
            code = vble.ATT_INVALID_HANDLE
        elif not ch[3] & (_FLAG_WRITE if request else _FLAG_WRITE_NO_RESPONSE):
            code = vble.ATT_WRITE_NOT_PERMITTED
        elif len(value) > c.mtu - 3:
            code = vble.ATT_INVALID_LENGTH
        if code:
            c.stream.write(vble.record(vble.ERROR, bytes((code,)) + b"write refused"))
            return
        if ch[2]:
            ch[0] = (ch[0] + value)[: ch[1]]
        else:
            ch[0] = value[: ch[1]]
        self._call(_IRQ_GATTS_WRITE, (c.handle, handle))
        if request:
            c.stream.write(vble.record(vble.WRITTEN, struct.pack(">H", handle)))
