# The umqtt.simple adapter: packets built by umqtt.simple itself, on its in-memory socket (the
# Session), byte for byte; the workaround for the 1.7.0 publish() bug. Under pytest and micropython
# (umqtt.simple comes from .cache/mpylib, fetched by `make setup`).
import sys

try:
    from _runner import ROOT, fw, run
except ImportError:
    from ._runner import ROOT, fw, run

sys.path.append(ROOT + "/.cache/mpylib")
if sys.implementation.name != "micropython":  # umqtt.simple imports the u-names
    import binascii
    import socket
    import struct

    sys.modules.update({"usocket": socket, "ustruct": struct, "ubinascii": binascii})
mqtt = fw("rpz.mqtt")
connect = fw("rpz.connect")
from umqtt import simple  # noqa: E402


def session(on_message=None):
    s = mqtt.Session("app1/cid/d1", "localhost", 8883, "app1", "tok", 30, on_message)
    c = simple.MQTTClient("app1/cid/d1", "localhost", 8883, "app1", "tok", 30)
    c.sock = s
    c.set_callback(on_message)
    s.client = c
    return s


def test_publish_qos1_is_built_by_umqtt():
    s = session()
    pid = s.publish("/t", b"hi", 1)
    assert pid == 1
    assert bytes(s.tx) == b"\x32\x08\x00\x02/t\x00\x01hi"


def test_publish_qos0():
    s = session()
    assert s.publish("/t", b"hi", 0) == 0
    assert bytes(s.tx) == b"\x30\x06\x00\x02/t" + b"hi"


def test_incoming_publish_is_parsed_and_acked():
    got = []
    s = session(lambda t, m: got.append((t, m)))
    s._handle(b"\x32\x0a\x00\x02/t\x00\x07body")
    assert got == [(b"/t", b"body")]
    assert bytes(s.tx) == b"\x40\x02\x00\x07"  # PUBACK from umqtt


def test_incoming_qos2_is_taken_as_qos1():
    got = []
    s = session(lambda t, m: got.append(m))
    s._handle(b"\x34\x0a\x00\x02/t\x00\x09body")
    assert got == [b"body"] and bytes(s.tx) == b"\x40\x02\x00\x09"


def test_puback_and_suback_are_routed():
    s = session()
    acks = []
    s.on_puback = acks.append
    s._handle(b"\x40\x02\x01\x02")
    assert acks == [0x0102]


def test_packet_length():
    assert mqtt._packet_length(b"\x30") == 0
    assert mqtt._packet_length(b"\x30\x05") == 7
    assert mqtt._packet_length(b"\x30\xc1\x02") == 3 + 321
    assert mqtt._packet_length(b"\x30\x80") == 0


class Buggy170(simple.MQTTClient):
    # publish() as umqtt.simple 1.7.0 behaves: the packet-id write sits in a try/except/else
    # whose else branch re-raises nothing (RuntimeError on MicroPython and CPython alike).
    def publish(self, topic, msg, retain=False, qos=0):
        pkt = bytearray(b"\x30\\0\\0\\0")
        pkt[0] |= qos << 1 | retain
        sz = 2 + len(topic) + len(msg) + (2 if qos else 0)
        pkt[1] = sz
        self.sock.write(pkt, 2)
        self._send_str(topic)
        if qos > 0:
            self.pid += 1
            pkt[0] = self.pid >> 8
            pkt[1] = self.pid & 0xFF
            try:
                self.sock.write(pkt, 2)
            except OSError as e:
                if e.args[0] == -1:
                    raise
            else:
                raise RuntimeError("no active exception to reraise")
        self.sock.write(msg)
        if qos == 1:
            while 1:
                self.wait_msg()


def test_workaround_for_the_170_publish_bug():
    class FakeSimple:
        MQTTClient = Buggy170

    s = session()
    mqtt._bug = None
    assert connect._pid_write_bug(FakeSimple, s) is True
    assert bytes(s.tx) == b""
    c = Buggy170("app1/cid/d1", "localhost", 8883, "app1", "tok", 30)
    c.sock = s
    s.client = c
    saved = simple.MQTTClient
    try:
        pid = s.publish("/t", b"hi", 1)
    finally:
        simple.MQTTClient = saved
    assert pid == 1 and bytes(s.tx) == b"\x32\x08\x00\x02/t\x00\x01hi"
    mqtt._bug = None
    assert connect._pid_write_bug(simple, s) is False


if __name__ == "__main__":
    run(globals())
