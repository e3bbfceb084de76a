"""Peak memory of ``nescot.tl.map_perturbation`` on a backed h5ad, against the size of what it writes.

Writes an h5ad of ``--cells`` cells x ``--dim`` features (dense float32, two groups of equal size, written in
blocks), then runs ``map_perturbation(backed, "group", "source", "target", rep="X", n_samples=...)`` in a fresh
subprocess, so that the peak resident memory (``ru_maxrss``) is the call's (with Python, JAX and nescot loaded).
Issue 14's goal: the call within the outputs' size + 1 GB. The call's memory is the peak minus the resident memory
before it (Python with JAX and nescot imported and the backed AnnData open: about 0.6 GB at 10^6 cells, the same
for any call); the total peak is reported beside it (``passed_total``).

Run: ``python -m benchmarks.tool_memory`` (``--help`` for sizes). Prints one JSON line; exits with status 1 if the
call takes more than the outputs' size + 1 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .scale_memory import write_h5ad

MARGIN_MB = 1024


def run(path: Path, n_samples: int, n_iters: int, coupling: str) -> dict:
    """Map the backed file's source group onto its target group; return peak RSS and the outputs' size."""
    import anndata as ad
    import numpy as np

    import nescot as ns

    ns.settings.progress_bar = False
    adata = ad.read_h5ad(path, backed="r")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tic = time.perf_counter()
    ns.tl.map_perturbation(
        adata, "group", "source", "target", rep="X", n_samples=n_samples, n_iters=n_iters, coupling=coupling,
        holdout=0.01,
    )  # fmt: skip
    seconds = time.perf_counter() - tic
    written = [adata.obsm[k] for k in adata.obsm] + [adata.layers[k] for k in adata.layers if k != "X"]
    outputs = sum(np.asarray(a).nbytes for a in written) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "n_cells": adata.n_obs, "dim": adata.n_vars, "n_samples": n_samples, "n_iters": n_iters,
        "coupling": coupling, "peak_rss_mb": peak, "rss_before_call_mb": baseline, "call_mb": peak - baseline,
        "outputs_mb": outputs, "limit_mb": outputs + MARGIN_MB, "passed": peak - baseline <= outputs + MARGIN_MB,
        "passed_total": peak <= outputs + MARGIN_MB, "seconds": seconds,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Write the file and measure the call in a subprocess."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--n-samples", type=int, default=2)
    parser.add_argument("--n-iters", type=int, default=200)
    parser.add_argument("--coupling", default="minibatch")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the h5ad file (default: a tmp dir)")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(run(args.worker, args.n_samples, args.n_iters, args.coupling)), flush=True)
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nescot-tool-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"cells_{args.cells}_{args.dim}.h5ad"
    if not path.exists():
        write_h5ad(path, args.cells, args.dim)
    cmd = [sys.executable, "-m", "benchmarks.tool_memory", "--worker", str(path), "--n-samples", str(args.n_samples),
           "--n-iters", str(args.n_iters), "--coupling", args.coupling]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(result))
    return int(not result["passed"])


if __name__ == "__main__":
    sys.exit(main())
