"""Periodic training checkpoints and exact resumption.

A checkpoint is one msgpack file (flax serialisation, as :meth:`ConditionalSolver.save`) holding
the iteration, the training state ``(params, opt_state)``, the loss history so far and a
fingerprint of the run. Files are written to a temporary name, flushed, fsynced and renamed, so a
training killed at any moment leaves the previous checkpoint intact. Since step ``i`` draws its
randomness from ``fold_in(key, i)`` (and host-fed batches from ``default_rng([seed, i])``), a
resumed run repeats exactly the steps an uninterrupted run would have taken.

Why not orbax: the training state of these solvers is a few MB of replicated parameters, which one
synchronous file handles; orbax's asynchronous, per-shard directory layout pays off for large
sharded models and would add a heavy dependency for no gain here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from .._settings import logger
from ._training import run_training

_FORMAT = "nescot-checkpoint"
_VERSION = 1
_PATTERN = re.compile(r"^ckpt_(\d{9})\.msgpack$")


def _path(directory: Path, iteration: int) -> Path:
    return directory / f"ckpt_{iteration:09d}.msgpack"


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``directory`` as ``(iteration, path)``, newest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _PATTERN.match(p.name))]
    return sorted(found, reverse=True)


def save_checkpoint(
    directory: str | Path, iteration: int, carry: Any, history: dict[str, np.ndarray], fingerprint: dict, keep: int = 2
) -> Path:
    """Atomically write the checkpoint of ``iteration`` and remove all but the ``keep`` newest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _FORMAT,
        "version": _VERSION,
        "iteration": int(iteration),
        "fingerprint": fingerprint,
        "carry": serialization.to_state_dict(jax.tree.map(np.asarray, carry)),
        "history": {k: np.asarray(v) for k, v in history.items()},
    }
    final = _path(directory, iteration)
    tmp = directory / f".{final.name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(serialization.msgpack_serialize(payload))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)  # atomic on POSIX: readers see the old set of files or the new one
    if hasattr(os, "O_DIRECTORY"):  # persist the rename itself
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for _, old in list_checkpoints(directory)[keep:]:
        old.unlink(missing_ok=True)
    return final


_FIELDS = {"iteration": int, "fingerprint": dict, "carry": dict, "history": dict}


def _checkpoint_problem(payload: Any) -> str | None:
    """Describe what makes a decoded checkpoint unusable; ``None`` if it is complete."""
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        return "not a nescot checkpoint"
    if payload.get("version") != _VERSION:
        return f"written by another nescot version (checkpoint format {payload.get('version')!r}, expected {_VERSION})"
    for name, kind in _FIELDS.items():
        if name not in payload:
            return f"the field {name!r} is missing"
        if not isinstance(payload[name], kind) or isinstance(payload[name], bool):
            return f"the field {name!r} should be a {kind.__name__}, got {type(payload[name]).__name__}"
    if payload["iteration"] < 1:
        return f"its iteration is {payload['iteration']}"
    return None


def load_checkpoint(directory: str | Path) -> dict[str, Any] | None:
    """Load the newest complete checkpoint in ``directory``, or ``None``.

    Unreadable, incomplete or other-version files are skipped with a warning naming the file and the problem,
    so a damaged newest checkpoint falls back to the previous one.
    """
    for _, path in list_checkpoints(directory):
        try:
            payload = serialization.msgpack_restore(path.read_bytes())
        except Exception as err:  # noqa: BLE001 - a damaged file: fall back to the previous checkpoint
            logger.warning("Skipping unreadable checkpoint %s (%s: %s).", path, type(err).__name__, err)
            continue
        problem = _checkpoint_problem(payload)
        if problem is not None:
            logger.warning("Skipping checkpoint %s: %s.", path, problem)
            continue
        payload["path"] = path
        return payload
    return None


def describe_config(config: dict[str, Any], ignore: tuple[str, ...] = ("chunk_size",)) -> str:
    """Stable text of a solver configuration (no memory addresses; settings that do not change results left out)."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(sorted((k, v) for k, v in config.items() if k not in ignore)))


def _check_fingerprint(saved: dict, current: dict, path: Path) -> None:
    for key, value in current.items():
        old = saved.get(key)
        same = (
            np.allclose(np.asarray(old, np.float64), np.asarray(value, np.float64), rtol=1e-6, atol=0)
            if isinstance(value, np.ndarray)
            else old == value
        )
        if not same:
            raise ValueError(
                f"Cannot resume from {path}: its {key!r} is {old!r}, this run has {value!r}. "
                "Use the same data, model and fit arguments, or another checkpoint_dir."
            )


def _aligned_chunk(chunk_size: int, every: int) -> int:
    """Largest chunk size <= ``chunk_size`` dividing ``every``, so checkpoints fall on chunk boundaries."""
    chunk = max(1, min(chunk_size, every))
    while every % chunk:
        chunk -= 1
    return chunk


def train_with_checkpoints(
    runner: Callable,
    carry: Any,
    data: Any,
    *,
    n_iters: int,
    chunk_size: int,
    seed: int | jax.Array,
    desc: str,
    callback: Callable[[int, Any], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    fingerprint: dict | None = None,
    restore: Callable[[Any], Any] = lambda c: c,
) -> tuple[Any, dict[str, np.ndarray]]:
    """:func:`run_training` with periodic checkpoints and resumption.

    Parameters
    ----------
    runner, carry, data, n_iters, chunk_size, seed, desc, callback
        As for :func:`run_training`; ``chunk_size`` must divide ``checkpoint_every``
        (see :func:`checkpoint_chunk_size`).
    checkpoint_dir
        Directory of the checkpoints; ``None`` disables them (and resuming).
    checkpoint_every
        Steps between checkpoints (default: every chunk). The last step is always saved.
    resume
        Continue from the newest checkpoint in ``checkpoint_dir`` if there is one.
    fingerprint
        Values (JSON-like, or arrays compared to 1e-6) that must equal the checkpoint's to resume.
    restore
        Applied to the restored carry (e.g. to place it on the devices).

    Returns
    -------
    The final carry and the full per-step metric histories (including the steps before resuming).
    """
    if checkpoint_dir is None:
        if resume:
            raise ValueError("`resume=True` needs a `checkpoint_dir`.")
        return run_training(runner, carry, data, n_iters=n_iters, chunk_size=chunk_size, seed=seed, desc=desc,
                            callback=callback)  # fmt: skip
    every = int(checkpoint_every or chunk_size)
    fingerprint = dict(fingerprint or {})
    start, past = 0, {}
    saved = load_checkpoint(checkpoint_dir) if resume else None
    if saved is not None:
        _check_fingerprint(saved["fingerprint"], fingerprint, saved["path"])
        start = int(saved["iteration"])
        if start > n_iters:
            raise ValueError(f"{saved['path']} is at iteration {start}, beyond n_iters={n_iters}.")
        template = jax.tree.map(np.asarray, carry)
        try:
            restored = serialization.from_state_dict(template, saved["carry"])
            if jax.tree.structure(restored) != jax.tree.structure(template) or any(
                np.shape(a) != np.shape(b)
                for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(template), strict=True)
            ):
                raise ValueError("array shapes differ")
        except (KeyError, ValueError, TypeError) as err:
            raise ValueError(
                f"Cannot resume from {saved['path']}: its training state does not match this model "
                f"({type(err).__name__}: {err}). Use the same model settings, or another checkpoint_dir."
            ) from None
        carry = restore(jax.tree.map(np.asarray, restored))
        past = {k: np.asarray(v) for k, v in saved["history"].items()}
        logger.info("%s: resuming from %s (iteration %d of %d).", desc, saved["path"], start, n_iters)
    elif resume:
        logger.info("%s: no checkpoint in %s; starting from scratch.", desc, checkpoint_dir)
    if start == n_iters:
        return carry, past

    recorded: dict[str, list[np.ndarray]] = {k: [v] for k, v in past.items()}

    def recording_runner(carry, data, base_key, first, n):
        new_carry, metrics = runner(carry, data, base_key, first, n)
        for k, v in metrics.items():
            recorded.setdefault(k, []).append(np.asarray(v)[: int(n)])
        return new_carry, metrics

    def save_then_callback(iteration: int, carry: Any) -> None:
        if (iteration % every == 0 or iteration == n_iters) and jax.process_index() == 0:
            history = {k: np.concatenate(v)[:iteration] for k, v in recorded.items()}
            save_checkpoint(checkpoint_dir, iteration, carry, history, fingerprint)
        if callback is not None:
            callback(iteration, carry)

    carry, history = run_training(
        recording_runner, carry, data, n_iters=n_iters - start, chunk_size=chunk_size, seed=seed, desc=desc,
        start_iter=start, callback=save_then_callback,
    )  # fmt: skip
    history = {k: np.concatenate([past[k], v]) if k in past else v for k, v in history.items()}
    return carry, history


def checkpoint_chunk_size(chunk_size: int, checkpoint_every: int | None) -> int:
    """Choose the steps per compiled call so that checkpoints fall on chunk boundaries."""
    if checkpoint_every is None:
        return chunk_size
    if int(checkpoint_every) < 1:
        raise ValueError(f"`checkpoint_every` must be >= 1, got {checkpoint_every}.")
    chunk = _aligned_chunk(chunk_size, int(checkpoint_every))
    if chunk < chunk_size // 4:
        logger.warning(
            "checkpoint_every=%d forces chunks of %d steps (slower); use a multiple of chunk_size=%d.",
            checkpoint_every, chunk, chunk_size,
        )  # fmt: skip
    return chunk
