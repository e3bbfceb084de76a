"""Access to GENOT's compiled training step, so steps can be timed without the progress loop around them.

This builds the device data as ``GENOT.fit`` does (``TaskData``, ``Standardizer``, ``_build``,
``_init_params``); if those change, only this file needs updating.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import nescot.solvers._genot as _genot_module
from nescot.solvers._base import as_tasks
from nescot.solvers._couplings import sample_conditional_indices
from nescot.solvers._genot import GENOT
from nescot.solvers._tasks import Standardizer, TaskData, sample_batch
from nescot.solvers._training import make_chunk_runner


def prepare(model: GENOT, x: np.ndarray, y: np.ndarray, seed: int = 0):
    """Build networks, parameters, optimiser state and device data for ``model`` (as ``fit`` does)."""
    sources, targets, cond = as_tasks(x, y, None)
    data = TaskData.from_tasks(sources, targets, cond)
    model.x_scaler, model.y_scaler = Standardizer.fit(data.x_raw), Standardizer.fit(data.y_raw)
    model._build(data.x_raw.shape[1], data.y_raw.shape[1], cond.shape[1])
    params = model._init_params(jax.random.key(seed))
    coupling_state = model._fit_coupling(sources, targets, cond, seed)
    return (params, model.optimizer.init(params), coupling_state), data


def step_runner(model: GENOT, batch_size: int, chunk: int):
    """GENOT's own jitted chunk of ``chunk`` training steps: ``run(carry, data, key, start, n)``."""
    return make_chunk_runner(partial(model._step, batch_size=batch_size), chunk)


def coupling_runner(model: GENOT, batch_size: int, chunk: int):
    """The coupling part of GENOT's step alone (batch draw, Sinkhorn, conditional draws), ``chunk`` times."""

    def step(carry, data: TaskData, key):
        k_batch, k_pick = jax.random.split(key)
        batch = sample_batch(data, k_batch, batch_size)
        out = model.coupling(batch.x, batch.y)
        picks = sample_conditional_indices(k_pick, out.plan, model.n_samples_per_source)
        y1 = model.y_scaler(batch.y)[picks]
        return carry + jnp.sum(y1[:, 0, 0]), {"converged": out.converged.astype(jnp.float32)}

    return make_chunk_runner(step, chunk)


def gumbel_max_indices(key: jax.Array, plan: jax.Array, k: int) -> jax.Array:
    """The conditional draw GENOT used previously (Gumbel-max: n x m x k Gumbels per step), kept as an ablation."""
    logits = jnp.log(jnp.maximum(plan, 1e-30))
    return jax.random.categorical(key, logits, axis=-1, shape=(k, plan.shape[0])).T


@contextmanager
def patched_sampling(fn):
    """Temporarily replace GENOT's conditional sampler (only while a runner is traced and compiled)."""
    old = _genot_module.sample_conditional_indices
    _genot_module.sample_conditional_indices = fn
    try:
        yield
    finally:
        _genot_module.sample_conditional_indices = old


def step_runner_gumbel_max(model: GENOT, batch_size: int, chunk: int, carry, data, key):
    """GENOT's chunk runner compiled with the Gumbel-max conditional draw instead of its inverse-CDF draw."""
    runner = step_runner(model, batch_size, chunk)
    with patched_sampling(gumbel_max_indices):
        jax.block_until_ready(runner(carry, data, key, 0, chunk))  # traced now; later calls reuse this executable
    return runner
