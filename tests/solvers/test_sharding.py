"""Data-parallel training: 2 forced CPU devices, and 2 processes joined by jax.distributed on 127.0.0.1.

XLA_FLAGS must be set before jax is imported, so every multi-device run happens in a subprocess.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nescot as ns

SRC = str(Path(ns.__file__).resolve().parents[1])


def _xla_flags(devices: int) -> str:
    # the suite's own flags (conftest.py: faster compilation) and the number of forced CPU devices
    return f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()


def _run(code: str, *args: str, devices: int = 2, timeout: int = 900) -> dict:
    env = {**os.environ, "PYTHONPATH": SRC, "XLA_FLAGS": _xla_flags(devices)}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# A toy data-parallel step with what matters in GENOT: a coupling over the whole batch (log-domain
# Sinkhorn), a loss averaged over the batch, random draws, and both the fed and the in-memory paths.
_TOY = textwrap.dedent(
    """
    import json, logging
    import jax, jax.numpy as jnp, numpy as np
    from nescot.solvers._data import HostFeed, make_fed_runner
    from nescot.solvers._sharding import constrain_batch, data_mesh, feed_placement, replicate
    from nescot.solvers._training import run_training
    import nescot
    nescot.settings.progress_bar = False

    def step(w, batch, key, mesh):
        x, y, _, _ = constrain_batch(batch, mesh)  # the fed chunk also carries each cell's task index
        def loss(w):
            cost = jnp.sum(((x @ w)[:, None, :] - y[None]) ** 2, axis=-1)
            f, g = jnp.zeros(len(x)), jnp.zeros(len(y))
            for _ in range(20):  # log-domain Sinkhorn on the whole batch
                f = -jax.nn.logsumexp((g[None] - cost) / 0.5, axis=1) * 0.5
                g = -jax.nn.logsumexp((f[:, None] - cost) / 0.5, axis=0) * 0.5
            plan = jax.lax.stop_gradient(jnp.exp((f[:, None] + g[None] - cost) / 0.5)) / len(x)
            return jnp.sum(plan * cost) + 0.01 * jnp.mean(jax.random.normal(key, x.shape) * (x @ w))
        value, grad = jax.value_and_grad(loss)(w)
        return w - 0.02 * grad, {"loss": value}

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3)).astype(np.float32), rng.normal(size=(150, 3)).astype(np.float32) + 1
    out = {}
    for n_dev in (1, 2):
        mesh = data_mesh(n_dev, 16)
        w = replicate(np.eye(3, dtype=np.float32), mesh)
        feed = HostFeed([x], [y], np.zeros((1, 0), np.float32), seed=0)
        feed.configure(16, 8, 40, *feed_placement(mesh, 16))
        with feed:
            runner = make_fed_runner(lambda c, b, k: step(c, b, k, mesh), 8)
            _, hist = run_training(runner, w, feed, n_iters=40, chunk_size=8, seed=1, desc="toy")
            out[f"loss{n_dev}"] = hist["loss"].tolist()
            if mesh is not None:
                batch = jax.tree.map(lambda a: a[0], feed.get(0))
                compiled = jax.jit(lambda w, b: step(w, b, jax.random.key(0), mesh)).lower(w, batch).compile()
                out["collectives"] = sum(compiled.as_text().count(op) for op in ("all-reduce(", "all-gather("))
                out["batch_sharding"] = str(batch[0].sharding.spec)
    records = []
    logging.getLogger("nescot").addHandler(type("H", (logging.Handler,), {"emit": lambda s, r: records.append(r)})())
    out["auto_fallback"] = data_mesh(None, 15) is None and "not a multiple" in records[-1].getMessage()
    try:
        data_mesh(2, 15)
    except ValueError as err:
        out["explicit_error"] = str(err)
    print(json.dumps(out))
    """
)


def test_two_devices_give_the_one_device_loss_curve_on_a_toy_coupling():
    out = _run(_TOY)
    one, two = np.array(out["loss1"]), np.array(out["loss2"])
    # Measured: max relative difference 4.0e-7 over 40 steps (reduction order only).
    np.testing.assert_allclose(two, one, rtol=1e-5)
    assert "'batch'" in out["batch_sharding"]  # the chunk arrives split along its cells
    # Measured 42 collectives: the Sinkhorn marginals are reduced across shards (one coupling, whole batch).
    assert out["collectives"] > 0
    assert out["auto_fallback"] and "multiple of the number of devices (2)" in out["explicit_error"]


_GENOT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np, nescot as ns
    from nescot.solvers._data import ArrayRows
    ns.settings.progress_bar = False
    if len(sys.argv) > 1:  # multi-host: process id, coordinator port
        jax.distributed.initialize(f"127.0.0.1:{sys.argv[2]}", num_processes=2, process_id=int(sys.argv[1]))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 3)).astype(np.float32), (rng.normal(size=(300, 3)) + 2).astype(np.float32)
    out = {"devices": jax.device_count(), "processes": jax.process_count()}
    for fed in (False, True):
        for n_dev in (None,) if jax.process_count() > 1 else tuple(range(1, jax.device_count() + 1)):
            src, tgt = (ArrayRows(x), ArrayRows(y)) if fed else (x, y)
            model = ns.solvers.GENOT(hidden_dims=(32, 32), embed_dim=16, chunk_size=50)
            model.fit(src, tgt, n_iters=100, batch_size=64, seed=7, devices=n_dev)
            out[f"{'fed' if fed else 'mem'}{n_dev}"] = model.loss_history["loss"].tolist()
            out[f"pred{fed}{n_dev}"] = model.predict(x[:20], n_samples=4).tolist()
    print(json.dumps(out))
    """
)


def test_genot_on_two_devices_follows_the_one_device_loss_curve():
    out = _run(_GENOT)
    assert out["devices"] == 2
    for path in ("mem", "fed"):
        one, two = np.array(out[f"{path}1"]), np.array(out[f"{path}2"])
        # Float reductions differ between one and two devices at the 1e-7 level. Over many steps such a
        # difference can flip one discrete draw (a target index at a CDF boundary), after which the curves
        # differ by a training step's noise: on this machine from step 72 on (max relative difference 0.0075),
        # on the previous one not within 100 steps (2e-7). A sharding bug shows from the first step, so the
        # first 20 steps must agree tightly and the rest within 5%.
        np.testing.assert_allclose(two[:20], one[:20], rtol=1e-5)
        np.testing.assert_allclose(two, one, rtol=5e-2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # about 2 min (three JAX processes compile GENOT); run by `pytest -m slow`
def test_two_processes_on_loopback_follow_the_one_process_loss_curve():
    port = str(_free_port())
    env = {**os.environ, "PYTHONPATH": SRC, "XLA_FLAGS": _xla_flags(1)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _GENOT, str(p), port], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
        for p in (0, 1)
    ]  # fmt: skip
    outs = [p.communicate(timeout=1200) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    results = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    single = _run(_GENOT, devices=1)
    for res in results:
        assert res["devices"] == 2 and res["processes"] == 2
        for path in ("mem", "fed"):
            # Measured over 100 steps: max relative difference to one process 1.6e-7 (in memory and fed). As in
            # the two-device test, a late flip of one discrete draw is tolerated; the first 20 steps must agree.
            two, one = np.array(res[f"{path}None"]), np.array(single[f"{path}1"])
            np.testing.assert_allclose(two[:20], one[:20], rtol=1e-5)
            np.testing.assert_allclose(two, one, rtol=5e-2)
    np.testing.assert_array_equal(results[0]["predTrueNone"], results[1]["predTrueNone"])
