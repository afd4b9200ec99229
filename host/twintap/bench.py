"""``twintap bench``: measure the system on this machine and write a report.

    twintap bench [--out DIR] [--quick] [--keep]

Starts the bench broker (mosquitto, TLS, accounts) and platform, virtual boards, and plain
MicroPython/paho/umqtt baselines, all on free ports, and measures (see README, "Bench"):

- Tap ``GET /3//2`` and ``GET /1029/5/4`` over TCP, the pty UART and the emulated BLE radio,
  against a MicroPython echo of the board's own answer over the same link;
- the same read inside a SCRAM encrypted session against plain;
- SSR READ -> ack through mosquitto against a bare paho ping-pong;
- change events per second at QoS 0 and 1 against a bare umqtt.simple publish loop;
- the heap the board needs (binary search over ``--heap``) and uses, with the 96K verdict;
- ``twintap deploy`` full and incremental against ``mpremote cp -r``;
- 8 and 32 boards against one broker: registration, SSR fan-out, CPU.

Every figure is written with the baseline measured in the same run and their ratio, to
``DIR/report.json``, ``DIR/report.md``, ``DIR/README-table.md`` and ``DIR/*.png``; when DIR
is the repository's ``bench/``, README.md's bench section (between its markers) too.
Exit status 0 when every measurement ran and every verdict passed, 1 otherwise (the reasons
are in the report), 2 when the bench itself could not run.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from twintap import say
from twintap.benchlib import membench, mqttbench, report, scalebench, tapbench
from twintap.benchlib.boards import (
    Accounts,
    BenchBoard,
    BenchBroker,
    PlatformProcess,
    provision,
    shipped_nodelay,
)
from twintap.benchlib.echo import AsyncEcho, BleEcho, PtyEcho, TcpEcho, UmqttLoop
from twintap.benchlib.stats import Series
from twintap.broker import Broker, BrokerDir, mosquitto_path
from twintap.paths import REPO
from twintap.vboard import VirtualBoard, free_port, micropython_path

APP = "bench"
HEAP_TARGET_KB = 96
FEATURE_HEAP_KB = 160  # a heap every feature set fits in (memory by feature)
EVENT_PAYLOAD = json.dumps({"mid": 1234567890, "op": 2, "msg": {
    "_evt": "change", "n": "setpoint", "v": 12345, "seq": 123456, "src": "tap"}})


@dataclass
class Plan:
    """How much of everything: the full run, or ``--quick`` (tiny counts, same machinery)."""

    quick: bool = False
    tap_count: int = 2000
    tap_seconds: float = 5.0
    enc_count: int = 1000
    enc_seconds: float = 5.0
    logins: int = 5
    ssr_count: int = 500
    ssr_seconds: float = 8.0
    event_seconds: float = 8.0
    quiet: float = 1.0
    mem_probe_requests: int = 300
    mem_final_requests: int = 10_000
    mem_hi_kb: int = 1024
    mem_step_kb: int = 4
    deploy_full: bool = True
    scale_levels: tuple[int, ...] = (1, 8, 32)
    scale_rounds: int = 20
    fanout_seconds: float = 5.0
    idle_seconds: float = 5.0

    @classmethod
    def make(cls, quick: bool) -> Plan:
        """The full plan, or the quick one."""
        if not quick:
            return cls()
        return cls(quick=True, tap_count=40, tap_seconds=0.5, enc_count=30, enc_seconds=0.5,
                   logins=1, ssr_count=20, ssr_seconds=1.0, event_seconds=0.5, quiet=0.2,
                   mem_probe_requests=40, mem_final_requests=200, mem_hi_kb=512,
                   mem_step_kb=128, deploy_full=False, scale_levels=(1, 2, 4),
                   scale_rounds=3, fanout_seconds=0.1, idle_seconds=0.2)


def _version(cmd: list[str]) -> str:
    """The first line a tool prints about its version ("?" when it cannot say)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr) else "?"


def meta(quick: bool) -> dict:
    """Where and with what the bench ran."""
    commit = _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return {
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick, "cpus": os.cpu_count(), "machine": platform.machine(),
        "python": platform.python_version(), "commit": commit,
        "micropython": "MicroPython " + _version([
            micropython_path(), "-c",
            "import sys; print('.'.join(str(v) for v in sys.implementation.version[:3]))"]),
        "mosquitto": _version([mosquitto_path(), "-h"]).replace("version ", ""),
    }


class Bench:
    """One bench run: the broker, platform and boards it started, and the report."""

    def __init__(self, plan: Plan, work: Path, rep: report.Report) -> None:
        self.plan = plan
        self.work = work
        self.r = rep
        self.accounts = Accounts(work / "broker")
        self.broker: Broker | None = None
        self.platform: PlatformProcess | None = None
        self.board: BenchBoard | None = None
        self.board_rpz: dict = {}
        self.platform_gen = 0
        self.broker_log: list[str] = []

    # -- infrastructure ------------------------------------------------------------------------
    def start(self) -> None:
        """Make every account (before the broker starts: no reload per board), then start
        the broker and the platform."""
        for cid in ("a", "noble", "pingpong", "umqtt", "mem"):
            self.accounts.add(APP, cid)
        for n in self.plan.scale_levels:
            for i in range(n):
                self.accounts.add(f"scale{n}", f"b{i}")
        self.broker = BenchBroker(self.work / "broker", free_port(),
                                  echo=lambda line: self.broker_log.append(line))
        self.broker.start()
        self.platform = PlatformProcess(self.work / "broker", self.work / "platform")

    @property
    def url(self) -> str:
        """The bench broker's URL."""
        assert self.broker is not None
        return self.broker.url

    def stop(self) -> None:
        """Stop everything still running (each by its process id)."""
        if self.board:
            self.board.stop()
            self.board = None
        if self.platform:
            self.platform.stop()
            self.platform = None
        if self.broker:
            self.broker.stop()
            self.broker = None

    def pause_platform(self) -> None:
        """Stop the platform (its session stays with the broker, which keeps its QoS 1
        messages, up to mosquitto's queue limit)."""
        if self.platform:
            self.platform.stop()
            self.platform = None

    def resume_platform(self) -> None:
        """Start a platform again, on a new store: a new platform client id, so that the
        broker's queue for the stopped one (events of the pause) is not replayed into it."""
        if self.platform is None:
            self.platform_gen += 1
            self.platform = PlatformProcess(self.work / "broker",
                                            self.work / f"platform-{self.platform_gen}")

    def board_a(self, **rpz: object) -> BenchBoard:
        """The measured board: provisioned (SSRs not rate-limited), online and registered,
        with its UART on a pty and (when the virtual board has it) an emulated BLE radio."""
        if self.board is not None and rpz.items() <= self.board_rpz.items():
            return self.board
        if self.board is not None:
            self.board.stop()
        self.board_rpz = {"event_qos": 1, **rpz}
        flash = self.work / "board-a"
        provision(flash, self.accounts, self.url, APP, "a", ssr_per_s=100000,
                  **self.board_rpz)
        kw: dict = {"uart": self.work / "a.uart"}
        if "ble" in inspect.signature(VirtualBoard).parameters:
            kw["ble"] = self.work / "a.ble"
        self.board = BenchBoard(flash, **kw).start()
        self.board.wait_for(r"\[I\]\[rpz\] online as ", 30)
        self.board.wait_for(r"\[I\]\[rpz\] (registered \d+ properties|declaration unchanged)",
                            30)
        return self.board

    def section(self, name: str, fn: Callable[[], None]) -> None:
        """Run one section; a failure is recorded and the run goes on."""
        say(f"bench: {report.SECTION_TITLES[name]}")
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:  # every failure goes into the report, with its reason
            self.r.fail(name, f"{type(e).__name__}: {e}")
            (self.work / f"{name}.traceback").write_text(traceback.format_exc())
            say(f"bench: {name} failed: {e}")
        self.r.data.setdefault("timings_s", {})[name] = round(time.monotonic() - t0, 2)

    # -- sections ------------------------------------------------------------------------------
    def tap(self) -> None:
        """Tap latency over every link, against the echo floors."""
        a = self.board_a()
        table = tapbench.record_answers(a.tcp_port)
        links: list[tuple[str, Callable, type, Callable]] = [
            ("TCP", lambda: tapbench.RawTcp(a.tcp_port), TcpEcho,
             lambda e: tapbench.RawTcp(e.port)),
            ("UART", lambda: tapbench.RawPty(a.uart), PtyEcho,
             lambda e: tapbench.RawPty(e.path)),
        ]
        ble = getattr(a.vb, "ble_path", None)
        if ble:
            links.append(("BLE", lambda: tapbench.RawBle(ble), BleEcho,
                          lambda e: tapbench.RawBle(e.path)))
        else:
            self.r.skip("tap", "BLE: `twintap vboard run --ble` is not available")
        series = []
        p = self.plan
        for link, board_client, echo_cls, echo_client in links:
            echo = echo_cls(self.work, table)
            try:
                for req_name, req in tapbench.REQUESTS.items():
                    resp = table[req]
                    c = board_client()
                    try:
                        b = tapbench.measure("board", c.exchange, req, resp, p.tap_count,
                                             p.tap_seconds)
                    finally:
                        c.close()
                    c = echo_client(echo)
                    try:
                        e = tapbench.measure("echo", c.exchange, req, resp, p.tap_count,
                                             p.tap_seconds)
                    finally:
                        c.close()
                    self._latency("tap", f"{req_name} over {link}", b, e, "echo")
                    series.append({"link": link, "request": req_name, "board": b.summary(),
                                   "echo": e.summary()})
            finally:
                echo.stop()
        self.r.data["tap"] = {"series": series,
                              "answers": {k.hex(): v.hex() for k, v in table.items()}}
        self.r.note("tap", "One client, one request in flight, back to back; the echo floor "
                           "is a plain MicroPython script (blocking TCP server, blocking pty "
                           "reads, the emulated radio's write IRQ) answering the board's "
                           "recorded bytes with the same `micropython`; UART is the same "
                           "pty bridge as the virtual board's; BLE is the large-frame service "
                           "at MTU 263. The board is provisioned and online (cloud link up).")
        if ble:
            self._tcp_without_ble(series)
        self._asyncio_floors(table[tapbench.GET_SERIAL])

    def _tcp_without_ble(self, series: list[dict]) -> None:
        """The same TCP read on a board provisioned alike but without its BLE radio."""
        flash = self.work / "board-noble"
        provision(flash, self.accounts, self.url, APP, "noble", ssr_per_s=100000)
        nb = BenchBoard(flash).start()
        try:
            nb.wait_for(r"\[I\]\[rpz\] online as ", 30)
            table = tapbench.record_answers(nb.tcp_port)
            echo = TcpEcho(self.work, table)
            req = tapbench.GET_SERIAL
            p = self.plan
            try:
                c = tapbench.RawTcp(nb.tcp_port)
                try:
                    b = tapbench.measure("board", c.exchange, req, table[req], p.tap_count,
                                         p.tap_seconds)
                finally:
                    c.close()
                c = tapbench.RawTcp(echo.port)
                try:
                    e = tapbench.measure("echo", c.exchange, req, table[req], p.tap_count,
                                         p.tap_seconds)
                finally:
                    c.close()
            finally:
                echo.stop()
        finally:
            nb.stop()
        self._latency("tap", "GET /3//2 over TCP, board without BLE radio", b, e, "echo")
        series.append({"link": "TCP, no BLE", "request": "GET /3//2", "board": b.summary(),
                       "echo": e.summary()})
        self.r.note("tap", "'without BLE radio': a second board, provisioned and online "
                           "alike, started without `--ble`.")

    def _asyncio_floors(self, resp: bytes) -> None:
        """The asyncio echo alone, and while a task waits on a ThreadSafeFlag, a TLS stream,
        or the TCP socket under one: what the event loop's polling costs, and why the cloud
        link waits as it does."""
        p = self.plan
        req = tapbench.GET_SERIAL
        got: dict[str, Series] = {}
        tls = (int(self.url.rsplit(":", 1)[1]), BrokerDir(self.work / "broker").ca_der)
        for mode in ("plain", "flag", "tls", "tlsfd"):
            echo = AsyncEcho(self.work, resp, mode, tls if mode.startswith("tls") else None)
            try:
                c = tapbench.RawTcp(echo.port)
                try:
                    got[mode] = tapbench.measure(mode, c.exchange, req, resp, p.tap_count,
                                                 p.tap_seconds)
                finally:
                    c.close()
            finally:
                echo.stop()
        plain = got["plain"]
        for mode, what in (("flag", "a ThreadSafeFlag"), ("tls", "a TLS stream"),
                           ("tlsfd", "the TCP socket under a TLS stream")):
            s = got[mode]
            self.r.add("tap", f"asyncio echo, a task waiting on {what}: p50", "ms",
                       s.p50 * 1000, plain.p50 * 1000, "asyncio echo alone")
        self.r.data.setdefault("tap", {})["asyncio_floors"] = {
            k: v.summary() for k, v in got.items()}
        self.r.note("tap", "The asyncio rows: the same TCP echo written as an asyncio server, "
                           "alone and while one more task waits on a ThreadSafeFlag (what the "
                           "BLE link's task does on an ESP32; on the unix port it waits on an "
                           "Event), on an open TLS stream (asyncio's Stream polls the TLS "
                           "socket), or on the TCP socket under a TLS stream (what the cloud "
                           "link does: it reads the TLS socket without blocking until it has "
                           "nothing, then waits on the TCP socket). An object that is not a "
                           "file descriptor in this port's poller makes every wake-up of its "
                           "event loop 1-3 ms late, the Tap links' too.")

    def _latency(self, section: str, what: str, s: Series, base: Series, base_name: str,
                 rate_unit: str = "req/s") -> None:
        errs = f"{s.errors} wrong answers" if s.errors else ""
        self.r.add(section, f"{what}: p50", "ms", s.p50 * 1000, base.p50 * 1000, base_name,
                   note=errs)
        self.r.add(section, f"{what}: p99", "ms", s.p99 * 1000, base.p99 * 1000, base_name)
        self.r.add(section, f"{what}: rate", rate_unit, s.rate, base.rate, base_name,
                   better="higher")

    def encryption(self) -> None:
        """The same read in a SCRAM encrypted session and in clear; login times."""
        if not _has_security():
            self.r.skip("encryption", "the host library has no tap.auth / tap.encryption")
            return
        a = self.board_a()
        p = self.plan
        out = tapbench.encrypted_overhead(a.tcp_port, p.enc_count, p.enc_seconds, p.logins)
        enc, plain = out["encrypted"], out["plain"]
        assert isinstance(enc, Series) and isinstance(plain, Series)
        self._latency("encryption", "GET /1029/5/4 in a SCRAM session", enc, plain,
                      "same read in clear")
        from twintap.benchlib.stats import percentile

        self.r.add("encryption", "SCRAM login + logout: median", "ms",
                   percentile(out["login_scram"], 50) * 1000,  # type: ignore[arg-type]
                   percentile(out["login_basic"], 50) * 1000,  # type: ignore[arg-type]
                   "basic login + logout")
        self.r.data["encryption"] = {"plain": plain.summary(), "encrypted": enc.summary(),
                                     "login_scram_s": out["login_scram"],
                                     "login_basic_s": out["login_basic"],
                                     "frames": out.get("frames")}
        self.r.note("encryption", "Through the host library over TCP with no idle window "
                                  "(`TcpLink(idle=0)`) for both: security options set to "
                                  "SCRAM (0x0018) for the run and restored; IV period 100; "
                                  "login as admin.")

    def ssr(self) -> None:
        """SSR READ round trips through the broker, against a paho ping-pong."""
        self.board_a()
        p = self.plan
        plat = self.accounts.platform()
        s, answer = mqttbench.ssr_round_trips(self.url, plat, APP, "a", p.ssr_count,
                                              p.ssr_seconds)
        base = mqttbench.ping_pong(self.url, plat, self.accounts.creds(APP, "pingpong"), APP,
                                   "pingpong", answer, p.ssr_count, p.ssr_seconds)
        self._latency("ssr", "SSR READ → ack", s, base, "paho ping-pong", "round trips/s")
        data = {"ssr": s.summary(), "ping_pong": base.summary(), "ack_bytes": len(answer)}
        if not shipped_nodelay():
            shipped = self._shipped_ping_pong(answer)
            self.r.add("ssr", "ping-pong, broker without set_tcp_nodelay: p50", "ms",
                       shipped.p50 * 1000, base.p50 * 1000, "with set_tcp_nodelay")
            data["ping_pong_shipped_config"] = shipped.summary()
            self.r.note("ssr", "The bench's broker is `twintap broker`'s configuration plus "
                               "`set_tcp_nodelay true`: without it mosquitto's Nagle delay "
                               "meets the clients' delayed ACKs and every round trip costs "
                               "about 40 ms, whoever answers (last row: the same ping-pong "
                               "through a second broker with `twintap broker run`'s own "
                               "configuration). Bench clients "
                               "set TCP_NODELAY too.")
        self.r.data["ssr"] = data
        self.r.note("ssr", "One persistent platform client (paho, TLS) sends READ "
                           "`{\"n\": \"setpoint\"}` at QoS 1 and waits for the ack before the "
                           "next; the floor answers on the same topics with the board's own "
                           "ack bytes from a paho client with a device account.")

    def _shipped_ping_pong(self, answer: bytes) -> Series:
        """The ping-pong through a broker with `twintap broker run`'s own configuration."""
        d = self.work / "broker-shipped"
        acc = Accounts(d)
        acc.add(APP, "pingpong")
        b = Broker(d, free_port(), echo=lambda line: None)
        b.start()
        try:
            return mqttbench.ping_pong(b.url, acc.platform(), acc.creds(APP, "pingpong"), APP,
                                       "pingpong", answer, self.plan.ssr_count,
                                       self.plan.ssr_seconds)
        finally:
            b.stop()

    def events(self) -> None:
        """Change events per second at QoS 1 and 0, against a bare umqtt.simple loop."""
        p = self.plan
        plat = self.accounts.platform()
        ca_der = BrokerDir(self.work / "broker").ca_der
        data = {}
        for qos in (1, 0):
            a = self.board_a(event_qos=qos)
            mqttbench.event_path_ready(self.url, plat, APP, "a", a.tcp_port)
            self.pause_platform()  # neither side pays for the platform's SQLite
            try:
                t = mqttbench.board_events(self.url, plat, APP, "a", a.tcp_port,
                                           p.event_seconds, p.quiet)
                u = mqttbench.umqtt_events(lambda cfg: UmqttLoop(self.work, cfg), self.url,
                                           plat, self.accounts.creds(APP, "umqtt"), ca_der,
                                           APP, "umqtt", qos, p.event_seconds, EVENT_PAYLOAD,
                                           p.quiet)
            finally:
                self.resume_platform()
            lost = t.sent - t.received
            note = f"{t.sent} Tap writes, {t.received} events"
            if t.dropped:
                note += f", {t.dropped} dropped by the outbox"
            if lost - t.dropped > 0:
                note += f", {lost - t.dropped} lost"
            self.r.add("events", f"change events at QoS {qos}", "events/s", t.rate, u.rate,
                       f"umqtt.simple loop, QoS {qos}", better="higher", note=note)
            data[f"qos{qos}"] = {"board": t.__dict__, "umqtt": u.__dict__,
                                 "board_rate": t.rate, "umqtt_rate": u.rate,
                                 "tap_writes_per_s": t.sent / p.event_seconds}
        if self.board:
            self.board.stop()
            self.board = None
        self.r.data["events"] = data
        self.r.note("events", "Tap writes of the setpoint from one TCP client as fast as it "
                              "goes; events counted at a platform subscriber (paho, QoS 1 "
                              "subscription) from first to last arrival. The floor is "
                              "umqtt.simple 1.3 with the same TLS, a device account and an "
                              "event-sized payload in a bare publish loop on the same "
                              "`micropython`; at QoS 1 it waits for each PUBACK (its small "
                              "writes meet Nagle + delayed ACK), the board keeps 4 in flight. "
                              "The platform is stopped during both windows (it would store "
                              "every event in SQLite on the same two cores).")

    def memory(self) -> None:
        """The 96K verdict, the smallest heap, the heap in use, the .mpy size."""
        p = self.plan
        sizes = membench.firmware_sizes()
        self.r.add("memory", f"deployed .mpy files ({sizes['mpy_files']})", "B", sizes["mpy"],
                   sizes["py"], "their .py sources")

        def prov(flash: Path) -> None:
            provision(flash, self.accounts, self.url, APP, "mem")

        # Firmware in a ROMFS partition (bytecode in flash, as a deployed board runs it), two
        # boards: what `twintap vboard run --romfs` starts (the Tap endpoint on its defaults:
        # not provisioned, no BLE radio) and a deployed one (provisioned, online, BLE on);
        # then the deployed one with its .mpy files in /lib, for comparison.
        def search(prov_fn, ble: bool, romfs: bool, final: int) -> membench.HeapSearch:
            return membench.search_heap(
                lambda kb, n: membench.probe(self.work, kb, prov_fn, n, ble=ble, romfs=romfs),
                HEAP_TARGET_KB, p.mem_hi_kb, p.mem_step_kb, p.mem_probe_requests, final)

        boards = [
            ("tap", "the Tap endpoint on its defaults (not provisioned, no BLE)",
             search(None, False, True, p.mem_final_requests)),
            ("deployed", "a deployed board (provisioned and online, BLE on)",
             search(prov, True, True, p.mem_final_requests)),
        ]
        lib = search(prov, True, False, p.mem_probe_requests)
        self.r.data["memory"] = {"sizes": sizes, "search": boards[1][2].to_json(),
                                 "tap": boards[0][2].to_json(), "lib": lib.to_json()}
        usable = membench.usable_heap(HEAP_TARGET_KB)
        for key, what, s in boards:
            t = s.target
            detail = (f"starts and serves {t.requests:,} mixed requests"
                      if t and t.ok else f"{t.reason if t else 'not probed'}")
            self.r.verdicts.append(report.Verdict(
                f"{what} starts and serves with --heap {HEAP_TARGET_KB}K (about "
                f"{HEAP_TARGET_KB // 2} KB on an ESP32), firmware in ROMFS", bool(t and t.ok),
                detail))
            if s.smallest is None or s.final is None:
                self.r.fail("memory", f"{what} did not start and serve with any heap up to "
                                      f"{p.mem_hi_kb}K")
                continue
            f = s.final
            self.r.add("memory", f"{key}: smallest --heap it starts and serves with", "KB",
                       f.heap_kb, HEAP_TARGET_KB, "the 96K target")
            self.r.add("memory", f"{key}: heap in use after start-up (at --heap {f.heap_kb}K)",
                       "KB", (f.in_use_start or 0) / 1024, usable / 1024, "usable heap at 96K")
            self.r.add("memory", f"{key}: heap in use after {f.requests:,} mixed requests",
                       "KB", (f.in_use_after or 0) / 1024, (f.in_use_start or 0) / 1024,
                       "after start-up")
        self._memory_by_feature(prov)
        full = boards[1][2].smallest
        if lib.smallest is not None and full is not None:
            self.r.add("memory", "deployed: smallest --heap with the .mpy files in /lib instead",
                       "KB", lib.smallest.heap_kb, full.heap_kb, "ROMFS")
        for name, s in (("tap", boards[0][2]), ("deployed", boards[1][2]),
                        ("deployed, /lib", lib)):
            tried = ", ".join(f"{x.heap_kb}K {'ok' if x.ok else 'no'}" for x in s.probes)
            self.r.note("memory", f"Probes, {name}: {tried}.")
        self.r.note("memory", "tap: what `twintap vboard run --romfs` starts: Tap over TCP, "
                              "no configuration. deployed: provisioned (goes online, registers, "
                              "reads its values back) with its emulated BLE radio on. Each "
                              "probe starts a fresh flash and checks READY (and online), mixed "
                              "Tap requests (reads of every kind, a setpoint write in 8) all "
                              "answered, no MemoryError in its log.")
        self.r.note("memory", "ROMFS: the firmware and umqtt.simple as a read-only image "
                              "mapped into the board's process, as MicroPython 1.25+ maps a "
                              "board's ROMFS partition (`twintap deploy --romfs`): .mpy "
                              "bytecode is used in place, not copied into the heap (the "
                              "names it uses are still interned there). /lib: the same .mpy "
                              "files on the board's filesystem.")
        self.r.note("memory", "In use = usable heap (gc.mem_free() + gc.mem_alloc() of a bare "
                              "`micropython -X heapsize=N`) less the free heap after a "
                              "collection that GET /3//10 reports. TLS buffers are outside "
                              "this heap on the unix port, as on the ESP32 (C heap).")

    def _memory_by_feature(self, prov: Callable[[Path], None]) -> None:
        """Heap in use after start-up with each feature on, at a heap they all fit in: what
        the BLE link and the cloud link each cost over the Tap endpoint alone."""
        kb = FEATURE_HEAP_KB
        probes: dict[str, membench.Probe] = {}
        for key, prov_fn, ble in (("tap", None, False), ("ble", None, True),
                                  ("rpz", prov, False), ("all", prov, True)):
            probes[key] = membench.probe(self.work, kb, prov_fn, self.plan.mem_probe_requests,
                                         ble=ble, romfs=True)
        self.r.data.setdefault("memory", {})["by_feature"] = {
            k: v.to_json() for k, v in probes.items()}
        base = probes["tap"]
        if not base.ok:
            self.r.fail("memory", f"the Tap endpoint did not start with --heap {kb}K: "
                                  f"{base.reason}")
            return
        for key, what in (("ble", "Tap endpoint + BLE link"),
                          ("rpz", "Tap endpoint + Rapidomize client (online, no BLE)"),
                          ("all", "Tap endpoint + BLE link + Rapidomize client")):
            pr = probes[key]
            if not pr.ok:
                self.r.fail("memory", f"{what}: did not start with --heap {kb}K: {pr.reason}")
                continue
            self.r.add("memory", f"by feature: {what}, in use after start-up", "KB",
                       (pr.in_use_start or 0) / 1024, (base.in_use_start or 0) / 1024,
                       "the Tap endpoint alone")
        self.r.note("memory", f"By feature: fresh boards at --heap {kb}K (firmware in ROMFS), "
                              "heap in use after start-up as a Tap client sees it (one TCP "
                              "client connected, its request in progress). The BLE link "
                              "includes the emulated radio (Python here, C on an ESP32); the "
                              "Rapidomize client includes its TLS context (mbedTLS state in "
                              "the MicroPython heap on both ports; TLS buffers are not).")

    def deploy(self) -> None:
        """`twintap deploy` full and incremental, against `mpremote cp -r`."""
        import importlib.util

        if importlib.util.find_spec("twintap.deploy") is None:
            self.r.skip("deploy", "`twintap deploy` (twintap/deploy.py) does not exist yet")
            return
        flash = self.work / "deploy-board"
        repl = self.work / "deploy.repl"
        b = BenchBoard(flash, repl=repl).start()
        lib = flash / "lib" / "twintap"
        stage = self.work / "deploy-stage"
        results: dict[str, dict] = {}
        try:
            tw = [sys.executable, "-m", "twintap", "deploy", "--port", str(repl),
                  "--no-reset"]
            mp = [str(Path(sys.executable).parent / "mpremote"), "connect", str(repl),
                  "resume", "cp", "-r", "lib", "main.py", "board.json", ":./"]
            _timed(tw)  # warm-up: compiles for this board's bytecode, installs it
            shutil.rmtree(stage, ignore_errors=True)
            stage.mkdir()
            shutil.copytree(flash / "lib", stage / "lib")
            for name in ("main.py", "board.json"):
                shutil.copy2(flash / name, stage / name)
            files = len(list(lib.rglob("*.mpy")))
            if self.plan.deploy_full:
                shutil.rmtree(lib)
                results["full_deploy"] = _timed(tw)
                shutil.rmtree(lib)
                results["full_mpremote"] = _timed(mp, cwd=stage)
                self.r.add("deploy", f"full ({files} files)", "s",
                           results["full_deploy"]["s"], results["full_mpremote"]["s"],
                           "mpremote cp -r")
            else:
                self.r.skip("deploy", "--quick: the full copies are left out")
            for tool, cmd, cwd in (("deploy", tw, None), ("mpremote", mp, stage)):
                with open(lib / "app.mpy", "ab") as fh:
                    fh.write(b"\0")
                results[f"incremental_{tool}"] = _timed(cmd, cwd=cwd)
            self.r.add("deploy", "incremental (1 file changed)", "s",
                       results["incremental_deploy"]["s"], results["incremental_mpremote"]["s"],
                       "mpremote cp -r")
        finally:
            b.stop()
        self.r.data["deploy"] = results
        self.r.note("deploy", "To a virtual board over its REPL pty, both without a reset at "
                              "the end (`twintap deploy --no-reset`; `mpremote connect PTY "
                              "resume cp -r lib main.py board.json :./` of the very files "
                              "deploy installed). Full: the board's lib/twintap removed first; "
                              "incremental: one .mpy changed on the board. Both tools compare "
                              "SHA-256 hashes and copy only what differs.")

    def scale(self) -> None:
        """1, 8 and 32 boards (1, 2, 4 with --quick) against one broker."""
        p = self.plan
        assert self.broker and self.broker.proc and self.platform
        runs = []
        for n in p.scale_levels:
            say(f"bench:   {n} board{'s' if n > 1 else ''}")
            runs.append(scalebench.scale_run(self.work, self.accounts, self.url, self.platform,
                                             self.broker.proc.pid, n, p.scale_rounds,
                                             p.fanout_seconds, p.idle_seconds))
        self.r.data["scale"] = {"runs": [x.to_json() for x in runs]}
        one = runs[0]
        for x in runs[1:]:
            assert x.fanout and x.baseline and one.cpu_register and x.cpu_register
            self.r.add("scale", f"{x.n} boards: all registered", "s", x.register_s,
                       one.register_s, f"{one.n} board")
            self.r.add("scale", f"{x.n} boards: SSR fan-out, all acks p99", "ms",
                       x.fanout.rounds.p99 * 1000, x.baseline.rounds.p99 * 1000,
                       f"{x.n} paho stand-ins",
                       note=f"{x.fanout.missing} acks missing" if x.fanout.missing else "")
            self.r.add("scale", f"{x.n} boards: SSR fan-out, per ack p99", "ms",
                       x.fanout.acks.p99 * 1000, x.baseline.acks.p99 * 1000,
                       f"{x.n} paho stand-ins")
            assert x.fanout.cpu and x.baseline.cpu and x.cpu_idle and one.cpu_idle
            self.r.add("scale", f"{x.n} boards: mosquitto CPU during fan-out", "%",
                       x.fanout.cpu.groups["mosquitto"], x.baseline.cpu.groups["mosquitto"],
                       f"{x.n} paho stand-ins")
            self.r.add("scale", f"{x.n} boards: boards' CPU while idle (sum)", "%",
                       x.cpu_idle.groups["boards"], one.cpu_idle.groups["boards"],
                       f"{one.n} board")
            self.r.add("scale", f"{x.n} boards: host CPU during start-up and registration",
                       "%", x.cpu_register.host, one.cpu_register.host, f"{one.n} board")
        self.r.note("scale", f"Boards launched at once (fresh flash each, provisioned); "
                             f"'registered' = the platform's store holds a registration from "
                             f"each. Fan-out: WRITEs of the setpoint to `$/api/v1/mo/{{app}}`, "
                             f"one after the other, each waiting for every ack, for "
                             f"{p.fanout_seconds:g} s (at least {p.scale_rounds} rounds). "
                             f"CPU from /proc: % of one core per process group, host % of "
                             f"all {os.cpu_count()} cores (everything running on the "
                             f"machine); idle window "
                             f"{p.idle_seconds:g} s.")


def _has_security() -> bool:
    """Whether the host's Tap client can log in and encrypt (``tap.auth.login``,
    ``tap.encryption``)."""
    try:
        import twintap.tap as tap
    except ImportError:
        return False
    auth, enc = getattr(tap, "Auth", None), getattr(tap, "Encryption", None)
    return auth is not None and hasattr(auth, "login") and enc is not None


def _timed(cmd: list[str], cwd: Path | None = None) -> dict:
    """Run a command to completion; its duration and last output line. Raises on failure."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600,
                       stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({r.returncode}): "
                           f"{(r.stderr or r.stdout).strip()[-300:]}")
    last = (r.stdout.strip().splitlines() or [""])[-1]
    return {"s": dt, "output": last}


def write_outputs(rep: report.Report, out: Path) -> None:
    """report.json, plots, report.md, README-table.md; README.md's section for bench/."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    try:
        images = report.plots(rep, out)
    except Exception as e:  # a report without plots is still a report
        rep.fail("plots", f"{type(e).__name__}: {e}")
        images = []
    report.write(rep, out)
    (out / "report.md").write_text(report.markdown(rep, images) + "\n")
    (out / "README-table.md").write_text(report.summary_markdown(rep, images) + "\n")
    if out.resolve() == (REPO / "bench").resolve():
        body = report.summary_markdown(rep, images, image_prefix="bench/",
                                       report_link="bench/report.md")
        if not report.update_readme(REPO / "README.md", body):
            say("bench: README.md has no bench markers; left as it is")


SECTIONS = ("tap", "encryption", "ssr", "events", "memory", "deploy", "scale")


def _sections(text: str) -> set[str]:
    names = {x.strip() for x in text.split(",") if x.strip()}
    unknown = names - set(SECTIONS)
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"sections are a comma-separated subset of {', '.join(SECTIONS)}")
    return names


def run(args: argparse.Namespace) -> int:
    """``twintap bench``: run every section (or those of ``--only``), write the report; the
    exit status."""
    plan = Plan.make(args.quick)
    out = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="twintap-bench-"))
    rep = report.Report(meta=meta(args.quick))
    t0 = time.monotonic()
    bench = Bench(plan, work, rep)
    say(f"bench: {'quick ' if plan.quick else ''}run in {work}, report to {out}")

    def on_term(signum: int, frame: object) -> None:  # noqa: ARG001
        raise KeyboardInterrupt  # stop what was started, below

    previous = signal.signal(signal.SIGTERM, on_term)
    setup_failed = interrupted = False
    try:
        try:
            bench.start()
        except Exception as e:
            setup_failed = True
            rep.fail("setup", f"{type(e).__name__}: {e}")
            (work / "setup.traceback").write_text(traceback.format_exc())
        if not setup_failed:
            for name in SECTIONS:
                if args.only is None or name in args.only:
                    bench.section(name, getattr(bench, name))
    except KeyboardInterrupt:
        say("bench: interrupted; the report is left as it was")
        interrupted = True
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        bench.stop()
        rep.meta["duration_s"] = time.monotonic() - t0
        (work / "broker.log").write_text("\n".join(bench.broker_log) + "\n")
        if not interrupted:
            write_outputs(rep, out)
        if args.keep or rep.failures or interrupted:
            say(f"bench: work files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for v in rep.verdicts:
        say(f"bench: {'PASS' if v.ok else 'FAIL'}: {v.name}" +
            ("" if v.ok else f": {v.detail}"))
    for f in rep.failures:
        say(f"bench: FAILED {f['section']}: {f['reason']}")
    say(f"bench: {len(rep.figures)} figures in {rep.meta['duration_s']:.0f} s -> "
        f"{out / 'report.md'}")
    if setup_failed:
        return 2
    return 0 if rep.ok else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``twintap bench``."""
    p = sub.add_parser("bench", help="measure boards, links and the cloud path; write a report")
    p.add_argument("--out", default="bench", help="report directory (default: bench)")
    p.add_argument("--quick", action="store_true",
                   help="tiny counts (2 and 4 boards): proves the machinery in seconds")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--only", type=_sections, metavar="SECTIONS",
                   help="run only these sections: " + ",".join(SECTIONS))
    p.set_defaults(func=run)
