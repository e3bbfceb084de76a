"""Chunked sampling shared by the solvers' ``transport``: per-cell keys, one executable, a finiteness check."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def sample_in_chunks(
    sample_chunk: Callable[[np.ndarray, np.ndarray, jax.Array], jax.Array],
    x: np.ndarray,
    cond: np.ndarray,
    *,
    seed: int,
    chunk_cells: int,
    solver: str,
    hint: str,
) -> np.ndarray:
    """Draw samples for ``x`` in chunks of ``chunk_cells`` cells, cell ``i`` from the key ``fold_in(key(seed), i)``.

    Parameters
    ----------
    sample_chunk
        ``sample_chunk(x, cond, keys)`` on one chunk: cells (c, d_x), conditions (c, d_c) and one key per cell (c,);
        returns an array with one leading row per cell. It must draw cell ``i``'s randomness from ``keys[i]`` only,
        so that the samples do not depend on ``chunk_cells``.
    x, cond
        Cells (n, d_x) and their conditions (n, d_c).
    seed
        Seed of the per-cell keys.
    chunk_cells
        Cells per call of ``sample_chunk``; the last chunk is padded to this size.
    solver, hint
        Solver name and advice, for the error raised on non-finite samples.

    Returns
    -------
    The rows of ``sample_chunk`` for all cells, concatenated (n, ...).
    """
    if int(chunk_cells) < 1:
        raise ValueError(f"`chunk_cells` must be >= 1, got {chunk_cells}.")
    n = len(x)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(n))
    chunk = int(min(chunk_cells, n))
    samples = None
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        pad = chunk - (stop - start)  # pad the last chunk so every call reuses one executable
        xs = np.pad(x[start:stop], ((0, pad), (0, 0)))
        cs = np.pad(cond[start:stop], ((0, pad), (0, 0)))
        ks = jnp.concatenate([keys[start:stop], keys[:pad]]) if pad else keys[start:stop]
        rows = np.asarray(sample_chunk(xs, cs, ks))[: stop - start]
        if samples is None:  # filled in place: no list of chunks to concatenate (a second copy of all draws)
            samples = np.empty((n, *rows.shape[1:]), rows.dtype)
        samples[start:stop] = rows
    if not np.all(np.isfinite(samples)):
        raise FloatingPointError(f"{solver} produced non-finite samples: {hint}")
    return samples
