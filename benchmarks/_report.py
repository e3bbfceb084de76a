"""Machine description, versions and the plain-text results table."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("nescot", "jax", "jaxlib", "ott-jax", "flax", "optax", "diffrax", "numpy", "scipy", "anndata", "scanpy")


def versions() -> dict[str, str]:
    """Installed versions of the packages the numbers depend on."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git_commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        res = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True)
        return res.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def _mem_total_gib() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return float("nan")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """Host, CPU, memory, JAX backend and the load average (the machine may be shared)."""
    import jax

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_gib": _mem_total_gib(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "load_avg_1_5_15": [round(v, 2) for v in os.getloadavg()],
        "git_commit": _git_commit(),
    }


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v == 0 or 1e-3 <= abs(v) < 1e5:
            return f"{v:.4g}"
        return f"{v:.3e}"
    return str(v)


def format_rows(rows: list[dict]) -> str:
    """Align a list of dicts as a text table (columns: union of keys, in first-seen order)."""
    if not rows:
        return "  (no rows)"
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    cells = [[_fmt(row.get(c, "")) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    line = "  " + "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    sep = "  " + "  ".join("-" * w for w in widths)
    body = ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, sep, *body])


def format_result(res: dict) -> str:
    """Header line and table of one entry's result."""
    head = f"== {res['name']}  [{res['status']}]  ({res['seconds']:.1f} s)"
    if res["status"] != "ok":
        return f"{head}\n  {res['reason']}"
    notes = "".join(f"\n  note: {n}" for n in res.get("notes", []))
    return f"{head}\n{format_rows(res['rows'])}{notes}"


def markdown(record: dict) -> str:
    """Render a JSON record (from ``--out``) as markdown: the command, the machine and one table per entry."""
    m = record["machine"]
    lines = [
        f"Command: `{record['command']}` (suite `{record['suite']}`, started {record['started']}, "
        f"commit `{m.get('git_commit', '?')}`)",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, {m['mem_total_gib']} GiB, JAX {m['jax_backend']}; "
        f"load average (1, 5, 15 min) at start {m['load_avg_1_5_15']}, at end {m.get('load_avg_1_5_15_end', '?')}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()),
        "",
    ]
    for res in record["results"]:
        lines.append(f"#### `{res['name']}` ({res['status']}, {res['seconds']:.0f} s)")
        lines.append("")
        if res["status"] != "ok":
            lines += [res["reason"], ""]
            continue
        rows = res["rows"]
        cols: list[str] = []
        for row in rows:
            cols += [k for k in row if k not in cols]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for row in rows:
            lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in cols) + " |")
        lines.append("")
        lines += [f"- {n}" for n in res.get("notes", [])]
        lines.append("")
    return "\n".join(lines)
