"""``twintap bench``: the pure parts (percentiles, ratios, the heap search, the README
section), and one ``twintap bench --quick`` run end to end (broker, platform, boards, echo
floors, umqtt loop, deploy, 2 and 4 boards) that must write the whole report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from twintap.benchlib import membench, report
from twintap.benchlib.procs import CpuMeter, process_ticks
from twintap.benchlib.stats import Figure, Series, fmt, fmt_ratio, percentile

REPO = Path(__file__).resolve().parents[2]
from twintap.bench import SECTIONS  # noqa: E402


def test_percentiles_and_series():
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile(list(range(101)), 99) == 99
    s = Series("x", [0.001] * 99 + [0.010], wall=0.2)
    assert s.p50 == 0.001 and round(s.p99 * 1000, 3) == 1.09
    assert s.rate == 500
    assert s.cdf()[-1] == (10.0, 1.0)


def test_figures_carry_their_ratio():
    f = Figure("tap", "x", "ms", 3.0, 1.5, "echo")
    assert f.ratio == 2.0 and f.to_json()["ratio"] == 2.0
    assert Figure("tap", "x", "ms", 3.0, 0.0, "echo").ratio is None
    assert fmt(0.0456, "ms") == "0.046 ms" and fmt(84392, "B") == "84,392 B"
    assert fmt_ratio(2.0) == "2.00×" and fmt_ratio(None) == "-"


def test_heap_search_finds_the_smallest_heap():
    need = 200

    def run(kb: int, n: int) -> membench.Probe:
        return membench.Probe(kb, kb >= need, "" if kb >= need else "MemoryError",
                              usable=kb * 1024, free_start=1024, free_after=1000, requests=n)

    s = membench.search_heap(run, 96, 1024, 8, 10, 100)
    assert s.target and not s.target.ok
    assert s.smallest is not None and s.smallest.heap_kb == 200 and s.final.requests == 100
    assert s.to_json()["smallest_kb"] == 200
    need = 0
    ok = membench.search_heap(run, 96, 1024, 8, 10, 100)
    assert [p.heap_kb for p in ok.probes] == [96, 96] and ok.smallest.heap_kb == 96


def test_readme_section_is_replaced_between_its_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro\n\n## Bench\n\n{report.START}\nold\n{report.END}\n\ntail\n")
    assert report.update_readme(readme, "| new |\n")
    assert readme.read_text() == (f"# x\n\nintro\n\n## Bench\n\n{report.START}\n| new |\n"
                                  f"{report.END}\n\ntail\n")
    plain = tmp_path / "OTHER.md"
    plain.write_text("no markers\n")
    assert not report.update_readme(plain, "x") and plain.read_text() == "no markers\n"


def test_cpu_meter_reads_proc():
    assert process_ticks(os.getpid()) >= 0 and process_ticks(2**22 + 7) == 0
    m = CpuMeter({"me": lambda: [os.getpid()]}).start()
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    use = m.stop()
    assert use.groups["me"] > 0 and 0 <= use.host <= 100


def _leftovers(work: str) -> list[str]:
    """Processes whose command line or working directory is inside the bench's work dir."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(d / "cwd")
        except OSError:
            continue
        if work in cmd or cwd.startswith(work):
            found.append(f"{d.name}: {cmd}")
    return found


def test_quick_bench_writes_the_whole_report(tmp_path):
    out = tmp_path / "out"
    # a hang guard, not a speed goal: speed is make bench's business, never a test's
    # every section (scale's boards once died with the threads that started them: its
    # one-board run is in here to keep that fixed)
    only = list(SECTIONS)
    r = subprocess.run([sys.executable, "-m", "twintap", "bench", "--quick", "--out", str(out),
                        "--only", ",".join(only)],
                       capture_output=True, text=True, timeout=600, cwd=REPO,
                       stdin=subprocess.DEVNULL)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    work = re.search(r"run in (\S+),", r.stdout)[1]
    assert not _leftovers(work), _leftovers(work)

    data = json.loads((out / "report.json").read_text())
    assert data["failures"] == [], data["failures"]
    assert data["meta"]["quick"] is True
    sections = {f["section"] for f in data["figures"]} | {s["section"] for s in data["skipped"]}
    assert set(only) <= sections
    for f in data["figures"]:
        assert f["value"] is not None and f["baseline"] is not None, f
        assert f["baseline_name"], f
    # the latency figures come from real round trips, every one answered right, on the board
    # and on its floor (which of the two is faster is the bench's finding, not a given: the
    # board answers at the floor's speed since the cloud link stopped slowing its loop)
    tcp = [x for x in data["data"]["tap"]["series"]
           if x["link"] == "TCP" and x["request"] == "GET /3//2"][0]
    for side in ("board", "echo"):
        assert tcp[side]["n"] >= 20 and tcp[side]["errors"] == 0, tcp[side]
        assert 0 < tcp[side]["p50_ms"] <= tcp[side]["p99_ms"] <= tcp[side]["max_ms"], tcp[side]
    # the 96K verdicts (Tap endpoint, deployed board) are there; the exit status follows them
    heap = [v for v in data["verdicts"] if "--heap 96K" in v["name"]]
    assert len(heap) == 2 and "Tap endpoint" in heap[0]["name"]
    assert r.returncode == (0 if data["ok"] else 1)
    for v, key in zip(heap, ("tap", "search"), strict=True):
        if not v["ok"]:
            assert v["detail"] and "FAIL" in (out / "report.md").read_text()
        assert data["data"]["memory"][key]["smallest_kb"]
    # what the BLE link and the cloud link each add over the Tap endpoint alone, measured
    feats = [f for f in data["figures"] if f["name"].startswith("by feature:")]
    assert len(feats) == 3 and all(f["ratio"] > 1 for f in feats), feats

    md = (out / "report.md").read_text()
    for key in only:
        assert f"## {report.SECTION_TITLES[key]}" in md
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"tap_latency.png", "cloud.png", "memory.png"} <= set(pngs)
    for p in pngs:
        assert (out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({p})" in md
    assert (out / "README-table.md").read_text().count("|") > 20
