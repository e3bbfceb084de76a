"""nescot benchmark suite: accuracy and speed of the solver families, reproducible by one command.

Each solver family is one module that registers its entries with :func:`register`. An entry is a
function ``fn(suite) -> list[dict]`` (one dict per table row, or ``{"rows": [...], "notes": [...]}``);
``requires`` tells at run time whether what an entry needs is available (an optional dependency, a
device), so the entry is reported as skipped rather than failed.

Run ``python -m benchmarks run --suite quick`` (see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

SUITES = ("smoke", "quick", "full")  # "smoke": tiny workloads for the test suite only


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark entry."""

    name: str
    family: str
    kind: str  # "accuracy" | "speed" | "scale"
    fn: Callable[[str], list[dict]]
    description: str
    suites: tuple[str, ...] = SUITES
    requires: Callable[[], str | None] = field(default=lambda: None)


REGISTRY: dict[str, Benchmark] = {}


def register(
    name: str,
    *,
    kind: str,
    family: str | None = None,
    description: str | None = None,
    suites: tuple[str, ...] = SUITES,
    requires: Callable[[], str | None] | None = None,
) -> Callable:
    """Decorator registering ``fn(suite) -> rows`` under ``name``.

    Parameters
    ----------
    name
        ``family.entry``, as selected by ``--only``.
    kind
        ``"accuracy"``, ``"speed"`` or ``"scale"``.
    family
        Defaults to the first dotted part of ``name``.
    description
        Defaults to the summary of ``fn``'s docstring (its first paragraph on one line, without the final period),
        so an entry says what it measures once, where it is defined.
    suites
        The suites the entry runs in.
    requires
        Returns why the entry cannot run here (it is then skipped), or None.

    Returns
    -------
    The decorator, which returns ``fn`` unchanged.
    """

    def deco(fn: Callable[[str], list[dict]]) -> Callable[[str], list[dict]]:
        if name in REGISTRY:
            raise ValueError(f"Benchmark {name!r} registered twice.")
        summary = description
        if summary is None:
            summary = " ".join(inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0].split()).removesuffix(".")
        REGISTRY[name] = Benchmark(
            name, family or name.split(".")[0], kind, fn, summary, suites, requires or (lambda: None)
        )
        return fn

    return deco


def load_all() -> dict[str, Benchmark]:
    """Import every family module (registration happens on import) and return the registry."""
    from . import egnot, genot, real, reference, sparse_icnn, translation  # noqa: F401

    return REGISTRY
