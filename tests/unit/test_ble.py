# BLE: legacy chunking (proto/blechunk.py), the radio socket records (proto/vble.py) and the
# firmware's BLE link against a fake radio (links/ble.py): same file under pytest and
# micropython. Vectors: tests/vectors/ble.json.
try:
    from _runner import fw, load_vectors, run, setup_path
except ImportError:
    from ._runner import fw, load_vectors, run, setup_path

setup_path()

from twintap.proto import DecodeError, blechunk, frame, vble  # noqa: E402

V = load_vectors("ble")
ble = fw("links.ble")
dispatcher = fw("tap.dispatcher")

CONNECT = 1
DISCONNECT = 2
WRITE = 3
MTU = 21
LEGACY_H = 11
FAST_H = 21
BAD_REQUEST_PACKET = bytes.fromhex("0080900010")


def unhex(s):
    return bytes.fromhex(s) if s else b""


def raises(fn, *args):
    try:
        fn(*args)
    except DecodeError:
        return True
    raise AssertionError("no DecodeError")


# -- chunking ---------------------------------------------------------------------------------
def test_split_vectors():
    for v in V["split"]:
        f = unhex(v["frame"])
        assert "%02x" % blechunk.checksum(f) == v["checksum"], v["note"]
        assert [p.hex() for p in blechunk.split(f)] == v["packets"], v["note"]


def test_spec_examples():
    # tap-protocol.md 8: 45-byte message -> 1b + 19 B ending with de, 08 + 19 B, 00 + 8 B
    p = blechunk.split(bytes(range(45)))
    assert [x[0] for x in p] == [0x1B, 0x08, 0x00]
    assert [len(x) for x in p] == [20, 20, 9]
    assert p[0][-1] == 0xDE
    # tap-background.md 12: the hashed admin login, packets in sending order
    login = [v for v in V["split"] if v["note"].startswith("hashed")][0]
    assert login["packets"] == [
        "1a00000155affc023aff6882f56a4e0d9c5466e6",
        "0700ffff000061646d696e000000000000000000",
        "00a2da0000270204",
    ]


def test_assemble_vectors():
    a = blechunk.Assembler()
    for v in V["split"]:
        packets = [unhex(p) for p in v["packets"]]
        for p in packets[:-1]:
            assert a.feed(p) is None
        n = a.feed(packets[-1])
        assert bytes(a.buf[:n]) == unhex(v["frame"]), v["note"]
        assert not a.busy()


def test_assemble_any_piece_size():
    a = blechunk.Assembler()
    for v in V["assemble_any_piece"]:
        packets = blechunk.split(unhex(v["frame"]), v["piece"])
        assert len(packets) == 2 and len(packets[0]) == v["piece"] + 1
        assert a.feed(packets[0]) is None
        n = a.feed(packets[1])
        assert bytes(a.buf[:n]) == unhex(v["frame"])


def test_assemble_bad_then_good():
    a = blechunk.Assembler()
    good = [v for v in V["split"] if v["note"] == "GET /3//2"][0]
    for v in V["assemble_bad"]:
        packets = [unhex(p) for p in v["packets"]]
        try:
            for p in packets:
                a.feed(p)
        except DecodeError:
            pass
        else:
            raise AssertionError("accepted: " + v["note"])
        assert not a.busy(), v["note"]
        n = a.feed(unhex(good["packets"][0]))
        assert bytes(a.buf[:n]) == unhex(good["frame"]), v["note"]
    raises(a.feed, b"")


def test_half_frame_is_dropped_by_the_next_one():
    a = blechunk.Assembler()
    half = blechunk.split(bytes(range(45)))[0]
    assert a.feed(half) is None and a.busy()
    whole = blechunk.split(bytes(range(45, 90)))
    for p in whole[:-1]:
        assert a.feed(p) is None
    n = a.feed(whole[-1])
    assert bytes(a.buf[:n]) == bytes(range(45, 90))
    assert a.dropped == 1


def test_frame_limits():
    assert len(blechunk.split(bytes(254))) == 14
    try:
        blechunk.split(bytes(255))
    except ValueError:
        pass
    else:
        raise AssertionError("255-byte frame split")


# -- radio socket records -----------------------------------------------------------------------
def test_vble_records():
    r = vble.record(vble.WRITE, b"\x01\x00\x0b" + b"abc")
    assert r == b"\x00\x07\x05\x01\x00\x0babc"
    assert vble.parse(r[:4]) is None
    op, body, used = vble.parse(r + b"\x00")
    assert (op, body, used) == (vble.WRITE, b"\x01\x00\x0babc", 9)
    raises(vble.parse, b"\x00\x00")
    u = "6c7b16c2-2a5b-8c9f-cf42-d31425470e7b"
    assert vble.uuid_text(vble.uuid_bytes(u)) == u


def test_advertising_payload():
    adv, resp = blechunk.adv_payload("twintap-virtual")
    assert len(adv) <= 31 and len(resp) <= 31
    fields = dict(vble.ad_fields(adv))
    assert fields[0x01] == b"\x06"
    legacy_le = bytes(reversed(vble.uuid_bytes(blechunk.LEGACY_SERVICE)))
    assert fields[0x06] == legacy_le and legacy_le[0] == 0x7B  # little-endian
    assert fields[0x08] == b"twintap-"
    assert dict(vble.ad_fields(resp))[0x09] == b"twintap-virtual"
    assert dict(vble.ad_fields(blechunk.adv_payload("tt")[0]))[0x09] == b"tt"


# -- the firmware link against a fake radio ----------------------------------------------------
class FakeRadio:
    def __init__(self):
        self.values = {}
        self.buffers = {}
        self.notified = []
        self.adv = None
        self.kicked = []
        self.handler = None
        self.cfg = {}
        self.fail = 0

    def active(self, on=None):
        return True

    def config(self, *args, **kw):
        self.cfg.update(kw)

    def irq(self, handler):
        self.handler = handler

    def gatts_register_services(self, services):
        self.services = services
        return ((LEGACY_H,), (FAST_H,))

    def gatts_set_buffer(self, handle, size, append=False):
        self.buffers[handle] = size

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None):
        self.adv = None if interval_us is None else (adv_data, resp_data)

    def gap_disconnect(self, conn):
        self.kicked.append(conn)
        return True

    def gatts_read(self, handle):
        return self.values[handle]

    def gatts_notify(self, conn, handle, data=None):
        self.notified.append((conn, handle, bytes(data)))


def run_sync(coro):
    # the link's coroutines finish without waiting when the radio does not fail
    try:
        coro.send(None)
    except StopIteration:
        return
    raise AssertionError("the link waited")


def make_link(piece=0):
    d = dispatcher.Dispatcher()
    seen = []

    def serial(s, i, p):
        seen.append(s)
        return b"TT0102030405"

    store = {"data": b""}

    def put_data(s, i, p):
        store["data"] = bytes(p)

    d.add(3, 2, get=serial)
    d.add(1024, 36, get=lambda s, i, p: store["data"], put=put_data)
    radio = FakeRadio()
    link = ble.BleLink(radio, lambda s: s, d, "twintap-test", piece=piece)
    link.start()
    link.seen = seen
    return link, radio


def event(link, kind, data):
    link._irq(kind, data)
    run_sync(link.drain())


def connect(link, conn=1, addr=b"\x01\x02\x03\x04\x05\x06"):
    event(link, CONNECT, (conn, 0, memoryview(addr)))


def write(link, radio, conn, handle, data):
    radio.values[handle] = bytes(data)
    event(link, WRITE, (conn, handle))


def legacy_request(link, radio, apdu, conn=1):
    del radio.notified[:]
    for p in blechunk.split(apdu):
        write(link, radio, conn, LEGACY_H, p)
    return [n[2] for n in radio.notified if n[1] == LEGACY_H]


def get_apdu(obj, res):
    return frame.encode_request(frame.GET, obj, None, res)


def test_link_registers_and_advertises():
    link, radio = make_link()
    assert radio.cfg == {"gap_name": "twintap-test", "mtu": 263}
    assert radio.buffers == {LEGACY_H: 256, FAST_H: 260}
    (s1, c1), (s2, c2) = radio.services
    assert (s1, c1[0][0]) == (blechunk.LEGACY_SERVICE, blechunk.LEGACY_CHAR)
    assert (s2, c2[0][0]) == (blechunk.FAST_SERVICE, blechunk.FAST_CHAR)
    assert c1[0][1] == c2[0][1] == 0x001C  # write, write without response, notify
    assert radio.adv == blechunk.adv_payload("twintap-test")
    assert link.status()["state"] == "advertising"


def test_legacy_request_and_chunked_response():
    link, radio = make_link()
    connect(link)
    assert link.status()["state"] == "connected"
    got = legacy_request(link, radio, get_apdu(3, 2))
    assert got == blechunk.split(frame.encode_response(0x45, b"TT0102030405"))
    assert link.seen[0].link == "ble#1" and link.seen[0].peer == "ble:01:02:03:04:05:06"
    data = bytes(range(240))
    put = frame.encode_request(frame.PUT, 1024, None, 36, data)
    assert len(put) == 252
    assert legacy_request(link, radio, put) == blechunk.split(b"\x44\x90\x00")
    got = legacy_request(link, radio, get_apdu(1024, 36))
    assert got == blechunk.split(b"\x45" + data + b"\x90\x00")
    assert max(len(p) for p in got) == 20


def test_legacy_pieces_follow_the_mtu_when_asked():
    link, radio = make_link(piece=255)
    connect(link)
    event(link, MTU, (1, 247))
    data = bytes(range(240))
    write_req = frame.encode_request(frame.PUT, 1024, None, 36, data)
    legacy_request(link, radio, write_req)
    got = legacy_request(link, radio, get_apdu(1024, 36))
    assert got == blechunk.split(b"\x45" + data + b"\x90\x00", 243)


def test_fast_request_one_notification_within_mtu():
    link, radio = make_link()
    connect(link)
    write(link, radio, 1, FAST_H, get_apdu(3, 2))
    assert radio.notified == [(1, FAST_H, b"\x45TT0102030405\x90\x00")]
    del radio.notified[:]
    data = bytes(100)
    write(link, radio, 1, FAST_H, frame.encode_request(frame.PUT, 1024, None, 36, data))
    write(link, radio, 1, FAST_H, get_apdu(1024, 36))
    # MTU 23: a 103-byte response does not fit a notification -> a short error instead
    assert radio.notified[1] == (1, FAST_H, b"\xa0\x90\x00")
    event(link, MTU, (1, 247))
    del radio.notified[:]
    write(link, radio, 1, FAST_H, get_apdu(1024, 36))
    assert radio.notified == [(1, FAST_H, b"\x45" + data + b"\x90\x00")]


def test_bad_checksum_answers_bad_request_and_link_serves():
    link, radio = make_link()
    connect(link)
    for v in V["assemble_bad"]:
        del radio.notified[:]
        for p in v["packets"]:
            write(link, radio, 1, LEGACY_H, unhex(p))
        assert [n[2] for n in radio.notified] == [BAD_REQUEST_PACKET], v["note"]
    got = legacy_request(link, radio, get_apdu(3, 2))
    assert got == blechunk.split(frame.encode_response(0x45, b"TT0102030405"))


def test_central_gone_mid_frame_next_central_served():
    link, radio = make_link()
    connect(link, 1)
    put = frame.encode_request(frame.PUT, 1024, None, 36, bytes(range(100)))
    write(link, radio, 1, LEGACY_H, blechunk.split(put)[0])
    assert link.asm.busy()
    event(link, DISCONNECT, (1, 0, memoryview(b"\x01\x02\x03\x04\x05\x06")))
    assert link.asm is None and link.conn is None  # no half frame: no assembler at all
    assert radio.adv is not None  # advertising again
    connect(link, 2, b"\x0a\x0b\x0c\x0d\x0e\x0f")
    got = legacy_request(link, radio, get_apdu(3, 2), conn=2)
    assert got == blechunk.split(frame.encode_response(0x45, b"TT0102030405"))
    assert link.seen[-1].link == "ble#2"


def test_stale_half_frame_dropped_after_a_second():
    link, radio = make_link()
    connect(link)
    write(link, radio, 1, LEGACY_H, blechunk.split(bytes(range(45)))[0])
    link.t_last -= 1500  # the rest never came
    got = legacy_request(link, radio, get_apdu(3, 2))  # one packet, at offset 0
    assert got == blechunk.split(frame.encode_response(0x45, b"TT0102030405"))
    assert link.status()["dropped_frames"] == 1


def test_one_central_at_a_time_and_stale_writes_ignored():
    link, radio = make_link()
    connect(link, 1)
    connect(link, 2)
    assert radio.kicked == [2] and link.conn == 1
    del radio.notified[:]
    write(link, radio, 2, FAST_H, get_apdu(3, 2))  # not the served central
    assert radio.notified == []
    event(link, DISCONNECT, (2, 0, memoryview(bytes(6))))
    assert link.conn == 1


def test_queue_overflow_counts_and_survives():
    link, radio = make_link()
    connect(link)
    radio.values[LEGACY_H] = b"\x13" + bytes(19)
    for _ in range(40):
        link._irq(WRITE, (1, LEGACY_H))
    assert link.drops == 40 - 32
    run_sync(link.drain())
    legacy_request(link, radio, get_apdu(3, 2))  # may complete the last half frame: 0x80
    got = legacy_request(link, radio, get_apdu(3, 2))
    assert got == blechunk.split(frame.encode_response(0x45, b"TT0102030405"))


def test_notify_lost_connection_stops_sending():
    link, radio = make_link()
    connect(link)
    # the IRQ saw the central go before its request was handled: nothing is notified
    radio.values[FAST_H] = get_apdu(3, 2)
    link._irq(WRITE, (1, FAST_H))
    link._irq(DISCONNECT, (1, 0, memoryview(bytes(6))))
    run_sync(link.drain())
    assert radio.notified == [] and link.conn is None
    # the next central goes while the first packet of a longer response is notified: the
    # rest of it is not sent
    connect(link, 2)
    legacy_request(link, radio, frame.encode_request(frame.PUT, 1024, None, 36, bytes(100)), 2)
    notify = radio.gatts_notify

    def notify_then_gone(conn, handle, data=None):
        notify(conn, handle, data)
        link._irq(DISCONNECT, (2, 0, memoryview(bytes(6))))

    radio.gatts_notify = notify_then_gone
    got = legacy_request(link, radio, get_apdu(1024, 36), 2)
    assert got == blechunk.split(b"\x45" + bytes(100) + b"\x90\x00")[:1]
    assert link.conn is None


if __name__ == "__main__":
    run(globals())
