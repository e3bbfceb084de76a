"""Pure-JAX solvers: arrays in, arrays out; no AnnData here."""

from ._base import ConditionalSolver
from ._couplings import Coupling, CouplingOutput, LinearCoupling, QuadraticCoupling, batch_size_sensitivity
from ._data import RowSource, SampleSource
from ._egnot import EgNOT
from ._genot import GENOT
from ._global_couplings import EgNOTCoupling, GlobalCoupling, MixturePotentialCoupling
from ._model_file import MODEL_FILE_VERSION, ModelFileError
from ._plan_coupling import SubsamplePlanCoupling
from ._sparse_icnn import SparseICNN, entropic_elastic_map, sparsity_penalty
from ._training import TrainingDivergedError

_SOLVERS: dict[str, type[ConditionalSolver]] = {"genot": GENOT, "egnot": EgNOT}


def get_solver(name: str) -> type[ConditionalSolver]:
    """Return the conditional solver class registered under ``name``."""
    if name not in _SOLVERS:
        raise ValueError(f"Unknown solver {name!r}; choose from {sorted(_SOLVERS)}.")
    return _SOLVERS[name]


def register_solver(name: str, cls: type[ConditionalSolver]) -> None:
    """Register a conditional solver class so ``tl`` functions accept ``solver=name``."""
    _SOLVERS[name] = cls


__all__ = [
    "ConditionalSolver",
    "Coupling",
    "CouplingOutput",
    "EgNOT",
    "EgNOTCoupling",
    "GENOT",
    "GlobalCoupling",
    "LinearCoupling",
    "MODEL_FILE_VERSION",
    "MixturePotentialCoupling",
    "ModelFileError",
    "QuadraticCoupling",
    "RowSource",
    "SampleSource",
    "SparseICNN",
    "SubsamplePlanCoupling",
    "TrainingDivergedError",
    "batch_size_sensitivity",
    "entropic_elastic_map",
    "get_solver",
    "register_solver",
    "sparsity_penalty",
]
