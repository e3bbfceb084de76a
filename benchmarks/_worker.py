"""One scaling point in a fresh process (so its peak memory is its own): ``python -m benchmarks._worker KIND JSON``.

Prints one JSON line with the measurements. KIND is ``genot`` (time GENOT training steps on n cells at a
fixed batch) or ``sinkhorn`` (solve exact entropic OT between all n source and n target cells with ott).
"""

from __future__ import annotations

import json
import sys

from ._timing import peak_rss_mb


def _data(n: int, dim: int):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = (rng.normal(size=(n, dim)) * 1.2 + 0.5).astype(np.float32)
    return x, y


def genot_point(p: dict) -> dict:
    import jax

    import nescot as ns

    from ._genot_internals import prepare, step_runner
    from ._timing import median_time

    base = peak_rss_mb()
    x, y = _data(p["n"], p["dim"])
    model = ns.solvers.GENOT(epsilon=p["epsilon"], scale_cost=p["scale_cost"], hidden_dims=tuple(p["hidden"]))
    carry, data = prepare(model, x, y)
    runner = step_runner(model, p["batch"], p["chunk"])
    t = median_time(lambda: runner(carry, data, jax.random.key(0), 0, p["chunk"]), repeats=p["repeats"])
    return {"ms_per_step": 1e3 * t["median_s"] / p["chunk"], "import_rss_mb": base, "peak_rss_mb": peak_rss_mb()}


def sinkhorn_point(p: dict) -> dict:
    import jax
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    from ._timing import wall

    base = peak_rss_mb()
    x, y = _data(p["n"], p["dim"])

    def solve(x, y):
        geom = pointcloud.PointCloud(x, y, epsilon=p["epsilon"], scale_cost=p["scale_cost"])
        out = sinkhorn.Sinkhorn(max_iterations=2000)(linear_problem.LinearProblem(geom))
        return out.n_iters, out.converged, out.reg_ot_cost

    compiled, compile_s = wall(lambda: jax.jit(solve).lower(x, y).compile())
    (iters, conv, _), secs = wall(lambda: compiled(x, y))
    return {
        "solve_s": secs,
        "compile_s": compile_s,
        "iterations": int(iters),
        "converged": bool(conv),
        "import_rss_mb": base,
        "peak_rss_mb": peak_rss_mb(),
    }


if __name__ == "__main__":
    kind, params = sys.argv[1], json.loads(sys.argv[2])
    out = {"genot": genot_point, "sinkhorn": sinkhorn_point}[kind](params)
    print(json.dumps(out))
