"""Pure-JAX solvers: arrays in, arrays out; no AnnData here."""

from ._base import ConditionalSolver, MapSolver
from ._couplings import Coupling, CouplingOutput, LinearCoupling, QuadraticCoupling, batch_size_sensitivity
from ._data import RowSource, SampleSource
from ._egnot import EgNOT
from ._genot import GENOT
from ._global_couplings import EgNOTCoupling, GlobalCoupling, MixturePotentialCoupling, coupling_kind, make_coupling
from ._model_file import MODEL_FILE_VERSION, ModelFileError
from ._plan_coupling import SubsamplePlanCoupling
from ._registry import get_solver, register_solver, registered_solvers
from ._sparse_icnn import EntropicElasticMap, SparseICNN, entropic_elastic_map, sparsity_penalty
from ._training import TrainingDivergedError

register_solver("genot", GENOT)
register_solver("egnot", EgNOT)
register_solver("sparse-icnn", SparseICNN, aliases=("icnn",))
register_solver("entropic-map", EntropicElasticMap, aliases=("entropic",))


__all__ = [
    "ConditionalSolver",
    "Coupling",
    "CouplingOutput",
    "EgNOT",
    "EgNOTCoupling",
    "EntropicElasticMap",
    "GENOT",
    "GlobalCoupling",
    "LinearCoupling",
    "MapSolver",
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
    "coupling_kind",
    "entropic_elastic_map",
    "get_solver",
    "make_coupling",
    "register_solver",
    "registered_solvers",
    "sparsity_penalty",
]
