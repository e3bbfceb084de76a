"""Compiled training runners and samplers shared by the solver instances of one configuration.

Solvers used to jit their methods with ``self`` static, so every new instance traced and compiled its training
and sampling again (seconds per fit on a CPU, often more than training a small problem), and the jit caches
kept old instances alive. Here, compiled functions are traced from a *template*: a fresh instance built from
the configuration and the data's dimensions alone (``type(model)(**model.config)``), which holds no data,
parameters or statistics, so any data-dependent value must be a traced argument (reading one from the template
fails loudly instead of baking it into a trace shared with other instances). They are kept in a bounded
module-level cache keyed by the configuration's value, so a second model of the same configuration and shapes
compiles nothing, and the cache keeps no model or data alive.

A configuration that cannot be described by value (a callable cost, a coupling object of an unregistered class)
is never shared: such a model compiles its functions once for itself and keeps them on the instance.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import jax.monitoring

from ._model_file import _coupling_classes, config_to_json

_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"  # jax records one per XLA compilation
_CACHE_HIT = "/jax/compilation_cache/cache_hits"  # a program loaded from the persistent cache
_MAX_ENTRIES = 32  # compiled functions kept; each holds its executables (a few MB at most)
_cache: OrderedDict[Hashable, Callable] = OrderedDict()
_lock = threading.Lock()


def _registered_only(value: Any) -> bool:
    """Whether every coupling object in ``value`` is of the registered class of its name (not a look-alike)."""
    if isinstance(value, Mapping):
        return all(_registered_only(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_registered_only(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if _coupling_classes().get(type(value).__name__) is not type(value):
            return False
        return all(_registered_only(getattr(value, f.name)) for f in dataclasses.fields(value))
    return True


def config_key(model: Any, settings: Sequence[str] | None = None) -> Hashable | None:
    """Describe ``model``'s configuration by value: ``(class, JSON text)``, or ``None`` if it is not data.

    Equal keys mean equal configurations (the JSON encoding of a model file is faithful: costs, couplings and
    their settings included), hence equal traces for equal dimensions and arguments. ``settings``: describe only
    these entries of the configuration (those a compiled function depends on); all by default.
    """
    config = model.config if settings is None else {k: model.config[k] for k in settings}
    try:
        text = config_to_json(config, type(model).__name__)
    except TypeError:  # a function, lambda or unknown object: only this instance may use its traces
        return None
    if not _registered_only(config):
        return None
    return type(model), text


def compiled(
    model: Any, what: Hashable, build: Callable[[], Callable], *, settings: Sequence[str] | None = None
) -> Callable:
    """Return the compiled function ``what`` of ``model``'s configuration, building it on first use.

    Parameters
    ----------
    model
        A solver with ``config`` (and ``dims``, when its networks depend on them).
    what
        What is compiled and every setting it is traced with besides the configuration and ``model.dims``
        (e.g. ``("train", batch_size, chunk_size, mesh)``); hashable.
    build
        Builds the function. It must not hold ``model`` (trace from the solver's template instead).
    settings
        The entries of ``model.config`` the function depends on, if not all: models that differ elsewhere (e.g.
        in their coupling) then share it.

    Returns
    -------
    The cached function, or a new one kept on ``model`` if its configuration is not describable by value.
    """
    base, dims = config_key(model, settings), getattr(model, "dims", None)
    if base is None:  # compile once for this instance only (per dims: a refit may change them)
        store = model.__dict__.setdefault("_compiled", {})
        if (dims, what) not in store:
            store[dims, what] = build()
        return store[dims, what]
    key = (base, dims, what)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    fn = build()  # outside the lock: tracing happens at the first call anyway, building is cheap
    with _lock:
        fn = _cache.setdefault(key, fn)
        _cache.move_to_end(key)
        while len(_cache) > _MAX_ENTRIES:
            _cache.popitem(last=False)
    return fn


def clear_compile_cache() -> None:
    """Forget every shared compiled function (the next fit or transport of each configuration compiles again)."""
    from ._global_couplings import _mixture_fit_runner  # imports this module's users: import at use

    with _lock:
        _cache.clear()
    _mixture_fit_runner.cache_clear()


@contextmanager
def count_compiles() -> Iterator[list[int]]:
    """Count the programs XLA compiled in the block: ``with count_compiles() as n: ...``, then ``n[0]``.

    ``n[1]`` counts those JAX loaded from its persistent compilation cache instead (``settings.compilation_cache_dir``;
    jax records a backend-compile event for them too, which ``n[0]`` leaves out).
    """
    count = [0, 0]

    def listen_duration(event: str, duration: float, **kwargs) -> None:
        count[0] += event == _BACKEND_COMPILE

    def listen(event: str, **kwargs) -> None:
        if event == _CACHE_HIT:
            count[0] -= 1
            count[1] += 1

    jax.monitoring.register_event_duration_secs_listener(listen_duration)
    jax.monitoring.register_event_listener(listen)
    try:
        yield count
    finally:
        jax.monitoring.unregister_event_duration_listener(listen_duration)
        jax.monitoring.unregister_event_listener(listen)
