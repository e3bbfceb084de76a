"""nescot: neural single-cell optimal transport."""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, io, metrics, pl, solvers, tl
from ._settings import settings

try:
    __version__ = version("nescot")
except PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0"

__all__ = ["datasets", "io", "metrics", "pl", "settings", "solvers", "tl"]
