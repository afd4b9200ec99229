"""Scale: N virtual boards against one broker and platform.

For each N: the time from launching the N boards (all at once) until the platform's store
holds a registration from each; then an idle window; then SSR fan-out rounds, a WRITE of the
setpoint to every instance on ``$/api/v1/mo/{app}``, each round timed until every board's
ack is in (per ack and for the whole round). CPU of mosquitto, of the boards' micropython
processes and of the host is read from /proc for each window. The fan-out floor is the same
rounds answered by N bare paho stand-ins with the boards' own accounts and ack bytes.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from twintap import TwintapError, rpztopics
from twintap.benchlib.boards import Accounts, BenchBoard, PlatformProcess, provision
from twintap.benchlib.mqttbench import AckCollector, Responder, no_delay
from twintap.benchlib.procs import CpuMeter, CpuUse, until
from twintap.benchlib.stats import Series
from twintap.mqttclient import Connection, Credentials
from twintap.proto import rpzcodes as rc


@dataclass
class FanOut:
    """SSR fan-out rounds: latency of each ack, and of each whole round (the last ack)."""

    acks: Series
    rounds: Series
    missing: int = 0
    cpu: CpuUse | None = None
    sample_ack: bytes = b""


@dataclass
class ScaleRun:
    """One N: registration, idle and fan-out figures, and the stand-ins' fan-out."""

    n: int
    ready_s: float = 0.0
    register_s: float = 0.0
    cpu_register: CpuUse | None = None
    cpu_idle: CpuUse | None = None
    fanout: FanOut | None = None
    baseline: FanOut | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The run as a JSON object (CPU as percentages)."""
        def cpu(c: CpuUse | None) -> dict | None:
            return None if c is None else {"seconds": c.seconds, "host_pct": c.host,
                                           **{f"{k}_pct": v for k, v in c.groups.items()}}

        def fo(f: FanOut | None) -> dict | None:
            return None if f is None else {"acks": f.acks.summary(),
                                           "rounds": f.rounds.summary(),
                                           "missing": f.missing, "cpu": cpu(f.cpu)}

        return {"n": self.n, "ready_s": self.ready_s, "register_s": self.register_s,
                "cpu_register": cpu(self.cpu_register), "cpu_idle": cpu(self.cpu_idle),
                "fanout": fo(self.fanout), "baseline": fo(self.baseline), "notes": self.notes}


def fan_out(url: str, platform: Credentials, app: str, n: int, rounds: int, seconds: float,
            cpu: CpuMeter, timeout: float = 15.0) -> FanOut:
    """WRITEs to every instance of ``app``, one after the other, each waiting for ``n``
    acks: at least ``rounds`` of them and for at least ``seconds`` (the CPU window)."""
    collector = AckCollector()
    acks = Series("acks")
    whole = Series("rounds")
    missing = 0
    sample = b""
    with Connection(url, platform, client_id=f"bench-fanout-{app}",
                    on_message=collector) as conn:
        no_delay(conn.connect(10))
        conn.subscribe([f"{rpztopics.MO}{app}/cid/+/ack/+"], 1)
        cpu.start()
        clock = time.perf_counter
        start = clock()
        r = 0
        while r < rounds or clock() - start < seconds:
            r += 1
            mid = 500000 + r
            body = json.dumps({"mid": mid, "op": rc.WRITE,
                               "msg": {"n": "setpoint", "v": 100 + r % 1000}})
            t0 = clock()
            conn.publish(rpztopics.ssr_all(app), body, 1, wait=False)
            got: set[str] = set()
            last = t0
            deadline = time.monotonic() + timeout
            while len(got) < n and time.monotonic() < deadline:
                try:
                    cid, t, payload = collector.wait(str(mid), deadline - time.monotonic())
                except TwintapError:
                    break
                if cid in got:
                    continue
                got.add(cid)
                acks.samples.append(t - t0)
                last = t
                sample = payload
            missing += n - len(got)
            whole.samples.append(last - t0)
        acks.wall = whole.wall = clock() - start
        use = cpu.stop()
    return FanOut(acks, whole, missing, use, sample)


def scale_run(work: Path, accounts: Accounts, url: str, platform: PlatformProcess,
              broker_pid: int, n: int, rounds: int, seconds: float, idle_s: float) -> ScaleRun:
    """Start ``n`` boards at once, measure, stop them, then the stand-ins' fan-out."""
    app = f"scale{n}"
    run = ScaleRun(n)
    boards: list[BenchBoard] = []
    for i in range(n):
        flash = work / f"scale-{n}-{i}"
        shutil.rmtree(flash, ignore_errors=True)
        provision(flash, accounts, url, app, f"b{i}", ssr_per_s=1000)
        boards.append(BenchBoard(flash))
    pids = {"mosquitto": lambda: [broker_pid], "boards": lambda: [b.pid for b in boards],
            "platform": lambda: [platform.proc.pid]}
    errors: list[str] = []
    started = threading.Semaphore(0)
    done = threading.Event()

    def launch(b: BenchBoard) -> None:
        # a board dies with the thread that started it (PR_SET_PDEATHSIG is per thread):
        # this one lives until the boards are stopped
        try:
            b.start(120)
        except TwintapError as e:
            errors.append(str(e))
        started.release()
        done.wait()

    try:
        cpu = CpuMeter(pids).start()
        t0 = time.monotonic()
        threads = [threading.Thread(target=launch, args=(b,), daemon=True) for b in boards]
        for t in threads:
            t.start()
        for _ in threads:
            started.acquire()
        run.ready_s = time.monotonic() - t0
        if errors:
            raise TwintapError(f"{len(errors)} of {n} boards did not start: {errors[0]}")
        try:
            until(lambda: platform.registered(app) >= n, 60 + 3 * n, f"{n} registrations")
        except TwintapError as e:  # say what the boards that did not register were doing
            quiet = [b for b in boards if not any("[rpz] registered" in x for x in b.lines)]
            tails = "; ".join(f"{b.flash.name}: " + " | ".join(list(b.lines)[-4:])
                              for b in quiet[:2])
            raise TwintapError(f"{e} ({len(quiet)} never registered; {tails})") from e
        run.register_s = time.monotonic() - t0
        run.cpu_register = cpu.stop()
        idle = CpuMeter(pids).start()
        time.sleep(idle_s)  # the idle window being measured, not a wait for readiness
        run.cpu_idle = idle.stop()
        run.fanout = fan_out(url, accounts.platform(), app, n, rounds, seconds, CpuMeter(pids))
    finally:
        for b in boards:
            b.stop()
        done.set()
    answer = run.fanout.sample_ack if run.fanout else b"{}"
    stand_ins = [Responder(url, accounts.creds(app, f"b{i}"), app, f"b{i}",
                           lambda req, a=answer: a) for i in range(n)]
    try:
        for s in stand_ins:
            s.start()
        run.baseline = fan_out(url, accounts.platform(), app, n, rounds, seconds,
                               CpuMeter({"mosquitto": lambda: [broker_pid],
                                         "boards": lambda: [],
                                         "platform": lambda: [platform.proc.pid]}))
    finally:
        for s in stand_ins:
            s.stop()
    return run
