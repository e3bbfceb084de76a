"""A global coupling made of one discrete plan, solved once on a large subsample of the cells.

The mini-batch coupling solves a fresh plan on every training batch. For Gromov-Wasserstein between two
spaces, a plan of a few hundred cells only sees a few hundred distances, and its conditionals are far from those
of the plan of the whole data (docs/benchmarks.md, ``translation.isometric``). :class:`SubsamplePlanCoupling`
solves the wrapped mini-batch coupling once, on up to ``n_cells`` cells of each side, and GENOT then draws its
training pairs from that one plan at every step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._base import CouplingConvergenceWarning
from ._couplings import _check_number, sample_conditional_indices
from ._global_couplings import GlobalCoupling, _stack_states, _task_state
from ._tasks import Batch


@dataclass(frozen=True)
class SubsamplePlanCoupling:
    """Pairs drawn from the plan of a mini-batch coupling solved once on a subsample of the training cells.

    Before GENOT trains, :meth:`fit` draws (without replacement) up to ``n_cells`` source and ``n_cells``
    target cells of each task and solves ``coupling`` on them once (ott-jax, compiled). Each training step then
    draws source cells of the subsample with probability proportional to the plan's row masses, and ``k``
    targets per source from that row. Any mini-batch coupling works; it is meant for
    :class:`~nescot.solvers.QuadraticCoupling` (GW / fused GW across spaces), whose batch plans are poor.

    Tasks of different sizes are padded to the largest subsample with cells of zero plan mass, which are never
    drawn.

    Parameters
    ----------
    coupling
        A balanced mini-batch coupling, ``coupling(x, y) -> CouplingOutput``, e.g.
        :class:`~nescot.solvers.QuadraticCoupling` or :class:`~nescot.solvers.LinearCoupling`.
    n_cells
        Cells of each side per task the plan is solved on (all of them if fewer). Memory and time grow as
        ``n_cells ** 2``: GW on 2000 cells took 8 s on two CPU cores (``translation.isometric``).

    Raises
    ------
    ValueError
        If ``coupling`` is unbalanced (GENOT learns the masses of unbalanced plans from batch plans: use the
        mini-batch coupling) or ``n_cells < 2``.
    """

    coupling: Any
    n_cells: int = 2048

    def __post_init__(self) -> None:
        if isinstance(self.coupling, GlobalCoupling) or not callable(self.coupling):
            raise TypeError(
                "`coupling` must be a mini-batch coupling such as QuadraticCoupling, got "
                f"{type(self.coupling).__name__}."
            )
        if not getattr(self.coupling, "is_balanced", True):
            raise ValueError(
                "SubsamplePlanCoupling needs a balanced coupling (tau_a = tau_b = 1): GENOT learns the masses of an "
                "unbalanced plan from batch plans, so use the mini-batch coupling itself."
            )
        _check_number("n_cells", self.n_cells)
        if int(self.n_cells) < 2:
            raise ValueError(f"`n_cells` must be >= 2, got {self.n_cells}.")

    @property
    def is_balanced(self) -> bool:
        """Whether both marginals are enforced: the wrapped coupling's."""
        return bool(getattr(self.coupling, "is_balanced", True))

    def fit(
        self, sources: list[np.ndarray], targets: list[np.ndarray], condition: np.ndarray, seed: int
    ) -> dict[str, jax.Array]:
        """Subsample each task's cells and solve its plan; state ``{"x", "y", "plan"}`` with the task first."""
        rng = np.random.default_rng(seed)
        solve = jax.jit(lambda a, b: self.coupling(a, b))  # a lambda: jit hashes callables, couplings hold dicts
        states, failed = [], []
        for task, (x, y) in enumerate(zip(sources, targets, strict=True)):
            x_sub = np.asarray(x, np.float32)[rng.choice(len(x), min(int(self.n_cells), len(x)), replace=False)]
            y_sub = np.asarray(y, np.float32)[rng.choice(len(y), min(int(self.n_cells), len(y)), replace=False)]
            out = solve(jnp.asarray(x_sub), jnp.asarray(y_sub))
            plan = np.asarray(out.plan, np.float32)
            if not np.all(np.isfinite(plan)) or not plan.sum() > 0:
                raise FloatingPointError(
                    f"The plan of task {task} has non-finite or no mass: raise the wrapped coupling's epsilon."
                )
            if not bool(out.converged):
                failed.append(task)
            states.append({"x": x_sub, "y": y_sub, "plan": plan / plan.sum()})
        if failed:
            warnings.warn(
                f"SubsamplePlanCoupling: the plan of task(s) {failed} did not converge, so the solver learns from an "
                "approximate plan. Raise the coupling's epsilon or its solver's iterations (e.g. gw_kwargs).",
                CouplingConvergenceWarning,
                stacklevel=3,
            )
        return _stack_states(_pad_to_common_size(states))

    def draw(self, state: dict[str, jax.Array], key: jax.Array, batch: Batch, k: int) -> tuple[jax.Array, jax.Array]:
        """``B`` subsample rows drawn by plan row mass, and ``k`` targets of each from its row of the plan."""
        s = _task_state(state, batch.task)
        k_row, k_col = jax.random.split(key)
        # inverse-CDF draws over the row masses (one "row" of n masses), as for the columns below
        rows = sample_conditional_indices(k_row, s["plan"].sum(1)[None], batch.x.shape[0])[0]
        cols = sample_conditional_indices(k_col, s["plan"][rows], k)  # (B, k)
        return s["x"][rows], s["y"][cols]


def _pad_to_common_size(states: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Pad every task's subsample and plan to the largest one with zero rows; zero-mass cells are never drawn."""
    n = max(len(s["x"]) for s in states)
    m = max(len(s["y"]) for s in states)
    return [
        {
            "x": np.pad(s["x"], ((0, n - len(s["x"])), (0, 0))),
            "y": np.pad(s["y"], ((0, m - len(s["y"])), (0, 0))),
            "plan": np.pad(s["plan"], ((0, n - s["plan"].shape[0]), (0, m - s["plan"].shape[1]))),
        }
        for s in states
    ]
