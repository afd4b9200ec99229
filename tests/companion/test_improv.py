"""Improv Wi-Fi over a virtual board's UART pty, next to Tap on the same line (the board file
``unix`` has a simulated Wi-Fi: ``twintap-lab`` / ``lab-password``), the way ESP Web Tools and
Home Assistant talk to a board's serial port."""

from __future__ import annotations

import json
import time

import serial

from twintap.proto import frame, improv, tapcodes

GET_SERIAL = frame.encode_request(frame.GET, 3, None, 2)


class ImprovClient:
    """What sdk-serial-js does: send RPC packets, collect the packets that come back."""

    def __init__(self, link) -> None:
        self.port = serial.serial_for_url(str(link), timeout=0.05)
        self.parser = improv.Parser()
        self.raw = b""

    def rpc(self, command: int, payload: bytes = b"") -> None:
        self.port.write(improv.encode_rpc(command, payload))

    def packets(self, until, timeout: float = 5.0) -> list[tuple[int, bytes]]:
        """Packets received until ``until(packets)`` holds; fails after ``timeout``."""
        got: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + timeout
        while not until(got):
            assert time.monotonic() < deadline, f"no answer; got {got}, raw {self.raw!r}"
            chunk = self.port.read(256)
            self.raw += chunk
            got += self.parser.feed(chunk)
        return got

    def close(self) -> None:
        self.port.close()


def results(packets):
    return [improv.decode_result(d) for t, d in packets if t == improv.RPC_RESULT]


def states(packets):
    return [d[0] for t, d in packets if t == improv.CURRENT_STATE]


def errors(packets):
    return [d[0] for t, d in packets if t == improv.ERROR_STATE]


def test_improv_rpcs_over_the_uart_pty(repl_board):
    b = repl_board()
    c = ImprovClient(b.uart)
    try:
        c.rpc(improv.GET_STATE)
        got = c.packets(lambda p: states(p))
        assert errors(got) == [improv.NO_ERROR] and states(got) == [improv.READY]

        c.rpc(improv.GET_INFO)
        (info,) = results(c.packets(lambda p: results(p)))
        assert info[0] == improv.GET_INFO
        assert info[1][:3] == ["twintap", "0.1.0", "unix"]
        assert info[1][3].startswith("twintap-virtual-")

        c.rpc(improv.SCAN)
        scan = results(c.packets(lambda p: any(r[1] == [] for r in results(p))))
        assert scan == [(improv.SCAN, ["twintap-lab", "-48", "YES"]),
                        (improv.SCAN, ["workshop", "-67", "YES"]),
                        (improv.SCAN, ["guest", "-80", "NO"]), (improv.SCAN, [])]

        # wrong password: unable to connect, back to ready; Tap still answers on this line
        c.rpc(improv.WIFI_SETTINGS, improv.encode_wifi("twintap-lab", "not-the-password"))
        got = c.packets(lambda p: improv.READY in states(p))
        assert states(got) == [improv.PROVISIONING, improv.READY]
        assert errors(got) == [improv.NO_ERROR, improv.UNABLE_TO_CONNECT]
        c.port.write(GET_SERIAL)
        time.sleep(0.2)
        resp = c.port.read(64)
        assert frame.decode_response(resp)[0] == tapcodes.CONTENT
        assert not (b.flash / "config.json").exists()

        # the right one: provisioned, the device URL, the credentials kept in config.json
        c.rpc(improv.WIFI_SETTINGS, improv.encode_wifi("twintap-lab", "lab-password"))
        got = c.packets(lambda p: results(p))
        assert states(got) == [improv.PROVISIONING, improv.PROVISIONED]
        url = f"tcp://127.0.0.1:{b.tcp_port}"
        assert results(got) == [(improv.WIFI_SETTINGS, [url])]
        cfg = json.loads((b.flash / "config.json").read_text())
        assert cfg["wifi"] == {"ssid": "twintap-lab", "password": "lab-password"}
        c.rpc(improv.GET_STATE)
        got = c.packets(lambda p: results(p))
        assert states(got) == [improv.PROVISIONED]
        assert results(got) == [(improv.GET_STATE, [url])]

        # malformed and unknown requests get their error codes
        bad = bytearray(improv.encode_rpc(improv.GET_STATE))
        bad[-2] ^= 0x5A
        c.port.write(bytes(bad))
        assert errors(c.packets(lambda p: errors(p))) == [improv.INVALID_RPC]
        c.rpc(0x42)
        assert errors(c.packets(lambda p: len(errors(p)) == 2)) == [
            improv.NO_ERROR, improv.UNKNOWN_RPC]
        # the password never reaches the log
        assert not any("lab-password" in line for line in b.lines)
    finally:
        c.close()
    # at the next boot the board joins the network it was given
    b.stop()
    b2 = repl_board()
    b2.wait_for(r"^\[I\]\[wifi\] connected to twintap-lab, ip 127\.0\.0\.1$")


def test_tap_and_improv_share_one_write(repl_board):
    b = repl_board()
    c = ImprovClient(b.uart)
    try:
        c.port.write(GET_SERIAL + improv.encode_rpc(improv.GET_STATE) + GET_SERIAL)
        time.sleep(0.5)
        raw = c.port.read(512)
        packets = improv.Parser().feed(raw)
        assert states(packets) == [improv.READY]
        tap = raw.replace(improv.encode_error(0), b"").replace(
            improv.encode_state(improv.READY), b"")
        assert tap.count(b"\x90\x00") == 2 and tap.startswith(b"\x45TT")
        # a byte that starts neither protocol still gets Tap's BAD_REQUEST, then both work
        c.port.write(b"\x00\x13noise")
        time.sleep(0.3)
        assert c.port.read(16) == frame.encode_response(tapcodes.BAD_REQUEST)
        c.rpc(improv.GET_STATE)
        assert states(c.packets(lambda p: states(p))) == [improv.READY]
    finally:
        c.close()
