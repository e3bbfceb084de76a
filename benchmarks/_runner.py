"""Run registered entries, collect rows, and write the JSON record."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import traceback
from pathlib import Path

from . import REGISTRY, load_all
from ._report import format_result, machine, versions


def select(only: list[str] | None, suite: str) -> list[str]:
    """Entry names of ``suite`` matching ``only`` (exact names or name prefixes); all when ``only`` is empty."""
    load_all()
    names = [n for n, b in REGISTRY.items() if suite in b.suites]
    if not only:
        return names
    picked = [n for n in names if any(n == o or n.startswith(o.rstrip(".") + ".") for o in only)]
    if not picked:
        raise SystemExit(f"No benchmark matches {only} in suite {suite!r}; see `python -m benchmarks list`.")
    return picked


def run_one(name: str, suite: str) -> dict:
    """Run one entry; a missing solver gives status 'skipped', an exception status 'error' (the run goes on)."""
    bench = REGISTRY[name]
    res = {"name": name, "family": bench.family, "kind": bench.kind, "description": bench.description}
    t0 = time.perf_counter()
    missing = bench.requires()
    if missing:
        res.update(status="skipped", reason=f"not available: {missing}", rows=[])
    else:
        try:
            out = bench.fn(suite)
            rows, notes = (out["rows"], out.get("notes", [])) if isinstance(out, dict) else (out, [])
            res.update(status="ok", reason="", rows=rows, notes=notes)
        except Exception as exc:  # noqa: BLE001 - one failing entry must not stop the suite
            res.update(status="error", reason=f"{type(exc).__name__}: {exc}", rows=[], traceback=traceback.format_exc())
    res["seconds"] = time.perf_counter() - t0
    return res


def run(names: list[str], suite: str, *, out: str | Path | None = None, command: str = "", echo: bool = True) -> dict:
    """Run ``names`` in ``suite``; print each table as it finishes and write the JSON record to ``out``."""
    record = {
        "command": command,
        "suite": suite,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "results": [],
    }
    if echo:
        m = record["machine"]
        print(f"# suite={suite}  cpu={m['cpu']} x{m['cpu_count']}  load(1,5,15)={m['load_avg_1_5_15']}")
    for name in names:
        res = run_one(name, suite)
        res["load_avg_1_5_15_after"] = [round(v, 2) for v in os.getloadavg()]
        record["results"].append(res)
        if echo:
            print(format_result(res), flush=True)
        if out:  # rewrite after every entry, so a long run interrupted half way keeps its results
            Path(out).write_text(json.dumps(record, indent=1, default=_jsonable))
    record["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    record["machine"]["load_avg_1_5_15_end"] = [round(v, 2) for v in os.getloadavg()]
    if out:
        Path(out).write_text(json.dumps(record, indent=1, default=_jsonable))
    return record


def _jsonable(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(obj)
