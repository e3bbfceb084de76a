"""Mini-batch entropic couplings computed with ott-jax, used to train the conditional solvers.

A coupling is any object with ``__call__(x, y) -> CouplingOutput`` that can run under ``jit``.
New coupling types (quadratic, fused, ...) go here, next to :class:`LinearCoupling`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from ott.geometry import geometry
from ott.problems.linear import linear_problem
from ott.problems.quadratic import quadratic_problem
from ott.solvers.linear import sinkhorn
from ott.solvers.quadratic import gromov_wasserstein

from ..metrics._distances import sq_euclidean_matrix
from ._costs import CostLike, make_geometry, resolve_cost


class CouplingOutput(NamedTuple):
    """A solved batch plan: ``plan`` (n, m), non-negative, and ``converged``, whether the solver met its tolerance."""

    plan: jax.Array
    converged: jax.Array


class Coupling(Protocol):
    """Something that couples a source batch with a target batch."""

    def __call__(self, x: jax.Array, y: jax.Array) -> CouplingOutput: ...  # noqa: D102


def _check_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"`{name}` must be a number, got {value!r} ({type(value).__name__}).")


# ott's names for scaling a cost matrix (point clouds accept all; plain cost matrices the first three)
SCALE_COST_NAMES = ("mean", "median", "max_cost", "max_norm", "max_bound")


def check_scale_cost(scale_cost: object, name: str = "scale_cost") -> float | str:
    """Validate ``scale_cost``: a number > 0 or one of :data:`SCALE_COST_NAMES`."""
    if isinstance(scale_cost, str):
        if scale_cost not in SCALE_COST_NAMES:
            raise ValueError(f"`{name}` must be a number > 0 or one of {list(SCALE_COST_NAMES)}, got {scale_cost!r}.")
        return scale_cost
    _check_number(name, scale_cost)
    if not (np.isfinite(scale_cost) and scale_cost > 0):
        raise ValueError(f"`{name}` must be a number > 0 or one of {list(SCALE_COST_NAMES)}, got {scale_cost!r}.")
    return float(scale_cost)


def check_tau(name: str, tau: float) -> float:
    """Validate a marginal relaxation ``tau`` in (0, 1]."""
    _check_number(name, tau)
    tau = float(tau)
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"`{name}` must be in (0, 1], got {tau}.")
    return tau


def check_epsilon(epsilon: float | None) -> float | None:
    """Validate an entropic regularisation strength."""
    if epsilon is not None:
        _check_number("epsilon", epsilon)
    if epsilon is not None and not (np.isfinite(epsilon) and float(epsilon) > 0):
        raise ValueError(f"`epsilon` must be > 0, got {epsilon}.")
    return None if epsilon is None else float(epsilon)


@dataclass(frozen=True)
class LinearCoupling:
    """Entropic OT (Sinkhorn) between two batches of the same space, balanced or unbalanced.

    Parameters
    ----------
    cost
        ``"sqeuclidean"`` (``||x - y||^2``, ott's convention), ``"euclidean"``, ``"cosine"``,
        any ott ``CostFn`` (e.g. ``costs.RegTICost``) or a callable ``c(x, y) -> scalar``.
    epsilon
        Entropic regularisation, applied to the cost matrix divided by ``scale_cost``.
        ``None`` uses ott's default (5% of the mean scaled cost).
    scale_cost
        ``1.0`` makes ``epsilon`` absolute; ``"mean"`` divides costs by their batch mean (relative epsilon).
    tau_a, tau_b
        Marginal relaxations in (0, 1]; 1 is balanced.
    sinkhorn_kwargs
        Passed to :class:`ott.solvers.linear.sinkhorn.Sinkhorn`.
    """

    cost: CostLike = "sqeuclidean"
    epsilon: float | None = 0.1
    scale_cost: float | str = "mean"
    tau_a: float = 1.0
    tau_b: float = 1.0
    sinkhorn_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        resolve_cost(self.cost)
        check_epsilon(self.epsilon)
        check_scale_cost(self.scale_cost)
        check_tau("tau_a", self.tau_a)
        check_tau("tau_b", self.tau_b)

    @property
    def is_balanced(self) -> bool:
        """Whether both marginals are enforced."""
        return self.tau_a == 1.0 and self.tau_b == 1.0

    def __call__(self, x: jax.Array, y: jax.Array) -> CouplingOutput:
        """Solve the entropic problem between ``x`` (n, d) and ``y`` (m, d)."""
        geom = make_geometry(x, y, resolve_cost(self.cost), epsilon=self.epsilon, scale_cost=self.scale_cost)
        problem = linear_problem.LinearProblem(geom, tau_a=self.tau_a, tau_b=self.tau_b)
        out = sinkhorn.Sinkhorn(**{"max_iterations": 2000, **self.sinkhorn_kwargs})(problem)
        return CouplingOutput(jax.lax.stop_gradient(out.matrix), out.converged)


def sample_conditional_indices(key: jax.Array, plan: jax.Array, k: int) -> jax.Array:
    """For each row ``i`` of ``plan``, draw ``k`` column indices from ``plan[i] / plan[i].sum()``.

    Inverse-CDF sampling: ``k`` uniforms per row and a binary search in the row's cumulative sum. This costs
    ``n k`` random numbers where a Gumbel-max draw (``jax.random.categorical``) costs ``n m k``, which on the CPU
    made the draw a quarter of GENOT's training step (see docs/benchmarks.md). Columns of zero mass are never
    drawn; a row of zero mass draws uniformly. Returns an int array (n, k).
    """
    n, m = plan.shape
    cdf = jnp.cumsum(plan, axis=1)
    total = cdf[:, -1:]
    u = jax.random.uniform(key, (n, k))
    # side="right": the first column whose cumulative mass exceeds u * total, so a zero-mass column is skipped.
    picks = jax.vmap(partial(jnp.searchsorted, side="right"))(cdf, u * total)
    picks = jnp.where(total > 0, picks, jnp.floor(u * m).astype(picks.dtype))
    return jnp.minimum(picks, m - 1)


def relative_marginals(plan: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Row and column masses of ``plan``, rescaled to mean 1 (relative mass per cell)."""
    total = jnp.sum(plan)
    n, m = plan.shape
    return plan.sum(1) * n / total, plan.sum(0) * m / total


def knn_geodesic_cost(x: jax.Array, n_neighbors: int = 15) -> jax.Array:
    """Shortest-path distances within a batch along its symmetrised kNN graph (Floyd-Warshall, under jit).

    Euclidean distances in curved embeddings (ATAC, RNA) take short cuts across the manifold; distances along
    the kNN graph follow it. (ott's heat-kernel ``Geodesic`` geometry saturates at long range, so shortest paths
    are computed here.) Pairs in different connected components get twice the largest finite distance.
    """
    d2 = sq_euclidean_matrix(x, x)
    n, k = x.shape[0], min(int(n_neighbors), x.shape[0] - 1)
    kth = -jax.lax.top_k(-d2, k + 1)[0][:, -1:]  # k-th neighbour's distance (the point itself comes first)
    edges = d2 <= kth
    edges = edges | edges.T
    dist = jnp.where(edges, jnp.sqrt(d2), jnp.inf).at[jnp.diag_indices(n)].set(0.0)

    def relax(i, dist):
        return jnp.minimum(dist, dist[:, i, None] + dist[None, i, :])

    dist = jax.lax.fori_loop(0, n, relax, dist)
    finite = jnp.isfinite(dist)
    return jnp.where(finite, dist, 2 * jnp.max(jnp.where(finite, dist, 0.0)))


@dataclass(frozen=True)
class QuadraticCoupling:
    """Entropic (fused) Gromov-Wasserstein between batches of two different spaces, balanced or unbalanced.

    The arrays coupled are ``x = [x_own | x_shared]`` and ``y = [y_own | y_shared]``: the last ``n_shared``
    columns of both hold features measured in both spaces (used by the fused term), the other columns
    are compared only within their own space (Gromov-Wasserstein term).

    Parameters
    ----------
    epsilon
        Entropic regularisation; every cost matrix is first divided by its mean (``scale_cost="mean"``), so
        ``epsilon`` is relative to the typical cost.
    alpha
        Weight of the Gromov-Wasserstein term in [0, 1]: 1 is pure GW, 0 a linear problem on the shared
        features only. In between, ott's ``fused_penalty`` is ``(1 - alpha) / alpha``.
    n_shared
        Number of trailing shared columns (0 for pure GW).
    cost_x, cost_y
        Intra-space costs: ``"sqeuclidean"``, ``"euclidean"``, ``"cosine"`` or ``"geodesic"`` (heat-kernel
        geodesics on the batch's kNN graph, :func:`knn_geodesic_cost`).
    cost_shared
        Cost between shared features (a name or ott ``CostFn``).
    tau_a, tau_b
        Marginal relaxations in (0, 1].
    n_neighbors
        Neighbours of the kNN graph for ``"geodesic"``.
    gw_kwargs
        Passed to :class:`ott.solvers.quadratic.gromov_wasserstein.GromovWasserstein`.
    """

    epsilon: float = 0.01
    alpha: float = 1.0
    n_shared: int = 0
    cost_x: str = "sqeuclidean"
    cost_y: str = "sqeuclidean"
    cost_shared: CostLike = "sqeuclidean"
    tau_a: float = 1.0
    tau_b: float = 1.0
    n_neighbors: int = 15
    gw_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon)
        check_tau("tau_a", self.tau_a)
        check_tau("tau_b", self.tau_b)
        _check_number("alpha", self.alpha)
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1], got {self.alpha}.")
        if self.n_shared < 0 or (self.alpha < 1.0 and self.n_shared == 0):
            raise ValueError(f"A fused coupling (alpha < 1) needs shared features, got n_shared={self.n_shared}.")
        for name in ("cost_x", "cost_y"):
            value = getattr(self, name)
            if value != "geodesic":
                resolve_cost(value)
        resolve_cost(self.cost_shared)

    @property
    def is_balanced(self) -> bool:
        """Whether both marginals are enforced."""
        return self.tau_a == 1.0 and self.tau_b == 1.0

    def _intra(self, z: jax.Array, cost: str) -> geometry.Geometry:
        if cost == "geodesic":
            return geometry.Geometry(cost_matrix=knn_geodesic_cost(z, self.n_neighbors), scale_cost="mean")
        return make_geometry(z, z, resolve_cost(cost), epsilon=None, scale_cost="mean")

    def __call__(self, x: jax.Array, y: jax.Array) -> CouplingOutput:
        """Solve the (fused) GW problem between ``x`` (n, d_x) and ``y`` (m, d_y)."""
        s = self.n_shared
        x_own, y_own = (x[:, : x.shape[1] - s], y[:, : y.shape[1] - s]) if s else (x, y)
        geom_xy = None
        if s:
            geom_xy = make_geometry(
                x[:, -s:], y[:, -s:], resolve_cost(self.cost_shared), epsilon=self.epsilon, scale_cost="mean"
            )
        if self.alpha == 0.0:  # nothing quadratic left: the linear problem on shared features
            out = sinkhorn.Sinkhorn(max_iterations=2000)(
                linear_problem.LinearProblem(geom_xy, tau_a=self.tau_a, tau_b=self.tau_b)
            )
            return CouplingOutput(jax.lax.stop_gradient(out.matrix), out.converged)
        problem = quadratic_problem.QuadraticProblem(
            self._intra(x_own, self.cost_x),
            self._intra(y_own, self.cost_y),
            geom_xy,
            fused_penalty=(1.0 - self.alpha) / self.alpha,
            tau_a=self.tau_a,
            tau_b=self.tau_b,
        )
        solver = gromov_wasserstein.GromovWasserstein(
            sinkhorn.Sinkhorn(max_iterations=1000), epsilon=self.epsilon, **{"max_iterations": 20, **self.gw_kwargs}
        )
        out = solver(problem)
        return CouplingOutput(jax.lax.stop_gradient(out.matrix), out.converged)


def batch_size_sensitivity(
    coupling: Coupling,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    factor: int = 4,
    n_query: int = 32,
    n_repeats: int = 4,
    seed: int = 0,
) -> dict[str, float]:
    """How much the conditional laws of a mini-batch coupling change when the batch grows ``factor``-fold.

    GENOT learns the conditionals of the plan solved on batches of ``batch_size`` cells, pooled over batches.
    Where that law is close to the full data's, a larger batch changes little; where it is not (small epsilon in
    many dimensions), samples reflect the batch size rather than the population plan. For ``n_query`` source
    cells placed in every batch, this pools each cell's conditional over ``n_repeats`` random batches of
    ``batch_size`` and of ``factor * batch_size`` cells (capped by the data), and compares the two through their
    means ``m`` and total variances ``v``:
    ``mean over cells of (||m_small - m_large||^2 + (sqrt v_small - sqrt v_large)^2) / tr Cov(y)``.
    0: the batch size does not matter; values near 1 or above: the conditionals move by the target's spread.

    Returns
    -------
    ``{"batch_size", "reference_batch_size", "batch_sensitivity"}``.
    """
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    rng = np.random.default_rng(seed)
    n_query = int(min(n_query, len(x) // 2, len(y) // 2, batch_size // 2))
    query = rng.choice(len(x), n_query, replace=False)
    rest = np.setdiff1d(np.arange(len(x)), query)
    solve = jax.jit(lambda a, b: coupling(a, b).plan[:n_query])  # compiled once per batch size

    def pooled_moments(size: int) -> tuple[np.ndarray, np.ndarray]:
        size = int(min(size, len(rest) + n_query, len(y)))
        first, second = 0.0, 0.0
        for _ in range(n_repeats):
            xs = np.concatenate([x[query], x[rng.choice(rest, size - n_query, replace=False)]])
            ys = y[rng.choice(len(y), size, replace=False)]
            plan = np.asarray(solve(xs, ys), np.float64)
            w = plan / np.maximum(plan.sum(1, keepdims=True), 1e-300)
            first = first + w @ ys / n_repeats
            second = second + w @ np.sum(ys.astype(np.float64) ** 2, 1) / n_repeats
        return first, np.maximum(second - np.sum(first**2, 1), 0.0)

    small_mean, small_var = pooled_moments(batch_size)
    reference = int(min(factor * batch_size, len(rest) + n_query, len(y)))
    large_mean, large_var = pooled_moments(reference)
    total_var = float(np.sum(np.var(y.astype(np.float64), axis=0)))
    gap = np.sum((small_mean - large_mean) ** 2, 1) + (np.sqrt(small_var) - np.sqrt(large_var)) ** 2
    return {
        "batch_size": int(min(batch_size, len(y))),
        "reference_batch_size": reference,
        "batch_sensitivity": float(np.mean(gap) / max(total_var, 1e-30)),
    }
