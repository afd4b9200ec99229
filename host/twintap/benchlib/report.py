"""The bench report: ``report.json`` (everything), ``report.md`` (tables, verdicts, plots),
``README-table.md`` (the summary the README shows) and PNG plots (matplotlib, Agg).

README.md itself is only touched between ``<!-- bench:start -->`` and ``<!-- bench:end -->``.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from twintap.benchlib.stats import Figure, fmt, fmt_ratio

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"

SECTION_TITLES = {
    "tap": "Tap latency (virtual board vs a MicroPython echo of the same bytes)",
    "encryption": "Encrypted session (SCRAM) vs plain",
    "ssr": "SSR round trip vs a bare MQTT ping-pong",
    "events": "Event throughput vs a bare umqtt.simple loop",
    "memory": "Memory",
    "deploy": "Deploy vs `mpremote cp -r`",
    "scale": "Scale: boards against one broker",
}


@dataclass
class Verdict:
    """A pass/fail line shown at the top of the report."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    """Everything one bench run found."""

    meta: dict = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    data: dict = field(default_factory=dict)

    def add(self, section: str, name: str, unit: str, value: float | None,
            baseline: float | None, baseline_name: str, better: str = "lower",
            note: str = "") -> Figure:
        """Add one figure (value and the baseline measured in the same run)."""
        f = Figure(section, name, unit, value, baseline, baseline_name, better, note)
        self.figures.append(f)
        return f

    def note(self, section: str, text: str) -> None:
        """A sentence under a section's table."""
        self.notes.setdefault(section, []).append(text)

    def skip(self, section: str, reason: str) -> None:
        """A measurement that was not made, and why."""
        self.skipped.append({"section": section, "reason": reason})

    def fail(self, section: str, reason: str) -> None:
        """A measurement that failed (the run exits non-zero)."""
        self.failures.append({"section": section, "reason": reason})

    @property
    def ok(self) -> bool:
        """No failure and every verdict passed."""
        return not self.failures and all(v.ok for v in self.verdicts)

    def to_json(self) -> dict:
        """The whole report as a JSON object."""
        return {
            "meta": self.meta, "ok": self.ok,
            "verdicts": [v.__dict__ for v in self.verdicts],
            "figures": [f.to_json() for f in self.figures],
            "skipped": self.skipped, "failures": self.failures, "notes": self.notes,
            "data": self.data,
        }


# -- markdown -----------------------------------------------------------------------------------
def _table(figures: list[Figure]) -> list[str]:
    out = ["| measure | twintap | baseline | ratio |", "|---|---:|---|---:|"]
    for f in figures:
        base = f"{fmt(f.baseline, f.unit)} ({f.baseline_name})" if f.baseline_name else "-"
        name = f.name + (f" — {f.note}" if f.note else "")
        out.append(f"| {name} | {fmt(f.value, f.unit)} | {base} | {fmt_ratio(f.ratio)} |")
    return out


def _verdicts(r: Report) -> list[str]:
    out = []
    for v in r.verdicts:
        mark = "PASS" if v.ok else "FAIL"
        out.append(f"- **{mark}**: {v.name}" + (f" — {v.detail}" if v.detail else ""))
    for f in r.failures:
        out.append(f"- **FAIL** ({f['section']}): {f['reason']}")
    return out


def _header(r: Report) -> list[str]:
    m = r.meta
    return [
        f"Run {m.get('generated', '?')} on {m.get('cpus', '?')} CPUs"
        f" ({m.get('machine', '')}), {m.get('micropython', '')}, {m.get('mosquitto', '')};"
        f" {m.get('duration_s', 0):.0f} s{' (--quick: tiny counts)' if m.get('quick') else ''}."
        " Ratio = twintap / baseline; each baseline was measured in the same run.",
    ]


def markdown(r: Report, images: list[tuple[str, str]], image_prefix: str = "") -> str:
    """The full report (``report.md``)."""
    lines = ["# twintap bench report", "", *_header(r), ""]
    v = _verdicts(r)
    if v:
        lines += ["## Verdicts", "", *v, ""]
    for key, title in SECTION_TITLES.items():
        figs = [f for f in r.figures if f.section == key]
        skipped = [s for s in r.skipped if s["section"] == key]
        failed = [s for s in r.failures if s["section"] == key]
        if not (figs or skipped or failed or r.notes.get(key)):
            continue
        lines += [f"## {title}", ""]
        if figs:
            lines += _table(figs) + [""]
        for n in r.notes.get(key, []):
            lines += [f"- {n}"]
        for s in skipped:
            lines += [f"- Skipped: {s['reason']}"]
        for s in failed:
            lines += [f"- **Failed**: {s['reason']}"]
        lines += [""]
    if images:
        lines += ["## Plots", ""]
        lines += [f"![{alt}]({image_prefix}{name})" for name, alt in images]
        lines += [""]
    return "\n".join(lines)


def summary_markdown(r: Report, images: list[tuple[str, str]], image_prefix: str = "",
                     report_link: str = "report.md") -> str:
    """What the README shows: verdicts, one table of every figure, the plots."""
    lines = [*_header(r), ""]
    lines += _verdicts(r) + ([""] if r.verdicts or r.failures else [])
    lines += ["| section | measure | twintap | baseline | ratio |", "|---|---|---:|---|---:|"]
    for f in r.figures:
        base = f"{fmt(f.baseline, f.unit)} ({f.baseline_name})" if f.baseline_name else "-"
        lines.append(f"| {f.section} | {f.name} | {fmt(f.value, f.unit)} | {base} | "
                     f"{fmt_ratio(f.ratio)} |")
    lines.append("")
    for s in r.skipped:
        lines.append(f"- Skipped ({s['section']}): {s['reason']}")
    if r.skipped:
        lines.append("")
    lines.append(f"Details, notes and method: [{report_link}]({report_link}).")
    lines.append("")
    lines += [f"![{alt}]({image_prefix}{name})" for name, alt in images]
    return "\n".join(lines)


def update_readme(readme: Path, body: str) -> bool:
    """Replace what is between the bench markers of ``readme``; False when it has none."""
    text = readme.read_text()
    i, j = text.find(START), text.find(END)
    if i < 0 or j < i:
        return False
    new = text[: i + len(START)] + "\n" + body.rstrip("\n") + "\n" + text[j:]
    if new != text:
        tmp = readme.with_suffix(".bench-tmp")
        tmp.write_text(new)
        os.replace(tmp, readme)
    return True


def write(r: Report, out: Path) -> None:
    """``report.json`` (NaN written as null)."""
    def clean(x: object) -> object:
        if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    (out / "report.json").write_text(json.dumps(clean(r.to_json()), indent=1) + "\n")


# -- plots ---------------------------------------------------------------------------------------
def plots(r: Report, out: Path) -> list[tuple[str, str]]:
    """Draw the PNG plots for what was measured; returns (file name, caption) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[tuple[str, str]] = []

    def save(fig, name: str, alt: str) -> None:  # noqa: ANN001
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        made.append((name, alt))

    tap = r.data.get("tap", {}).get("series", [])
    if tap:
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        labels = [f"{s['link']}\n{s['request'].replace('GET ', '')}" for s in tap]
        x = range(len(tap))
        w = 0.38
        for k, (key, name) in enumerate((("board", "virtual board"), ("echo", "echo floor"))):
            xs = [i + (k - 0.5) * w for i in x]
            ax[0].bar(xs, [s[key]["p50_ms"] for s in tap], w, label=f"{name} p50")
            ax[0].scatter(xs, [s[key]["p99_ms"] for s in tap], marker="_", s=300, color="k",
                          zorder=3, label="p99" if k == 0 else None)
        ax[0].set_yscale("log")
        ax[0].set_ylabel("round trip (ms, log)")
        ax[0].set_xticks(list(x), labels, fontsize=8)
        ax[0].set_title("Tap request latency")
        ax[0].legend(fontsize=8)
        for s in tap:
            if s["request"] != "GET /3//2":
                continue
            line = ax[1].plot(*zip(*s["board"]["cdf_ms"], strict=True), label=f"{s['link']}")
            ax[1].plot(*zip(*s["echo"]["cdf_ms"], strict=True), "--",
                       color=line[0].get_color(), label=f"{s['link']} echo")
        ax[1].set_xscale("log")
        ax[1].set_xlabel("round trip (ms, log)")
        ax[1].set_ylabel("fraction of requests")
        ax[1].set_title("GET /3//2: distribution (dashed: echo floor)")
        ax[1].legend(fontsize=8)
        save(fig, "tap_latency.png", "Tap latency: virtual board vs echo floor")

    cloud = [f for f in r.figures if f.section in ("encryption", "ssr", "events")
             and f.value and f.baseline and f.unit in ("ms", "events/s")]
    if cloud:
        panels = [[f for f in cloud if f.unit == "ms"], [f for f in cloud if f.unit != "ms"]]
        panels = [x for x in panels if x]
        rows = max(len(x) for x in panels)
        fig, axes = plt.subplots(1, len(panels), figsize=(12, 1.2 + 0.55 * rows),
                                 squeeze=False)
        for ax, figs in zip(axes[0], panels, strict=True):
            y = range(len(figs))
            ax.barh([i + 0.2 for i in y], [f.value for f in figs], 0.4, label="twintap")
            ax.barh([i - 0.2 for i in y], [f.baseline for f in figs], 0.4,
                    label="baseline (in brackets)")
            ax.set_yticks(list(y), [textwrap.fill(f.name, 34) + f"\n({f.baseline_name})"
                                    for f in figs], fontsize=7)
            ax.set_ylim(max(rows, 2) - 0.5, -0.5)
            ax.set_xscale("log")
            ax.set_xlabel(f"{figs[0].unit} (log)")
            ax.legend(fontsize=7)
        axes[0][0].set_title("Encrypted reads, SSR round trips" if panels[0][0].unit == "ms"
                             else "Events per second")
        if len(panels) > 1:
            axes[0][1].set_title("Events per second at the subscriber")
        save(fig, "cloud.png", "Encryption, SSR round trip and event throughput vs baselines")

    mem = r.data.get("memory", {}).get("search")
    if mem and mem.get("probes"):
        fig, ax = plt.subplots(figsize=(7, 4))
        probes = sorted(mem["probes"], key=lambda p: p["heap_kb"])
        ok = [p for p in probes if p["ok"]]
        bad = [p for p in probes if not p["ok"]]
        ax.scatter([p["heap_kb"] for p in ok], [p["in_use_start"] / 1024 for p in ok],
                   marker="o", label="served: in use after start-up")
        ax.scatter([p["heap_kb"] for p in ok], [p["in_use_after"] / 1024 for p in ok],
                   marker="x", label="served: in use after the requests")
        ax.scatter([p["heap_kb"] for p in bad], [p["usable"] / 1024 for p in bad],
                   marker="v", color="red", label="did not start or serve (at usable heap)")
        xs = [p["heap_kb"] for p in probes]
        ax.plot(xs, [p["usable"] / 1024 for p in probes], ":", color="grey",
                label="usable heap")
        ax.axvline(mem["target_kb"], color="red", lw=0.8)
        ax.text(mem["target_kb"], ax.get_ylim()[1] * 0.95, f" {mem['target_kb']}K",
                color="red", va="top")
        ax.set_xlabel("--heap (KB)")
        ax.set_ylabel("KB")
        ax.set_title("Python heap: binary search over --heap")
        ax.legend(fontsize=7)
        save(fig, "memory.png", "Heap in use and the smallest heap the board serves with")

    runs = r.data.get("scale", {}).get("runs", [])
    runs = [x for x in runs if x.get("fanout")]
    if runs:
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        ns = [x["n"] for x in runs]
        ax[0].plot(ns, [x["register_s"] for x in runs], "o-", label="all registered")
        ax[0].plot(ns, [x["ready_s"] for x in runs], "s--", label="all READY")
        ax[0].set_xlabel("boards")
        ax[0].set_ylabel("s after launch")
        ax[0].set_title("Start-up and registration")
        ax[0].legend(fontsize=8)
        ax[1].plot(ns, [x["fanout"]["rounds"]["p99_ms"] for x in runs], "o-",
                   label="boards: all acks p99")
        ax[1].plot(ns, [x["fanout"]["acks"]["p99_ms"] for x in runs], "o:",
                   label="boards: per ack p99")
        ax[1].plot(ns, [x["baseline"]["rounds"]["p99_ms"] for x in runs if x["baseline"]],
                   "s--", label="paho stand-ins: all acks p99")
        ax[1].set_xlabel("boards")
        ax[1].set_ylabel("ms")
        ax[1].set_title("SSR fan-out to every instance")
        ax[1].legend(fontsize=8)
        save(fig, "scale.png", "Scale: registration and SSR fan-out vs number of boards")

    dep = [f for f in r.figures if f.section == "deploy" and f.value is not None]
    if dep:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        x = range(len(dep))
        ax.bar([i - 0.2 for i in x], [f.value for f in dep], 0.4, label="twintap deploy")
        ax.bar([i + 0.2 for i in x], [f.baseline or 0 for f in dep], 0.4,
               label="mpremote cp -r")
        ax.set_xticks(list(x), [f.name for f in dep], fontsize=8)
        ax.set_ylabel("s")
        ax.set_title("Deploy to a virtual board over its REPL pty")
        ax.legend(fontsize=8)
        save(fig, "deploy.png", "Deploy times vs mpremote cp -r")
    return made
