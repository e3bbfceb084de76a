"""Training loop shared by all neural solvers: chunked jitted steps, progress bar, divergence checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from .._settings import logger, settings

StepFn = Callable[[Any, Any, jax.Array], tuple[Any, dict[str, jax.Array]]]


class TrainingDivergedError(RuntimeError):
    """Raised when a loss or parameter becomes non-finite; nothing is returned or written."""


def make_chunk_runner(step_fn: StepFn, chunk_size: int) -> Callable:
    """Compile ``chunk_size`` training steps into one jitted call.

    Parameters
    ----------
    step_fn
        ``step_fn(carry, data, key, *consts) -> (carry, metrics)``, pure; ``metrics`` a dict of scalars.
    chunk_size
        Steps per compiled call. The number actually run is a traced argument, so a short last
        chunk reuses the same executable.

    Returns
    -------
    ``run(carry, data, base_key, start, n, consts=()) -> (carry, metrics)``; ``metrics`` holds arrays of
    length ``chunk_size`` whose first ``n`` entries are filled. Step ``i`` uses the key
    ``fold_in(base_key, i)``, so results do not depend on how steps are chunked. ``consts`` (a tuple of
    pytrees, e.g. data statistics) is passed to every step as traced arguments, so one runner serves
    models whose constants differ; bind it with ``functools.partial(run, consts=...)``.
    """

    def run(carry, data, base_key, start, n, consts=()):
        metrics_shape = jax.eval_shape(lambda c: step_fn(c, data, base_key, *consts)[1], carry)
        buffers = jax.tree.map(lambda s: jnp.full((chunk_size,), jnp.nan, s.dtype), metrics_shape)

        def body(i, val):
            carry, buffers = val
            carry, metrics = step_fn(carry, data, jax.random.fold_in(base_key, start + i), *consts)
            buffers = jax.tree.map(lambda b, m: b.at[i].set(m), buffers, metrics)
            return carry, buffers

        return jax.lax.fori_loop(0, n, body, (carry, buffers))

    return jax.jit(run)


def _all_finite(tree: Any) -> bool:
    leaves = [leaf for leaf in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact)]
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in leaves)


def run_training(
    runner: Callable,
    carry: Any,
    data: Any,
    *,
    n_iters: int,
    chunk_size: int,
    seed: int | jax.Array,
    desc: str,
    start_iter: int = 0,
    callback: Callable[[int, Any], None] | None = None,
    loss_key: str = "loss",
    hint: str = "Try a smaller learning_rate, a larger epsilon, or standardising the representation.",
) -> tuple[Any, dict[str, np.ndarray]]:
    """Run ``n_iters`` steps with a progress bar, checking for divergence after every chunk.

    Parameters
    ----------
    runner
        Output of :func:`make_chunk_runner`.
    carry
        Initial training state (parameters, optimiser state, ...).
    data
        Device arrays passed unchanged to every step.
    n_iters
        Number of steps to run.
    chunk_size
        Steps per compiled call (the progress bar and divergence check update once per chunk).
    seed
        Integer seed or a JAX key; step ``i`` uses ``fold_in(key, i)``.
    desc
        Progress bar label.
    start_iter
        Index of the first step (to resume a run with the same keys).
    callback
        Called as ``callback(iteration, carry)`` after each chunk (checkpoints, logging).
    loss_key
        Metric shown in the progress bar.
    hint
        Advice appended to the divergence error.

    Returns
    -------
    The final carry and a dict of per-step metric histories (host numpy arrays).
    """
    base_key = jax.random.key(seed) if isinstance(seed, int) else seed
    history: dict[str, list[np.ndarray]] = {}
    done = 0
    with tqdm(total=n_iters, desc=desc, disable=not settings.show_progress, leave=False) as bar:
        while done < n_iters:
            n = min(chunk_size, n_iters - done)
            new_carry, metrics = runner(carry, data, base_key, start_iter + done, n)
            metrics = {k: np.asarray(v)[:n] for k, v in metrics.items()}
            bad = [k for k, v in metrics.items() if not np.all(np.isfinite(v))]
            if bad or not _all_finite(new_carry):
                where = start_iter + done + (int(np.argmin(np.isfinite(metrics[bad[0]]))) if bad else n - 1)
                raise TrainingDivergedError(
                    f"{desc}: training diverged at iteration {where} (non-finite {', '.join(bad) or 'parameters'}). "
                    + hint
                )
            carry = new_carry
            for k, v in metrics.items():
                history.setdefault(k, []).append(v)
            done += n
            bar.update(n)
            if loss_key in metrics:
                bar.set_postfix({loss_key: f"{float(np.mean(metrics[loss_key])):.4g}"})
            if callback is not None:
                callback(start_iter + done, carry)
    logger.debug("%s: %d iterations done.", desc, n_iters)
    return carry, {k: np.concatenate(v) for k, v in history.items()}
