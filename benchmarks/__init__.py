"""nescot benchmark suite: accuracy and speed of the solver families, reproducible by one command.

Each solver family is one module that registers its entries with :func:`register`. An entry is a
function ``fn(suite) -> list[dict]`` (one dict per table row, or ``{"rows": [...], "notes": [...]}``);
``requires`` tells at run time whether what an entry needs is available (an optional dependency, a
device), so the entry is reported as skipped rather than failed.

Run ``python -m benchmarks run --suite quick`` (see ``docs/benchmarks.md``).
"""

from __future__ import annotations

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
    family: str,
    kind: str,
    description: str,
    suites: tuple[str, ...] = SUITES,
    requires: Callable[[], str | None] | None = None,
) -> Callable:
    """Decorator registering ``fn(suite) -> rows`` under ``name``."""

    def deco(fn: Callable[[str], list[dict]]) -> Callable[[str], list[dict]]:
        if name in REGISTRY:
            raise ValueError(f"Benchmark {name!r} registered twice.")
        REGISTRY[name] = Benchmark(name, family, kind, fn, description, suites, requires or (lambda: None))
        return fn

    return deco


def load_all() -> dict[str, Benchmark]:
    """Import every family module (registration happens on import) and return the registry."""
    from . import egnot, genot, real, reference, sparse_icnn, translation  # noqa: F401

    return REGISTRY
