"""Checkpoint files (atomic, newest readable wins) and resuming a killed training."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nescot as ns
from nescot.solvers._checkpoint import (
    _aligned_chunk,
    describe_config,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)

SRC = str(Path(ns.__file__).resolve().parents[1])


def _carry():
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}
    return params, optax.adam(1e-3).init(params)


def test_save_load_roundtrip_keeps_newest_and_skips_damaged_files(tmp_path):
    carry = _carry()
    history = {"loss": np.arange(10, dtype=np.float32)}
    for it in (10, 20, 30):
        save_checkpoint(tmp_path, it, carry, {"loss": history["loss"][:it]}, {"seed": 1})
    assert [it for it, _ in list_checkpoints(tmp_path)] == [30, 20]  # two kept
    (tmp_path / ".ckpt_000000040.msgpack.123.tmp").write_bytes(b"half-written")  # a killed writer's leftover
    payload = load_checkpoint(tmp_path)
    assert payload["iteration"] == 30 and payload["fingerprint"] == {"seed": 1}
    (tmp_path / "ckpt_000000030.msgpack").write_bytes(b"\x00garbage")  # damaged newest file
    payload = load_checkpoint(tmp_path)
    assert payload["iteration"] == 20
    restored = jax.tree.map(np.asarray, ns.solvers._checkpoint.serialization.from_state_dict(carry, payload["carry"]))
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(a, b)
    assert load_checkpoint(tmp_path / "missing") is None


def test_chunks_align_with_checkpoints_and_config_text_is_stable():
    assert _aligned_chunk(100, 250) == 50 and _aligned_chunk(100, 30) == 30 and _aligned_chunk(100, 97) == 97
    cost = lambda a, b: a - b  # noqa: E731
    text = describe_config({"cost": cost, "chunk_size": 5, "epsilon": 0.1})
    assert "0x" not in text and "chunk_size" not in text and "epsilon" in text


_KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import nescot as ns
    ns.settings.progress_bar = False
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 3)).astype(np.float32), (rng.normal(size=(300, 3)) + 2).astype(np.float32)
    def report(it, carry):
        print(it, flush=True)
        time.sleep(0.3)  # let the parent kill us mid-run
    ns.solvers.GENOT(hidden_dims=(32, 32), embed_dim=16, chunk_size=10).fit(
        x, y, n_iters=400, batch_size=64, seed=5, checkpoint_dir=sys.argv[1], checkpoint_every=20, callback=report
    )
    """
)


def test_killed_training_resumes_to_the_uninterrupted_result(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_KILLED_RUN)
    ckpt = tmp_path / "ckpt"
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, str(script), str(ckpt)], stdout=subprocess.PIPE, text=True, env=env)
    last, deadline = 0, time.time() + 600
    for line in proc.stdout:
        last = int(line)
        if last >= 130 or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)  # no clean-up: as a crash or a pre-empted node
    proc.wait()
    saved = [it for it, _ in list_checkpoints(ckpt)]
    # The callback prints after the checkpoint of its iteration: at most one interval (20 steps) is lost.
    assert saved and last - 20 <= saved[0] < 400
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 3)).astype(np.float32), (rng.normal(size=(300, 3)) + 2).astype(np.float32)
    kwargs = {"n_iters": 400, "batch_size": 64, "seed": 5}
    model = {"hidden_dims": (32, 32), "embed_dim": 16, "chunk_size": 10}
    resumed = ns.solvers.GENOT(**model).fit(x, y, checkpoint_dir=ckpt, checkpoint_every=20, resume=True, **kwargs)
    full = ns.solvers.GENOT(**model).fit(x, y, **kwargs)
    # Measured: bit-identical (same executable, same keys per step, float32 state restored exactly).
    np.testing.assert_array_equal(full.loss_history["loss"], resumed.loss_history["loss"])
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)
