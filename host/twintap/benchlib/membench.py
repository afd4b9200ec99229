"""Memory: the Python heap a virtual board needs, and what it uses.

``micropython -X heapsize=N`` bounds the heap; the unix port is 64-bit, so its objects are
about twice their ESP32 size (96K here is about 48 KB there). A probe starts a fresh board
(provisioned: it goes online, registers, reads its values back, as a deployed board does;
its BLE radio on)
with a given heap and asks whether it starts and serves: READY, online and registered,
mixed Tap requests all answered, and no MemoryError in its log. The heap in use is the usable
heap (``gc.mem_free() + gc.mem_alloc()`` of a bare interpreter with the same bound) less the
free heap the board reports after a collection (``GET /3//10``).
"""

from __future__ import annotations

import inspect
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from twintap import TwintapError
from twintap.benchlib.boards import BenchBoard
from twintap.benchlib.tapbench import GET_FREE_HEAP, RawTcp, set_setpoint
from twintap.paths import FIRMWARE
from twintap.proto import frame
from twintap.vboard import VirtualBoard, compile_firmware, micropython_path

#: mixed requests: (request APDU, the status that answers it)
MIXED: list[tuple[bytes, int]] = [
    (frame.encode_request(frame.GET, 3, None, 2), 0x45),
    (frame.encode_request(frame.GET, 1029, 5, 4), 0x45),
    (frame.encode_request(frame.GET, 1029, None, 4), 0x45),
    (frame.encode_request(frame.GET, 1028, 1, 1), 0x45),
    (frame.encode_request(frame.GET, 1029, 1, 4), 0x45),
    (frame.encode_request(frame.GET, 3, None, 3), 0x45),
    (frame.encode_request(frame.GET, 1025, 0xFFFF, 0), 0x45),
]
WRITE_EVERY = 8  # one setpoint write (a change event for the cloud link) in every 8 requests


def usable_heap(kb: int) -> int:
    """Bytes a bare ``micropython -X heapsize={kb}K`` can allocate (free + allocated)."""
    r = subprocess.run(
        [micropython_path(), "-X", f"heapsize={kb}K", "-c",
         "import gc; gc.collect(); print(gc.mem_free() + gc.mem_alloc())"],
        capture_output=True, text=True, timeout=20,
    )
    if r.returncode != 0:
        raise TwintapError(f"micropython -X heapsize={kb}K: {r.stderr.strip()}")
    return int(r.stdout.strip())


def free_heap(c: RawTcp) -> int:
    """The board's free heap after a collection (``GET /3//10``, u32)."""
    status, data = c.request(GET_FREE_HEAP)
    if status != 0x45 or len(data) != 4:
        raise TwintapError(f"GET /3//10 answered {status:#04x}")
    return struct.unpack(">I", data)[0]


def mixed_requests(c: RawTcp, count: int) -> None:
    """``count`` mixed requests (reads of every kind, a setpoint write every 8th); raises on
    an unexpected answer."""
    for i in range(count):
        if i % WRITE_EVERY == WRITE_EVERY - 1:
            req, want = set_setpoint(2000 + i % 10000), 0x44
        else:
            req, want = MIXED[i % len(MIXED)]
        status, _ = c.request(req)
        if status != want:
            raise TwintapError(f"request {i} ({req.hex(' ')}) answered {status:#04x}")


@dataclass
class Probe:
    """One board start with a given heap, and what came of it."""

    heap_kb: int
    ok: bool
    reason: str = ""
    usable: int = 0
    free_start: int | None = None
    free_after: int | None = None
    requests: int = 0
    seconds: float = 0.0

    @property
    def in_use_start(self) -> int | None:
        """Heap in use after start-up (bytes), if the board answered."""
        return None if self.free_start is None else self.usable - self.free_start

    @property
    def in_use_after(self) -> int | None:
        """Heap in use after the mixed requests (bytes), if it served them."""
        return None if self.free_after is None else self.usable - self.free_after

    def to_json(self) -> dict:
        """The probe as a JSON object, with the in-use figures."""
        d = asdict(self)
        d["in_use_start"] = self.in_use_start
        d["in_use_after"] = self.in_use_after
        return d


def _why(board: BenchBoard, err: Exception) -> str:
    """The board's own words for a failure: its MemoryError line and where it came from."""
    lines = board.tail(40)
    for i, line in enumerate(lines):
        if "MemoryError" in line:
            where = [x.strip() for x in lines[max(0, i - 3):i] if x.strip().startswith("File")]
            return line.strip() + (f" (at {where[-1]})" if where else "")
    return str(err)


def probe(work: Path, heap_kb: int, provision: Callable[[Path], None] | None,
          requests: int, online_timeout: float = 20.0, ble: bool = True,
          romfs: bool = False) -> Probe:
    """Start a fresh board with ``heap_kb``K of heap (and its BLE radio, when ``ble`` and the
    virtual board has one; its firmware in a ROMFS partition when ``romfs``) and check that
    it starts and serves."""
    flash = work / f"mem-{heap_kb}k"
    shutil.rmtree(flash, ignore_errors=True)
    if provision:
        provision(flash)
    p = Probe(heap_kb, False, usable=usable_heap(heap_kb))
    t0 = time.monotonic()
    kw: dict = {"heap": f"{heap_kb}K"}
    if ble and "ble" in inspect.signature(VirtualBoard).parameters:
        kw["ble"] = work / f"mem-{heap_kb}k.ble"
    if romfs:
        kw["romfs"] = True
    board = BenchBoard(flash, **kw)
    try:
        board.start(30)
        if provision:
            board.wait_for(r"\[I\]\[rpz\] online as ", online_timeout, fail="MemoryError")
            board.wait_for(r"\[I\]\[rpz\] (registered \d+ properties|declaration unchanged)",
                           online_timeout, fail="MemoryError")
        c = RawTcp(board.tcp_port, timeout=10)
        try:
            p.free_start = free_heap(c)
            mixed_requests(c, requests)
            p.requests = requests
            p.free_after = free_heap(c)
        finally:
            c.close()
        if board.vb.exited.is_set():
            raise TwintapError("the board exited")
        bad = [x for x in board.tail(500) if "MemoryError" in x]
        if bad:
            raise TwintapError(bad[0].strip())
        p.ok = True
    except (TwintapError, OSError) as e:
        p.reason = _why(board, e)
    finally:
        board.stop()
        p.seconds = time.monotonic() - t0
    return p


@dataclass
class HeapSearch:
    """The binary search over ``--heap``: every probe, and the smallest heap that served."""

    target_kb: int
    probes: list[Probe] = field(default_factory=list)
    smallest: Probe | None = None
    final: Probe | None = None

    @property
    def target(self) -> Probe | None:
        """The probe at the target heap (96K)."""
        return next((p for p in self.probes if p.heap_kb == self.target_kb), None)

    def to_json(self) -> dict:
        """The search as a JSON object."""
        return {"target_kb": self.target_kb, "probes": [p.to_json() for p in self.probes],
                "smallest_kb": self.smallest.heap_kb if self.smallest else None,
                "final": self.final.to_json() if self.final else None}


def search_heap(run: Callable[[int, int], Probe], target_kb: int, hi_kb: int, step_kb: int,
                probe_requests: int, final_requests: int) -> HeapSearch:
    """Probe ``target_kb``; if it fails, binary-search the smallest heap (to ``step_kb``)
    up to ``hi_kb``; then run ``final_requests`` at the smallest (stepping up if that fails
    after many requests)."""
    s = HeapSearch(target_kb)

    def go(kb: int, n: int) -> Probe:
        p = run(kb, n)
        s.probes.append(p)
        return p

    first = go(target_kb, probe_requests)
    if first.ok:
        lo, hi = target_kb, target_kb
    else:
        top = go(hi_kb, probe_requests)
        if not top.ok:
            return s
        lo, hi = target_kb, hi_kb
        while hi - lo > step_kb:
            mid = max(lo + step_kb, (lo + hi) // 2 // step_kb * step_kb)
            if go(mid, probe_requests).ok:
                hi = mid
            else:
                lo = mid
    for kb in (hi, hi + step_kb, hi + 2 * step_kb):
        final = go(kb, final_requests)
        if final.ok:
            s.smallest, s.final = final, final
            break
    return s


def firmware_sizes() -> dict[str, int]:
    """Bytes of the deployed ``.mpy`` files (``compile_firmware()``), of their sources, and
    of ``main.py``."""
    mpy = compile_firmware()
    return {
        "mpy": sum(p.stat().st_size for p in mpy.rglob("*.mpy")),
        "mpy_files": len(list(mpy.rglob("*.mpy"))),
        "py": sum(p.stat().st_size for p in (FIRMWARE / "twintap").rglob("*.py")),
        "main_py": (FIRMWARE / "main.py").stat().st_size,
    }
