"""Out-of-core GENOT training: peak memory and step time on 10^6 cells read from a backed h5ad.

Writes two h5ad files (10^4 and 10^6 cells x 50 features, float32, written in blocks), then trains
GENOT from each, opened with ``read_h5ad(path, backed='r')``, in a fresh subprocess so that the
peak resident memory (``ru_maxrss``) belongs to the training alone. Each population (the first /
second half of the cells) is a :func:`nescot.io.rep_source`; batches are read on a background thread.

Run: ``python -m benchmarks.scale_memory`` (``--help`` for sizes). Prints one JSON line per run and
a summary; exits with status 1 if peak RSS >= 2 GB or the step time exceeds 1.2x the small run's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RSS_LIMIT_MB = 2048
STEP_RATIO_LIMIT = 1.2


def write_h5ad(path: Path, n_cells: int, dim: int, seed: int = 0, block: int = 100_000) -> None:
    """A backed-readable h5ad with dense float32 ``X``: two groups, the second shifted by +1."""
    import anndata as ad
    import h5py
    import pandas as pd

    rng = np.random.default_rng(seed)
    half = n_cells // 2
    group = pd.Categorical(np.where(np.arange(n_cells) < half, "source", "target"))
    obs = pd.DataFrame({"group": group}, index=pd.RangeIndex(n_cells).astype(str))
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"], f.attrs["encoding-version"] = "anndata", "0.1.0"
        ad.io.write_elem(f, "obs", obs)
        ad.io.write_elem(f, "var", pd.DataFrame(index=[f"f{i}" for i in range(dim)]))
        for key in ("obsm", "varm", "layers", "obsp", "varp", "uns"):
            ad.io.write_elem(f, key, {})
        x = f.create_dataset("X", shape=(n_cells, dim), dtype="float32")
        x.attrs["encoding-type"], x.attrs["encoding-version"] = "array", "0.2.0"
        for start in range(0, n_cells, block):
            stop = min(start + block, n_cells)
            values = rng.normal(size=(stop - start, dim)).astype(np.float32)
            values[np.arange(start, stop) >= half] += 1.0
            x[start:stop] = values


def train(path: Path, n_iters: int, batch_size: int, chunk_size: int, coupling: str = "minibatch") -> dict:
    """Train GENOT from the backed file; return peak RSS, step times and the time spent waiting for data."""
    import anndata as ad

    import nescot as ns
    from nescot.solvers import _data

    ns.settings.progress_bar = False
    tic = time.perf_counter()
    adata = ad.read_h5ad(path, backed="r")
    groups = adata.obs["group"].to_numpy()
    source = ns.io.rep_source(adata, "X", np.flatnonzero(groups == "source"))
    target = ns.io.rep_source(adata, "X", np.flatnonzero(groups == "target"))
    open_seconds = time.perf_counter() - tic
    stamps: list[tuple[int, float, float]] = []
    feeds: list = []
    original_get = _data.HostFeed.get

    def get(self, start):  # remember the feed to report its waiting time
        if self not in feeds:
            feeds.append(self)
        return original_get(self, start)

    _data.HostFeed.get = get
    model = ns.solvers.GENOT(chunk_size=chunk_size, coupling=coupling)
    tic = time.perf_counter()
    model.fit(
        source, target, n_iters=n_iters, batch_size=batch_size, seed=0,
        callback=lambda it, carry: stamps.append((it, time.perf_counter(), time.process_time())),
    )  # fmt: skip
    total = time.perf_counter() - tic
    # Steady state: skip the first chunk (compilation) and the statistics pass before it.
    (i0, t0, c0), (i1, t1, c1) = stamps[0], stamps[-1]
    chunk_ms = [1e3 * (b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(stamps, stamps[1:], strict=False)]
    pred = model.predict(source[np.arange(256)], n_samples=8).mean(0)
    return {
        "path": str(path),
        "n_cells": adata.n_obs,
        "dim": adata.n_vars,
        "n_iters": n_iters,
        "batch_size": batch_size,
        "coupling": coupling,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "step_ms": 1e3 * (t1 - t0) / (i1 - i0),  # wall clock
        "step_ms_per_chunk_median": float(np.median(chunk_ms)),
        "step_cpu_ms": 1e3 * (c1 - c0) / (i1 - i0),  # CPU time of all threads (reader included)
        "data_wait_s_after_first_chunk": float(sum(feeds[0].waits[1:])) if feeds else float("nan"),
        "fit_s": total,
        "open_s": open_seconds,
        "pred_shift": float(np.mean(pred - source[np.arange(256)].mean(0))),  # the truth is +1
    }


def main(argv: list[str] | None = None) -> int:
    """Write the files, run both trainings in subprocesses and compare them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--n-iters", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=50)
    parser.add_argument("--coupling", default="minibatch", help="GENOT's coupling: minibatch or global")
    parser.add_argument("--repeats", type=int, default=2, help="runs per size")
    parser.add_argument(
        "--sequential", action="store_true", help="run the two sizes one after the other (default: at the same time)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the h5ad files (default: a tmp dir)")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(train(args.worker, args.n_iters, args.batch_size, args.chunk_size, args.coupling)), flush=True)
        return 0

    summary = measure(args.large, args.small, args.dim, n_iters=args.n_iters, batch_size=args.batch_size,
                      chunk_size=args.chunk_size, repeats=args.repeats, sequential=args.sequential,
                      workdir=args.workdir, echo=True, coupling=args.coupling)  # fmt: skip
    print(
        f"summary: {args.large} cells x {args.dim}: peak RSS {summary['peak_rss_mb']:.0f} MB (limit {RSS_LIMIT_MB}); "
        f"median step {summary['step_ms_large']:.1f} ms vs {summary['step_ms_small']:.1f} ms on {args.small} cells "
        f"(ratio {summary['step_ratio']:.2f}, limit {STEP_RATIO_LIMIT}); CPU time per step ratio "
        f"{summary['cpu_ratio']:.2f}; waiting for data after the first chunk: {summary['data_wait_s']:.3f} s"
    )
    return int(not summary["passed"])


def measure(
    large: int, small: int, dim: int, *, n_iters: int = 400, batch_size: int = 256, chunk_size: int = 50,
    repeats: int = 2, sequential: bool = False, workdir: Path | None = None, echo: bool = False,
    coupling: str = "minibatch",
) -> dict:  # fmt: skip
    """Write both files (once), train from each in subprocesses, and summarise memory and step times."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="nescot-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for n in (small, large):
        paths[n] = workdir / f"cells_{n}_{dim}.h5ad"
        if not paths[n].exists():
            tic = time.perf_counter()
            write_h5ad(paths[n], n, dim)
            if echo:
                print(
                    f"wrote {paths[n]} ({paths[n].stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - tic:.1f} s"
                )
    # By default both sizes train at the same time, so that they share whatever else loads the machine:
    # on a shared machine, sequential wall-clock timings differ by 2x from one minute to the next.
    results: dict[int, list[dict]] = {small: [], large: []}
    for _ in range(repeats):
        procs = []
        for n in (small, large):
            sizes = ["--n-iters", str(n_iters), "--batch-size", str(batch_size), "--chunk-size", str(chunk_size),
                     "--coupling", coupling]  # fmt: skip
            cmd = [sys.executable, "-m", "benchmarks.scale_memory", "--worker", str(paths[n]), *sizes]
            procs.append((n, subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())))
            if sequential:
                procs[-1][1].wait()
        for n, proc in procs:
            out, _ = proc.communicate()
            if proc.returncode:
                raise RuntimeError(f"worker for {n} cells failed")
            res = json.loads(out.strip().splitlines()[-1])
            if echo:
                print(json.dumps(res), flush=True)
            results[n].append(res)

    def median(n: int, key: str) -> float:
        return float(np.median([r[key] for r in results[n]]))

    rss = max(r["peak_rss_mb"] for r in results[large])
    ratio = median(large, "step_ms") / median(small, "step_ms")
    return {
        "runs": results,
        "peak_rss_mb": rss,
        "peak_rss_mb_small": max(r["peak_rss_mb"] for r in results[small]),
        "step_ms_large": median(large, "step_ms"),
        "step_ms_small": median(small, "step_ms"),
        "step_ratio": ratio,
        "cpu_ratio": median(large, "step_cpu_ms") / median(small, "step_cpu_ms"),
        "data_wait_s": median(large, "data_wait_s_after_first_chunk"),
        "passed": rss < RSS_LIMIT_MB and ratio <= STEP_RATIO_LIMIT,
    }


if __name__ == "__main__":
    sys.exit(main())
