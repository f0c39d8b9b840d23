"""The machine description, the printed table, the JSON and the PNG."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.procs import BENCH_ROOT, fd_hard_limit
from bench.results import Figure, Run


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_mb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_mb": memory_mb,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "fd_hard_limit": fd_hard_limit(),
        "loadavg_at_start": os.getloadavg(),
        "service_commit": _git("rev-parse", "--short", "HEAD"),
        "service_uncommitted_files": len(_git("status", "--porcelain").splitlines()),
    }


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=BENCH_ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def header(info: dict[str, Any], tool: str, quick: bool) -> str:
    return (
        f"petitions benchmark ({'quick' if quick else 'full'}) — {info['nproc']} cores "
        f"({info['cpu_model']}), {info['memory_mb'] // 1024} GB, Python {info['python']}, "
        f"service {info['service_commit']}"
        f"{' + uncommitted changes' if info['service_uncommitted_files'] else ''}; "
        f"load: {tool}; server and load share the cores: compare RATIOS, not absolutes"
    )


def _value(figure: Figure | None) -> str:
    if figure is None or figure.value is None:
        return "—"
    value = figure.value
    if figure.unit in ("ok", "FAIL"):
        return figure.unit
    if isinstance(value, float) and math.isinf(value):
        return "never"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if figure.unit == "req/s":
        return f"{value:,.0f}/s"
    if figure.unit == "share":
        return f"{value:.0%}"
    if figure.unit == "names":
        return f"{value:,.0f}"
    return f"{value:,.1f} {figure.unit}"


def _ratio(figure: Figure | None) -> str:
    if figure is None or figure.ratio is None or math.isnan(figure.ratio):
        return ""
    return f"{figure.ratio:.2f}× {figure.ratio_of}"


def _met(figure: Figure | None) -> str:
    if figure is None or not figure.target:
        return ""
    return {True: "yes", False: "NO", None: "?"}[figure.met]


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def table(runs: list[Run]) -> str:
    keys: list[str] = []
    labels: dict[str, str] = {}
    targets: dict[str, str] = {}
    for run in runs:
        for figure in run.figures:
            if figure.key not in labels:
                keys.append(figure.key)
                labels[figure.key] = figure.label
                targets[figure.key] = figure.target
    head = ["figure"]
    for run in runs:
        head += [f"{run.backend}", "ratio", "met?"]
    head.append("target")
    rows = [head]
    for key in keys:
        row = [labels[key]]
        for run in runs:
            found = run.figure(key)
            row += [_value(found), _ratio(found), _met(found)]
        row.append(targets[key])
        rows.append(row)
    text = _table(rows)
    for run in runs:
        notes = [f"  {f.label}: {f.note}" for f in run.figures if f.note]
        if notes:
            text += f"\n\nnotes ({run.backend}):\n" + "\n".join(notes)
        for phase, findings in run.server_log.items():
            top = sorted(findings.items(), key=lambda item: -item[1])[:3]
            text += f"\nserver log ({run.backend}, {phase}): " + "; ".join(
                f"{count}× {message}" for message, count in top
            )
        for failure in run.failures:
            text += f"\nCORRECTNESS FAILURE ({run.backend}): {failure}"
        for broken in run.broken:
            text += f"\nBROKEN ({run.backend}): {broken}"
    return text


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_jsonable, allow_nan=False) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, set | tuple):
        return list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def clean_nan(value: Any) -> Any:
    """JSON has no NaN or infinity: write null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_nan(v) for v in value]
    return value


def _floor(value: Any, floor: float) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    return max(float(value), floor)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def plot(path: Path, runs: list[Run], title: str) -> bool:
    """Four panels; False (and no file) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    canvas, axes = plt.subplots(2, 2, figsize=(13, 9))
    (sign, fan), (page, memory) = axes
    for run in runs:
        points = run.series.get("sign_vs_connections", [])
        if points:
            sign.plot(
                [p["connections"] for p in points],
                [p["rps"] for p in points],
                "o-",
                label=f"{run.backend} signPetition",
            )
        noop = run.figure("noop")
        if noop and noop.value:
            sign.axhline(noop.value * 0.5, linestyle=":", color="grey")
        points = run.series.get("fanout", [])
        if points:
            xs = [p["subscribers"] for p in points]
            for key, style, what in (
                ("p99_ms", "o-", "p99 after ack"),
                ("p50_ms", "s--", "p50 after ack"),
                ("from_send_p99_ms", "^:", "p99 after send"),
            ):
                ys = [_floor(p.get(key), 1.0) for p in points]
                fan.plot(xs, ys, style, label=f"{run.backend} {what}")
            memory.plot(
                xs,
                [p["kb_per_subscriber"] for p in points],
                "o-",
                label=f"{run.backend} KB/subscriber",
            )
        points = run.series.get("page_vs_depth", [])
        if points:
            page.plot(
                [max(p["depth"], 1) for p in points],
                [p["ms_per_request"] for p in points],
                "o-",
                label=f"{run.backend} (depth 0 drawn at 1)",
            )
    sign.axhline(2000, linestyle="--", color="red", label="target 2,000/s")
    sign.set(
        xscale="log",
        xlabel="connections",
        ylabel="signatures/s",
        title="signing throughput vs concurrency (dotted: 0.5× noop)",
    )
    fan.axhline(1000, linestyle="--", color="red", label="target p99 1 s")
    fan.set(
        xlabel="idle signatureCount subscribers",
        ylabel="delay (ms; drawn at ≥ 1)",
        yscale="log",
        title="count delivery delay vs subscribers",
    )
    page.set(
        xscale="log",
        xlabel="depth (signatures skipped)",
        ylabel="ms per page (1 / throughput)",
        title="page of 10 signers vs depth",
    )
    memory.axhline(40, linestyle="--", color="red", label="target 40 KB")
    memory.set(
        xlabel="idle subscribers",
        ylabel="server RSS per subscriber (KB)",
        title="memory vs subscribers",
    )
    for axis in (sign, fan, page, memory):
        axis.grid(True, alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    for axis in (sign, page, memory):
        axis.set_ylim(bottom=0)
    canvas.suptitle(textwrap.fill(title, 150), fontsize=9)
    canvas.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.savefig(path, dpi=110)
    plt.close(canvas)
    return True
