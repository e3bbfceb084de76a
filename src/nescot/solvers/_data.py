"""Host-fed training data: row sources read batch by batch, prefetched on a background thread.

The in-memory path stacks every cell on the device and samples batches inside ``jit``. When the
data do not fit (millions of cells, backed or zarr-stored AnnData), solvers accept *row sources*
instead of arrays: anything with ``shape``, ``__len__`` and ``__getitem__(sorted_rows) -> array``
(or only ``sample(rng, n)`` for an endless generator). A :class:`HostFeed` then draws each step's
rows on the host, reads them (one sorted read per population and step, as h5py needs), stacks a
chunk of steps and ships it to the device(s) while the previous chunk trains. No AnnData here:
the adapters for AnnData, h5ad and zarr live in :mod:`nescot.io`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

_CHUNK_BYTES = 32 * 2**20  # host memory of one prefetched chunk of batches (bounds chunk_size when fed)
_STATS_BYTES = 64 * 2**20  # rows read at once by the statistics pass
_N_STATS_SAMPLES = 65_536  # draws used for the statistics of sample-only sources


@runtime_checkable
class RowSource(Protocol):
    """Cells of one population that can be read by rows without holding them all in memory.

    ``__getitem__`` receives a sorted array of distinct row positions and returns a dense
    ``(len(rows), shape[1])`` array (float32 preferred).
    """

    shape: tuple[int, ...]

    def __len__(self) -> int: ...  # noqa: D105

    def __getitem__(self, rows: np.ndarray) -> np.ndarray: ...  # noqa: D105


@runtime_checkable
class SampleSource(Protocol):
    """An endless population: ``sample(rng, n)`` returns ``n`` fresh cells ``(n, d)``; ``shape[1]`` is ``d``."""

    shape: tuple[int, ...]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray: ...  # noqa: D102


class ArrayRows:
    """An in-memory array seen as a :class:`RowSource` (so arrays and lazy sources can be mixed)."""

    def __init__(self, array: np.ndarray, name: str = "array") -> None:
        self.array = np.asarray(array)
        self.shape = self.array.shape
        self.name = name

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.array[rows]


def is_source(obj: Any) -> bool:
    """Whether ``obj`` is a row / sample source rather than an array (or a list of arrays)."""
    if isinstance(obj, np.ndarray | jax.Array):
        return False
    return isinstance(obj, SampleSource) or (isinstance(obj, RowSource) and len(getattr(obj, "shape", ())) == 2)


def has_sources(*inputs: Any) -> bool:
    """Whether any ``fit`` input (a population or a list of populations) is a source."""
    for item in inputs:
        items = item if isinstance(item, list | tuple) else [item]
        if any(is_source(a) for a in items):
            return True
    return False


def _name(src: Any, default: str) -> str:
    return str(getattr(src, "name", None) or default)


def read_rows(src: Any, rows: np.ndarray) -> np.ndarray:
    """Read arbitrary (unsorted, repeated) ``rows`` of a row source with one sorted, duplicate-free read."""
    unique, inverse = np.unique(rows, return_inverse=True)
    block = np.asarray(src[unique], dtype=np.float32)
    return block[inverse]


class _Moments:
    """Running per-feature mean and total sum of squared deviations (Chan et al.'s merge), in float64."""

    def __init__(self, d: int) -> None:
        self.n, self.mean, self.m2 = 0, np.zeros(d), np.zeros(d)

    def add(self, block: np.ndarray, weight: int = 1) -> None:
        block = np.asarray(block, np.float64)
        nb = len(block) * weight
        if nb == 0:
            return
        mb = block.mean(0)
        m2b = ((block - mb) ** 2).sum(0) * weight
        delta, total = mb - self.mean, self.n + nb
        self.mean = self.mean + delta * nb / total
        self.m2 = self.m2 + m2b + delta**2 * self.n * nb / total
        self.n = total

    def standardizer(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre and global scale, as ``Standardizer.fit`` computes them on the stacked cells."""
        scale = np.sqrt(self.m2.sum() / (self.n * len(self.mean))) + 1e-8
        return self.mean.astype(np.float32), np.asarray(scale, np.float32)


def _population_moments(sources: Sequence[Any], what: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One streaming pass over every population (each distinct object read once): moments and finiteness."""
    moments = _Moments(sources[0].shape[1])
    counts: dict[int, int] = {}
    for s in sources:
        counts[id(s)] = counts.get(id(s), 0) + 1
    seen: set[int] = set()
    for k, src in enumerate(sources):
        if id(src) in seen:
            continue
        seen.add(id(src))
        name = _name(src, type(src).__name__)
        label = f"{what}[{k}]" + ("" if name == f"{what}[{k}]" else f" ({name})")
        if not isinstance(src, RowSource):
            blocks = [src.sample(np.random.default_rng([seed, 7, k]), _N_STATS_SAMPLES)]
        else:
            step = max(1, _STATS_BYTES // (4 * src.shape[1]))
            blocks = (src[np.arange(a, min(a + step, len(src)))] for a in range(0, len(src), step))
        start = 0
        for block in blocks:
            block = np.asarray(block, np.float32)
            bad = ~np.isfinite(block)
            if bad.any():
                row = start + int(np.argwhere(bad)[0][0])
                raise ValueError(f"{label} contains NaN or infinite values (first in row {row}).")
            moments.add(block, counts[id(src)])
            start += len(block)
    return moments.standardizer()


def _check_population(src: Any, label: str) -> None:
    if len(src.shape) != 2:
        raise ValueError(f"{label} must be 2-D (cells x features), got shape {tuple(src.shape)}.")
    if isinstance(src, RowSource) and len(src) < 2:
        raise ValueError(f"{label} has {len(src)} cell(s); at least 2 are needed.")


class HostFeed:
    """Training batches drawn and read on the host, prefetched one chunk ahead on a background thread.

    Step ``i`` draws its task and rows from ``numpy.random.default_rng([seed, i])``, so batches do not
    depend on chunking, prefetching or resuming. Each process reads only the rows of the batch that
    its devices hold (see :meth:`configure`).

    Parameters
    ----------
    sources, targets
        Equal-length lists of populations (row sources, sample sources or arrays), one pair per task.
    condition
        ``(n_tasks, d_c)`` condition of each task.
    seed
        Seed of the batch draws.
    depth
        Chunks prepared ahead of the one training (bounded queue).
    """

    def __init__(
        self, sources: Sequence[Any], targets: Sequence[Any], condition: np.ndarray, *, seed: int, depth: int = 2
    ) -> None:
        wrapped: dict[int, ArrayRows] = {}  # one wrapper per array, so a population shared by tasks is read once

        def wrap(a: Any, label: str) -> Any:
            if is_source(a):
                return a
            if id(a) not in wrapped:
                wrapped[id(a)] = ArrayRows(_finite(a, label), name=label)
            return wrapped[id(a)]

        self.sources = [wrap(s, f"source[{k}]") for k, s in enumerate(sources)]
        self.targets = [wrap(t, f"target[{k}]") for k, t in enumerate(targets)]
        if len(self.sources) != len(self.targets):
            raise ValueError(f"Got {len(self.sources)} source populations but {len(self.targets)} targets.")
        for what, pops in (("source", self.sources), ("target", self.targets)):
            for k, p in enumerate(pops):
                _check_population(p, f"{what}[{k}]")
            if len({p.shape[1] for p in pops}) != 1:
                raise ValueError(f"All {what} populations must have the same number of features.")
        self.condition = np.asarray(condition, np.float32)
        self.seed, self.depth = int(seed), int(depth)
        self.dims = (self.sources[0].shape[1], self.targets[0].shape[1], self.condition.shape[1])
        self.batch_size: int | None = None
        self.chunk_size = 1
        self.n_iters = 0
        self._put: Callable[[np.ndarray, tuple[int, ...]], Any] = lambda a, shape: jnp.asarray(a)
        self._local = slice(None)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue()
        self._next = -1
        self.waits: list[float] = []  # seconds the training loop waited for each chunk (the first: start-up)

    @classmethod
    def from_inputs(cls, source: Any, target: Any, condition: np.ndarray | None, *, seed: int) -> HostFeed:
        """Build from ``fit`` inputs: one population or equal-length lists, and the tasks' conditions."""
        sources = list(source) if isinstance(source, list | tuple) else [source]
        targets = list(target) if isinstance(target, list | tuple) else [target]
        if condition is None:
            if len(sources) > 1:
                raise ValueError("Several (source, target) pairs need a `condition` array with one row per pair.")
            condition = np.zeros((1, 0), np.float32)
        condition = np.atleast_2d(np.asarray(condition, np.float32))
        if condition.shape[0] != len(sources):
            raise ValueError(f"`condition` has {condition.shape[0]} rows for {len(sources)} (source, target) pairs.")
        if not np.all(np.isfinite(condition)):
            raise ValueError("`condition` contains NaN or infinite values.")
        return cls(sources, targets, condition, seed=seed)

    # -- configuration -------------------------------------------------------------------------
    def max_batch_size(self) -> int:
        """Smallest population size (row sources only)."""
        sizes = [len(p) for p in self.sources + self.targets if isinstance(p, RowSource)]
        return min(sizes) if sizes else np.iinfo(np.int32).max

    def max_chunk(self, batch_size: int) -> int:
        """Most steps per chunk whose batches fit the host memory budget of one chunk."""
        return int(max(1, _CHUNK_BYTES // (4 * batch_size * (sum(self.dims) + 1))))  # + the task index

    def standardizers(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Centre and scale of the stacked sources and of the stacked targets (one streaming pass)."""
        return _population_moments(self.sources, "source", self.seed), _population_moments(
            self.targets, "target", self.seed
        )

    def subsample(self, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Up to ``n`` random cells of every source and target population, in memory (to fit a global coupling)."""
        rng = np.random.default_rng([self.seed, 0, 1])  # not a step's stream ([seed, i])

        def take(pop: Any) -> np.ndarray:
            if isinstance(pop, RowSource):
                return read_rows(pop, np.sort(rng.choice(len(pop), min(n, len(pop)), replace=False)))
            return np.asarray(pop.sample(rng, n), np.float32)

        return [take(p) for p in self.sources], [take(p) for p in self.targets]

    def configure(
        self,
        batch_size: int,
        chunk_size: int,
        n_iters: int,
        put: Callable[[np.ndarray, tuple[int, ...]], Any] | None = None,
        local: slice = slice(None),
    ) -> None:
        """Fix batch size, steps per chunk and steps in all; ship chunks with ``put(local_array, global_shape)``.

        ``local`` is the slice of batch positions held by this process's devices: only those rows are read.
        """
        self.batch_size, self.chunk_size, self.n_iters = int(batch_size), int(chunk_size), int(n_iters)
        self._put = put or (lambda a, shape: jnp.asarray(a))
        self._local = local

    # -- batches -------------------------------------------------------------------------------
    def _draw(self, pop: Any, rng: np.random.Generator) -> np.ndarray:
        if isinstance(pop, RowSource):
            rows = rng.integers(0, len(pop), self.batch_size)[self._local]
            return read_rows(pop, rows)
        return np.asarray(pop.sample(rng, self.batch_size), np.float32)[self._local]

    def batch(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Host arrays (local part of) ``(x, y, condition, task)`` of step ``i`` (the task index per cell)."""
        rng = np.random.default_rng([self.seed, i])
        task = int(rng.integers(len(self.sources)))
        x = self._draw(self.sources[task], rng)
        y = self._draw(self.targets[task], rng)
        for what, a in (("source", x), ("target", y)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"A batch of {what}[{task}] contains NaN or infinite values (step {i}).")
        return x, y, np.broadcast_to(self.condition[task], (len(x), self.dims[2])), np.full(len(x), task, np.int32)

    def chunk(self, start: int) -> tuple[Any, ...]:
        """Device arrays ``(chunk_size, batch_size, d)`` and task indices of steps ``start, ...`` (padded).

        Steps past ``n_iters`` repeat the last one and are never run.
        """
        steps = [self.batch(i) for i in range(start, min(start + self.chunk_size, self.n_iters))]
        steps += [steps[-1]] * (self.chunk_size - len(steps))  # padding steps are never run
        shapes = [(self.chunk_size, self.batch_size, d) for d in self.dims] + [(self.chunk_size, self.batch_size)]
        return tuple(self._put(np.stack([s[j] for s in steps]), shape) for j, shape in enumerate(shapes))

    # -- prefetching ---------------------------------------------------------------------------
    def _produce(self, start: int, stop: threading.Event, out: queue.Queue) -> None:
        def offer(item) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        s = start
        try:
            for s in range(start, self.n_iters, self.chunk_size):
                if not offer((s, self.chunk(s), None)):
                    return
        except Exception as err:  # noqa: BLE001 - handed to the training thread, which re-raises it
            offer((s, None, err))

    def get(self, start: int) -> tuple[Any, Any, Any]:
        """Return the chunk of steps beginning at ``start``; (re)start the reader thread when needed."""
        if self._thread is None or start != self._next:
            self.close()
            self._stop, self._queue = threading.Event(), queue.Queue(maxsize=max(1, self.depth))
            self._thread = threading.Thread(
                target=self._produce, args=(start, self._stop, self._queue), daemon=True, name="nescot-feed"
            )
            self._thread.start()
        tic = time.perf_counter()
        got, item, err = self._queue.get()
        self.waits.append(time.perf_counter() - tic)
        if err is not None:
            self.close()
            raise err
        if got != start:  # cannot happen: the reader produces chunks in order from where it was started
            raise RuntimeError(f"Internal error: expected the chunk at step {start}, got {got}.")
        self._next = start + self.chunk_size
        return item

    def close(self) -> None:
        """Stop the reader thread."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def __enter__(self) -> HostFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finite(a: Any, label: str) -> np.ndarray:
    a = np.asarray(a, np.float32)
    if a.ndim == 2 and not np.all(np.isfinite(a)):
        raise ValueError(f"{label} contains NaN or infinite values.")
    return a


def make_fed_runner(step_fn: Callable, chunk_size: int) -> Callable:
    """Like ``make_chunk_runner``, but each step gets its own prefetched batch.

    Parameters
    ----------
    step_fn
        ``step_fn(carry, batch, key, *consts) -> (carry, metrics)``; ``batch`` is the tuple of the step's arrays.
    chunk_size
        Steps per compiled call (the leading axis of the fed arrays).

    Returns
    -------
    ``run(carry, feed, base_key, start, n, consts=())`` for ``run_training``: takes the chunk starting at ``start``
    from ``feed`` (a :class:`HostFeed`) and runs its first ``n`` steps; step ``i`` gets ``fold_in(base_key, i)``.
    ``consts`` is passed to every step as traced arguments (as for ``make_chunk_runner``).
    """

    def run(carry, batches, base_key, start, n, consts):
        first = jax.tree.map(lambda b: b[0], batches)
        metrics_shape = jax.eval_shape(lambda c: step_fn(c, first, base_key, *consts)[1], carry)
        buffers = jax.tree.map(lambda s: jnp.full((chunk_size,), jnp.nan, s.dtype), metrics_shape)

        def body(i, val):
            carry, buffers = val
            batch = jax.tree.map(lambda b: b[i], batches)
            carry, metrics = step_fn(carry, batch, jax.random.fold_in(base_key, start + i), *consts)
            return carry, jax.tree.map(lambda b, m: b.at[i].set(m), buffers, metrics)

        return jax.lax.fori_loop(0, n, body, (carry, buffers))

    compiled = jax.jit(run)

    def runner(carry, feed: HostFeed, base_key, start, n, consts=()):
        return compiled(carry, feed.get(int(start)), base_key, start, n, consts)

    return runner
