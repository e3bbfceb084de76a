"""Timing helpers: medians over repeats after a compile warm-up, synchronised with ``block_until_ready``."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


def block(tree: Any) -> Any:
    """Wait for every JAX array in ``tree`` (asynchronous dispatch would otherwise stop the clock early)."""
    return jax.block_until_ready(tree)


def median_time(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Run ``fn`` ``warmup`` times (compilation), then ``repeats`` times; return seconds per call.

    Returns ``{"median_s", "min_s", "max_s", "repeats", "first_s"}``; ``first_s`` is the first warm-up call,
    which includes tracing and compilation.
    """
    first = None
    for _ in range(warmup):
        t0 = time.perf_counter()
        block(fn())
        first = time.perf_counter() - t0 if first is None else first
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "repeats": repeats,
        "first_s": float("nan") if first is None else first,
    }


def wall(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn`` once and return ``(result, seconds)`` (blocks on JAX results)."""
    t0 = time.perf_counter()
    out = block(fn())
    return out, time.perf_counter() - t0


def peak_rss_mb() -> float:
    """Peak resident memory of this process image so far, in MiB.

    Reads ``VmHWM`` from ``/proc/self/status``: unlike ``ru_maxrss`` it is not inherited from the parent across
    ``fork`` + ``exec``, so a fresh worker process reports its own peak. Falls back to ``ru_maxrss`` elsewhere.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def interleaved(fns: dict[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1) -> dict[str, dict]:
    """Time several functions in alternation (A B C A B C ...), so slow drifts in machine load hit all alike.

    Returns per name ``{"median_s", "min_s", "first_s", "repeats", "times"}`` and, under ``"_ratios"``, for each
    name the median over rounds of ``time(name) / time(first name)`` (rounds are adjacent in time, which makes
    the ratio far more stable than a ratio of medians on a shared machine).
    """
    names = list(fns)
    first = {}
    for name in names:
        for w in range(warmup):
            t0 = time.perf_counter()
            block(fns[name]())
            if w == 0:
                first[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(repeats):
        for name in names:
            t0 = time.perf_counter()
            block(fns[name]())
            times[name].append(time.perf_counter() - t0)
    out: dict[str, dict] = {
        n: {
            "median_s": statistics.median(ts),
            "min_s": min(ts),
            "first_s": first.get(n, float("nan")),
            "repeats": repeats,
            "times": ts,
        }
        for n, ts in times.items()
    }
    ref = times[names[0]]
    out["_ratios"] = {n: statistics.median(t / r for t, r in zip(times[n], ref, strict=True)) for n in names}
    return out


def fit_chunk_ms(fit: Callable[[Callable[[int, Any], None]], Any]) -> dict[str, float]:
    """ms per training step of a solver's own ``fit`` loop, from the times between its chunk callbacks.

    ``fit(callback)`` must train with ``callback(iteration, carry)`` called after each chunk of steps. The first
    chunk (compilation) is reported apart; the median covers the later ones (each chunk ends with the loss
    read back to the host, as the progress bar does, so the clock sees finished work).
    """
    stamps: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    fit(lambda it, carry: stamps.append((int(it), time.perf_counter())))
    (i0, s0), rest = stamps[0], stamps[1:]
    per_step, prev = [], (i0, s0)
    for it, s in rest:
        per_step.append(1e3 * (s - prev[1]) / (it - prev[0]))
        prev = (it, s)
    return {
        "median_ms": statistics.median(per_step) if per_step else float("nan"),
        "first_chunk_s": s0 - t0,
        "chunks": len(per_step),
    }
