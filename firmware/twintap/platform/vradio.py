# The virtual board's BLE radio: the subset of MicroPython's `bluetooth.BLE` that the Tap link
# uses (active, config(gap_name=, mtu=), irq, gap_advertise, gap_disconnect,
# gatts_register_services, gatts_set_buffer, gatts_read, gatts_notify), with the same IRQ
# events, GATT semantics and errors (OSError EINVAL for an unknown handle), over a unix-domain
# socket to emulated centrals on the host. The socket protocol and the ATT rules it enforces
# are described in proto/vble.py.
#   - advertising stops when a central connects (as NimBLE does): one central at a time
#   - MTU 23 until the central exchanges it; effective MTU = min(central's, config mtu)
#   - a write longer than MTU-3 is refused (ATT error 0x0D) and never reaches the board
#   - a written value is kept in a buffer of 20 bytes unless gatts_set_buffer says more
#     (longer values are cut, as the stack does)
#   - gatts_notify raises OSError for a value longer than MTU-3 or a connection that is gone
#   - the GAP name is accepted and not served (the advertising data carries the name)
# IRQs are called from the radio's own asyncio tasks (MicroPython's scheduled-IRQ model).
# Heap (pure emulation overhead: on an ESP32 the radio is C): no import of proto/vble.py (the
# host's side of the socket protocol: its record layout and codes are repeated here as
# const()), a connection is a list, UUIDs are strings, the answers to a scan and to a
# discovery are kept as whole records, a notification goes to the socket from the caller's
# buffer.
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
# a characteristic (by value handle): [value, buffer size, append, flags]
_VALUE = const(0)
_SIZE = const(1)
_APPEND = const(2)
_FLAGS = const(3)

# bluetooth.UUID for 128-bit UUIDs given as text (all the Tap services use): the text itself
UUID = str


class Radio:
    def __init__(self, path, mac=None):
        self.path = path
        self.mac = bytes(mac or os.urandom(6))[:6]
        self._irq = None
        self._mtu = 256
        self._chars = {}  # value handle -> [value, buffer size, append, flags]
        # whole records (length u16 | op u8 | body: proto/vble.py record()), kept as sent
        self._table = None  # SERVICES: the GATT table, once registered
        self._adv = None  # ADV while advertising: adv_len u8 | adv_data | resp_data
        self._centrals = {}  # conn handle -> [stream, handle, addr, mtu, exchanged]
        self._next = 0
        self._sock = None  # the listening socket while active
        self._task = None  # ... and the task accepting on it

    # -- bluetooth.BLE ------------------------------------------------------------------------
    def active(self, on=None):
        if on is None or bool(on) == (self._sock is not None):
            return self._sock is not None
        if on:
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
            return True
        self._adv = None
        for c in self._centrals.values():
            try:
                c[_ST].s.close()
            except OSError:
                pass
        self._centrals = {}
        self._task.cancel()
        self._sock.close()
        self._sock = None
        try:
            os.remove(self.path)
        except OSError:
            pass
        return False

    def config(self, *, gap_name=None, mtu=None):
        # setting only: the link reads nothing back
        if mtu is not None:
            mtu = int(mtu)
            if mtu < _MIN_MTU or mtu > _MAX_MTU:
                raise ValueError("mtu")
            self._mtu = mtu

    def irq(self, handler):
        self._irq = handler

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        if self._sock is None:
            raise OSError(_EINVAL)
        if interval_us is None:
            self._adv = None
        elif connectable:
            adv = bytes(adv_data or b"")
            resp = bytes(resp_data or b"")
            self._adv = struct.pack(">HBB", len(adv) + len(resp) + 2, _ADV, len(adv)) + adv + resp

    def gap_disconnect(self, conn):
        c = self._centrals.pop(conn, None)
        if c is None:
            return False
        # the central closes its end on DISCONNECTED; the serving task then ends
        c[_ST].write(struct.pack(">HBB", 2, _DISCONNECTED, 0x16))  # reason 0x16: local host
        if self._irq:
            self._irq(_IRQ_CENTRAL_DISCONNECT, (conn, 0, c[_ADDR]))
        return True

    def gatts_register_services(self, services):
        if self._sock is None:
            raise OSError(_EINVAL)
        self._chars = {}
        table = b""  # 36 bytes per characteristic
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
                table += (bytes.fromhex(str(svc_uuid).replace("-", ""))
                          + bytes.fromhex(str(ch[0]).replace("-", ""))
                          + struct.pack(">HH", h, flags))
                if flags & 0x0030:
                    h += 1  # the CCCD of a notify/indicate characteristic
            handles.append(tuple(hs))
        self._table = struct.pack(">HB", len(table) + 1, _SERVICES) + table
        return tuple(handles)

    def gatts_set_buffer(self, handle, size, append=False):
        ch = self._chars.get(handle)
        if ch is None:
            raise OSError(_EINVAL)
        ch[_SIZE] = size
        ch[_APPEND] = append

    def gatts_read(self, handle):
        ch = self._chars.get(handle)
        if ch is None:
            raise OSError(_EINVAL)
        v = ch[_VALUE]
        if ch[_APPEND]:
            ch[_VALUE] = b""
        return v

    def gatts_notify(self, conn, handle, data=None):
        c = self._centrals.get(conn)
        if c is None:
            raise OSError(_ENOTCONN)
        ch = self._chars.get(handle)
        if ch is None:
            raise OSError(_EINVAL)
        if data is None:
            data = ch[_VALUE]
        if len(data) > c[_CMTU] - 3:
            raise OSError(_EINVAL)
        st = c[_ST]
        if len(st.out_buf) > _OUT_MAX:
            raise OSError(_ENOMEM)
        # the stream writes at once (or copies what the socket does not take), as the stack
        # copies a notified value: the caller's buffer is free when this returns
        st.write(struct.pack(">HBH", len(data) + 3, _NOTIFY, handle))
        st.write(data)

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
        # b: one record without its length: op u8 | body
        c = None
        try:
            while True:
                b = await st.readexactly(2)
                n = b[0] << 8 | b[1]
                if n < 1 or n > _MAX_RECORD:
                    break
                b = await st.readexactly(n)
                op = b[0]
                if c is None:
                    if op == _SCAN:
                        st.write(self._adv or struct.pack(">HB", 1, _ADV))
                        break
                    why = None
                    if op != _CONNECT or n != 8:  # addr_type u8 | addr 6 B
                        why = b"connect first"
                    elif self._adv is None:
                        why = b"not advertising"
                    if why:
                        st.write(struct.pack(">HB", len(why) + 1, _REFUSED) + why)
                        break
                    self._adv = None  # a connection stops advertising
                    self._next += 1
                    h = self._next
                    c = [st, h, b[2:8], _MIN_MTU, False]
                    self._centrals[h] = c
                    st.write(struct.pack(">HBH", 9, _CONNECTED, h) + self.mac)
                    if self._irq:
                        self._irq(_IRQ_CENTRAL_CONNECT, (h, b[1], memoryview(c[_ADDR])))
                elif self._centrals.get(c[_HANDLE]) is not c:
                    break  # the board disconnected it
                elif op == _MTU:  # client rx MTU u16
                    if c[_EXCHANGED] or n != 3:
                        st.write(struct.pack(">HBB", 2, _ERROR, _ATT_REQUEST_NOT_SUPPORTED))
                    else:
                        c[_EXCHANGED] = True
                        mtu = c[_CMTU] = max(_MIN_MTU, min(b[1] << 8 | b[2], self._mtu))
                        st.write(struct.pack(">HBH", 3, _MTU_EXCHANGED, mtu))
                        if self._irq:
                            self._irq(_IRQ_MTU_EXCHANGED, (c[_HANDLE], mtu))
                elif op == _DISCOVER:
                    st.write(self._table or struct.pack(">HB", 1, _SERVICES))
                elif op == _WRITE:  # response u8 | handle u16 | value
                    request = b[1] == 1
                    handle = b[2] << 8 | b[3]
                    ch = self._chars.get(handle)
                    code = 0
                    if ch is None:
                        code = _ATT_INVALID_HANDLE
                    elif not ch[_FLAGS] & (_FLAG_WRITE if request else _FLAG_WRITE_NO_RESPONSE):
                        code = _ATT_WRITE_NOT_PERMITTED
                    elif n - 4 > c[_CMTU] - 3:
                        code = _ATT_INVALID_LENGTH
                    if code:
                        why = b"write refused"
                        st.write(struct.pack(">HBB", len(why) + 2, _ERROR, code) + why)
                    else:
                        if ch[_APPEND]:
                            ch[_VALUE] = (ch[_VALUE] + b[4:])[: ch[_SIZE]]
                        else:
                            ch[_VALUE] = b[4 : 4 + ch[_SIZE]]
                        if self._irq:
                            self._irq(_IRQ_GATTS_WRITE, (c[_HANDLE], handle))
                        if request:
                            st.write(struct.pack(">HBH", 3, _WRITTEN, handle))
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
