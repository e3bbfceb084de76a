"""Training sets of (source, target, condition) tasks, batch sampling and standardisation, shared by solvers."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def _stack(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate per-task arrays; return the stack, padded row indices per task and counts."""
    counts = np.array([len(a) for a in arrays], np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    index = np.zeros((len(arrays), counts.max()), np.int32)
    for k, (off, c) in enumerate(zip(offsets, counts, strict=True)):
        index[k, :c] = np.arange(off, off + c)
    return np.concatenate(arrays), index, counts


class TaskData(NamedTuple):
    """Device arrays of a (multi-task) training set; each task is a (source, target, condition) triple."""

    x_raw: jax.Array  # (N_x, d_x) all source cells, as given (costs need raw units)
    y_raw: jax.Array  # (N_y, d_y) all target cells
    src_index: jax.Array  # (T, max_n_x) rows of x per task, padded
    src_count: jax.Array  # (T,)
    tgt_index: jax.Array
    tgt_count: jax.Array
    condition: jax.Array  # (T, d_c)

    @classmethod
    def from_tasks(cls, sources: list[np.ndarray], targets: list[np.ndarray], condition: np.ndarray) -> TaskData:
        """Stack the tasks' arrays (as returned by ``as_tasks``) on the device."""
        x_raw, src_index, src_count = _stack(sources)
        y_raw, tgt_index, tgt_count = _stack(targets)
        return cls(*map(jnp.asarray, (x_raw, y_raw, src_index, src_count, tgt_index, tgt_count, condition)))


class Batch(NamedTuple):
    """One training batch in raw units: sources (B, d_x), targets (B, d_y), conditions (B, d_c), its task index."""

    x: jax.Array
    y: jax.Array
    condition: jax.Array
    task: jax.Array | int = 0


def sample_batch(data: TaskData, key: jax.Array, batch_size: int) -> Batch:
    """Draw one task uniformly, then ``batch_size`` source and target cells of it (with replacement)."""
    k_task, k_src, k_tgt = jax.random.split(key, 3)
    task = jax.random.randint(k_task, (), 0, data.src_count.shape[0])
    i = data.src_index[task, jax.random.randint(k_src, (batch_size,), 0, data.src_count[task])]
    j = data.tgt_index[task, jax.random.randint(k_tgt, (batch_size,), 0, data.tgt_count[task])]
    cond = jnp.broadcast_to(data.condition[task], (batch_size, data.condition.shape[-1]))
    return Batch(data.x_raw[i], data.y_raw[j], cond, task)


class Standardizer(NamedTuple):
    """Per-feature centring and one global scale (keeps the geometry isotropic)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, a: np.ndarray | jax.Array) -> Standardizer:
        """Estimate the centre and scale of ``a`` (n, d)."""
        a = np.asarray(a, np.float64)
        mean = a.mean(0)
        scale = np.sqrt(np.mean((a - mean) ** 2)) + 1e-8
        return cls(mean.astype(np.float32), np.asarray(scale, np.float32))

    def __call__(self, a):
        """Standardise."""
        return (a - self.mean) / self.scale

    def in_trace(self, a):
        """Standardise inside ``jit`` with traced statistics, bit for bit as with constant ones.

        XLA folds a division by a constant into a product with its reciprocal; doing the same keeps the
        results of compiled functions shared between models (statistics traced) equal to per-model ones.
        """
        return (a - self.mean) * (1.0 / self.scale)

    def inverse(self, a):
        """Undo the standardisation."""
        return a * self.scale + self.mean
