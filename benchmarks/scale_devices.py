"""Data-parallel GENOT: one coupling on the gathered batch, or one per device shard?

Two measurements behind the choice made in ``nescot.solvers._sharding``:

1. Statistics. Against the closed-form entropic plan between two Gaussians, the error of a
   mini-batch plan's barycentric projection (the conditional mean GENOT learns to sample around)
   for one coupling on the whole batch of ``B`` cells versus ``D`` independent couplings of ``B / D``
   cells, as per-shard solving would give on ``D`` devices.
2. Partitioning. GENOT's compiled step on 2 forced CPU devices (a subprocess, since ``XLA_FLAGS``
   must precede the jax import): the all-reduce / all-gather operations XLA inserted (their presence
   is what solving one coupling over a split batch costs), and the step time on 1 and 2 devices.

Run: ``python -m benchmarks.scale_devices``. Prints JSON lines. On a machine with one CPU socket, 2 forced
host devices share the same cores, so the timings only show the overhead of partitioning, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np


def projection_error(dim: int, epsilon: float, batch: int, shards: int, n_batches: int, seed: int = 0) -> float:
    """RMSE of the batch plans' barycentric projections against the true conditional mean E[y | x]."""
    import jax.numpy as jnp

    import nescot as ns

    pair = ns.datasets.gaussian_pair(dim, epsilon, seed=seed)
    coupling = ns.solvers.LinearCoupling("sqeuclidean", epsilon=epsilon, scale_cost=1.0)
    errors = []
    for b in range(n_batches):
        x, y = pair.sample_source(batch, seed=100 + b), pair.sample_target(batch, seed=10_000 + b)
        size = batch // shards
        for s in range(shards):
            xs, ys = x[s * size : (s + 1) * size], y[s * size : (s + 1) * size]
            plan = np.asarray(coupling(jnp.asarray(xs), jnp.asarray(ys)).plan)
            proj = plan @ ys / plan.sum(1, keepdims=True)
            errors.append(np.sum((proj - pair.conditional_mean(xs)) ** 2, axis=1))
    return float(np.sqrt(np.mean(np.concatenate(errors))))


_PARTITION = textwrap.dedent(
    """
    import json, time
    import jax, numpy as np, nescot as ns
    from nescot.solvers._data import ArrayRows
    ns.settings.progress_bar = False
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4096, 50)).astype(np.float32), rng.normal(size=(4096, 50)).astype(np.float32) + 1
    out = {}
    for n_dev in (1, 2):
        stamps = []
        model = ns.solvers.GENOT(chunk_size=25)
        model.fit(ArrayRows(x), ArrayRows(y), n_iters=100, batch_size=256, seed=0, devices=n_dev,
                  callback=lambda it, c: stamps.append((it, time.perf_counter())))
        out[f"step_ms_{n_dev}_devices"] = 1e3 * (stamps[-1][1] - stamps[0][1]) / (stamps[-1][0] - stamps[0][0])
        out[f"loss_{n_dev}"] = model.loss_history["loss"].tolist()
    one, two = np.array(out.pop("loss_1")), np.array(out.pop("loss_2"))
    out["max_rel_loss_diff_1_vs_2_devices"] = float(np.max(np.abs(one - two) / np.abs(one)))
    # The compiled training chunk on 2 devices: collectives inserted by the partitioner.
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    from nescot.solvers._genot import Batch
    from nescot.solvers._sharding import replicate
    params = model._init_params(jax.random.key(0))
    carry = replicate((params, model.optimizer.init(params), ()), mesh)
    put = lambda a: jax.device_put(a, NamedSharding(mesh, P("batch")))
    batch = (put(x[:256]), put(y[:256]), put(np.zeros((256, 0), np.float32)))
    step = jax.jit(lambda c, b, k: model._fed_step(c, b, k, mesh=mesh))
    text = step.lower(carry, batch, jax.random.key(0)).compile().as_text()
    out["collectives_in_step"] = {op: text.count(op + "(") for op in ("all-reduce", "all-gather", "reduce-scatter",
                                                                      "collective-permute", "all-to-all")}
    print(json.dumps(out))
    """
)


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print them as JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--epsilon", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-batches", type=int, default=10)
    parser.add_argument("--skip-partition", action="store_true")
    args = parser.parse_args(argv)
    for row in measure(args.dim, args.epsilon, args.batch_size, args.n_batches, partition=not args.skip_partition):
        print(json.dumps(row), flush=True)
    return 0


def measure(dim: int, epsilon: float, batch: int, n_batches: int, *, partition: bool = True) -> list[dict]:
    """Projection error for 1, 2, 4 and 8 couplings per batch, then the partitioned step (2 forced devices)."""
    rows = []
    for shards in (1, 2, 4, 8):
        tic = time.perf_counter()
        err = projection_error(dim, epsilon, batch, shards, n_batches)
        rows.append({"measure": "barycentric_projection_rmse", "dim": dim, "epsilon": epsilon, "batch": batch,
                     "couplings_per_batch": shards, "rmse": err, "seconds": time.perf_counter() - tic})  # fmt: skip
    if partition:
        env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
        out = subprocess.run([sys.executable, "-c", _PARTITION], capture_output=True, text=True, env=env, check=True)
        rows.append({"measure": "partitioned_step", **json.loads(out.stdout.strip().splitlines()[-1])})
    return rows


if __name__ == "__main__":
    sys.exit(main())
