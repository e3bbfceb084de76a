"""Scaling with the number of cells: GENOT (fixed batch) next to an exact full-data Sinkhorn, point by point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _point(kind: str, params: dict, timeout: float) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "benchmarks._worker", kind, json.dumps(params)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return {"stopped": f"exceeded the time cap of {timeout:.0f} s"}
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["?"])[-1]
        return {"stopped": f"failed ({tail[:120]})"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def scaling_rows(cfg: dict, ref: dict) -> tuple[list[dict], list[str]]:
    """Run GENOT and Sinkhorn at each cell count of ``cfg['cells']`` within the time and memory caps."""
    common = {"dim": ref["dim"], "epsilon": ref["epsilon"], "scale_cost": ref["scale_cost"]}
    rows, sink_stop, last = [], None, None
    for n in cfg["cells"]:
        data_mb = 2 * n * ref["dim"] * 4 / 2**20  # x and y on the device, float32
        g = _point(
            "genot",
            {
                **common,
                "n": n,
                "batch": ref["batch"],
                "hidden": list(ref["hidden"]),
                "chunk": cfg["chunk"],
                "repeats": cfg["repeats"],
            },
            timeout=cfg["time_cap_s"] * 3,
        )
        rows.append({"method": "GENOT step (batch fixed)", "n_cells": n, "data_mb": round(data_mb, 1), **g})
        if sink_stop is None:
            need_gb = 3 * 4 * n**2 / 2**30  # dense cost matrix and two temporaries of the same size
            if need_gb > cfg["mem_cap_gb"]:
                sink_stop = f"stopped at n={n}: needs ~{need_gb:.1f} GB > memory cap {cfg['mem_cap_gb']} GB"
            elif last is not None and last[1] * (n / last[0]) ** 2 > cfg["time_cap_s"]:
                pred = last[1] * (n / last[0]) ** 2
                sink_stop = f"stopped at n={n}: predicted {pred:.0f} s (quadratic) > time cap {cfg['time_cap_s']} s"
            else:
                s = _point("sinkhorn", {**common, "n": n}, timeout=cfg["time_cap_s"])
                if "stopped" in s:
                    sink_stop = f"stopped at n={n}: {s['stopped']}"
                else:
                    last = (n, s["solve_s"])
                    rows.append(
                        {"method": "exact Sinkhorn (ott, dense)", "n_cells": n, "data_mb": round(data_mb, 1), **s}
                    )
        if sink_stop is not None and not any(r.get("stopped") == sink_stop for r in rows):
            rows.append({"method": "exact Sinkhorn (ott, dense)", "n_cells": n, "stopped": sink_stop})
    notes = [
        f"d={ref['dim']}, batch {ref['batch']}, MLP {ref['hidden']}; Sinkhorn eps={ref['epsilon']} relative "
        f"('mean'), max 2000 iterations, all n x n cells; caps: {cfg['time_cap_s']} s, {cfg['mem_cap_gb']} GB",
        "solve_s excludes compilation (compile_s, paid once per problem size); peak_rss_mb: high-water resident "
        "memory of the worker process (VmHWM), import_rss_mb: the same after imports, before any data",
        "the time cap is applied to a quadratic extrapolation of the previous solve_s, the memory cap to the "
        "dense n x n cost matrix (x3 for temporaries)",
    ]
    return rows, notes
