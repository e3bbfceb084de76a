"""The linearised cost of an entropic (fused) Gromov-Wasserstein plan, extended out of sample.

An entropic GW plan ``P`` (ott-jax, squared loss) is a fixed point: it is the entropic linear plan, with the same
epsilon and marginals, for the cost ott linearises the problem with at ``P``,

    C_lin(x, y) = sum_kl P_kl (cx(x, x_k) - cy(y, y_l))^2 + fused_penalty * c(x_shared, y_shared) / s_shared,

``cx`` and ``cy`` being the intra-space costs divided by their means ``s_x``, ``s_y`` over the subsample (ott's
``scale_cost="mean"``, diagonal included). ott's linearisation ``f1(Cx) a 1^T + 1 (f2(Cy) b)^T - h1(Cx) P h2(Cy)^T``
with ``f1 = f2 = (.)^2``, ``h1 = id``, ``h2 = 2 (.)`` is this matrix on the subsample; the GW term is not
multiplied by ``alpha``. The formula extends to any pair of cells, so a neural solver can learn the population
plan of the cost ``C_lin`` (EgNOT). For squared-Euclidean intra costs, ``C_lin`` is, up to a function of ``x``
alone (which does not change ``pi(y | x)``), a polynomial of degree 4 in ``y`` and 2 in ``x`` whose coefficients
are moments of ``P``: evaluating it costs ``O(d_x d_y + d_y^2)`` per pair instead of ``O(n_cells)``.

In coordinates centred at ``x_bar = sum_k a_k x_k`` and ``y_bar = sum_l b_l y_l`` (``a = P 1``, ``b = P^T 1``;
``C_lin`` does not depend on the origin), with ``M = X^T P Y``, ``S = Y^T diag(b) Y``, ``t = Y^T (b * |Y|^2)``,
``v = sum_k a_k |x_k|^2`` and ``u = Y^T P^T |X|^2`` (rows of ``X``, ``Y`` the centred subsample):

    s_y^2 sum_l b_l cy(y, y_l)^2 = |y|^4 + 4 y^T S y + 2 |y|^2 tr S - 4 <y, t> + const
    s_x s_y sum_kl P_kl cx cy = |x|^2 |y|^2 + 4 x^T M y + v |y|^2 - 2 <y, u> + (terms of x alone)

and ``C(x, y) = [first] / s_y^2 - 2 [second] / (s_x s_y) + fused term`` equals ``C_lin`` minus a function of
``x``.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ott.geometry import geometry
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn

from ._base import CouplingConvergenceWarning
from ._costs import make_geometry, resolve_cost

_POTENTIAL_ITERATIONS = 5000  # Sinkhorn iterations for the chains' start potential

# the fitted moments (all float32 arrays), saved in a model's statistics
STAT_KEYS = (
    *("x_mean", "y_mean", "inv_s_x", "inv_s_y", "cross"),
    *("y_second", "y_third", "x_var", "y_by_x", "inv_s_shared"),
)


def check_gw_plan_coupling(coupling: Any, solver: str) -> Any:
    """Return the :class:`QuadraticCoupling` inside a ``SubsamplePlanCoupling`` that ``solver`` can linearise.

    Raises
    ------
    TypeError
        If ``coupling`` is another global coupling, or a plan coupling of something other than a QuadraticCoupling.
    ValueError
        If its intra-space costs are not ``"sqeuclidean"``, or ``alpha == 0`` (no quadratic term left).
    """
    from ._couplings import QuadraticCoupling
    from ._plan_coupling import SubsamplePlanCoupling

    if not isinstance(coupling, SubsamplePlanCoupling) or not isinstance(coupling.coupling, QuadraticCoupling):
        inner = f" of a {type(coupling.coupling).__name__}" if isinstance(coupling, SubsamplePlanCoupling) else ""
        raise TypeError(
            f"{solver} takes a LinearCoupling, or a SubsamplePlanCoupling of a QuadraticCoupling (a Gromov-Wasserstein "
            f"plan it linearises); got a {type(coupling).__name__}{inner}. For the other global couplings, use GENOT."
        )
    gw = coupling.coupling
    for name in ("cost_x", "cost_y"):
        if getattr(gw, name) != "sqeuclidean":
            raise ValueError(
                f"{solver} linearises Gromov-Wasserstein plans of 'sqeuclidean' intra-space costs only, got "
                f"{name}={getattr(gw, name)!r}; use GENOT with this coupling."
            )
    if gw.alpha == 0.0:
        raise ValueError(
            f"A QuadraticCoupling with alpha=0 is a linear problem on the shared features: give {solver} a "
            "LinearCoupling of those features instead."
        )
    return gw


def fused_penalty(gw: Any) -> float:
    """Return ott's ``fused_penalty`` of a QuadraticCoupling: ``(1 - alpha) / alpha`` (0 for pure GW)."""
    return (1.0 - float(gw.alpha)) / float(gw.alpha) if gw.n_shared else 0.0


def _own(z: jax.Array, n_shared: int) -> jax.Array:
    return z[..., : z.shape[-1] - n_shared] if n_shared else z


def linearisation_stats(gw: Any, x_sub: np.ndarray, y_sub: np.ndarray, plan: np.ndarray) -> dict[str, jax.Array]:
    """Return the moments of ``plan`` (n, m) between ``x_sub`` and ``y_sub`` that :func:`linearised_cost` needs."""
    x_sub, y_sub = jnp.asarray(x_sub, jnp.float32), jnp.asarray(y_sub, jnp.float32)
    p = jnp.asarray(plan, jnp.float32)
    p = p / jnp.sum(p)
    s = int(gw.n_shared)
    xo, yo = _own(x_sub, s), _own(y_sub, s)
    a, b = p.sum(1), p.sum(0)
    x_mean, y_mean = a @ xo, b @ yo
    xc, yc = xo - x_mean, yo - y_mean
    sq_x, sq_y = jnp.sum(xc**2, 1), jnp.sum(yc**2, 1)

    def inv_scale(u: jax.Array, v: jax.Array, cost: Any) -> jax.Array:
        # the scale QuadraticCoupling's geometries divide by: ott's "mean" of this subsample's cost matrix
        return jnp.float32(make_geometry(u, v, resolve_cost(cost), epsilon=None, scale_cost="mean").inv_scale_cost)

    inv_s_shared = jnp.float32(1.0)
    if s:
        inv_s_shared = inv_scale(x_sub[:, -s:], y_sub[:, -s:], gw.cost_shared)
    return {
        "x_mean": x_mean,
        "y_mean": y_mean,
        "inv_s_x": inv_scale(xo, xo, gw.cost_x),
        "inv_s_y": inv_scale(yo, yo, gw.cost_y),
        "cross": xc.T @ p @ yc,
        "y_second": (yc * b[:, None]).T @ yc,
        "y_third": yc.T @ (b * sq_y),
        "x_var": a @ sq_x,
        "y_by_x": yc.T @ (p.T @ sq_x),
        "inv_s_shared": inv_s_shared,
    }


def linearised_cost_matrix(gw: Any, stats: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    """``C_lin`` minus a function of ``x`` alone, between every row of ``x`` (n, d_x) and every row of ``y``."""
    s = int(gw.n_shared)
    xc, yc = _own(x, s) - stats["x_mean"], _own(y, s) - stats["y_mean"]
    nx, ny = jnp.sum(xc**2, -1), jnp.sum(yc**2, -1)
    second, third = stats["y_second"], stats["y_third"]
    y_term = ny**2 + 4.0 * jnp.sum((yc @ second) * yc, -1) + 2.0 * ny * jnp.trace(second) - 4.0 * yc @ third
    cross = nx[:, None] * ny + 4.0 * (xc @ stats["cross"]) @ yc.T + ny * stats["x_var"] - 2.0 * yc @ stats["y_by_x"]
    cost = y_term * stats["inv_s_y"] ** 2 - 2.0 * cross * (stats["inv_s_x"] * stats["inv_s_y"])
    if s:
        shared = make_geometry(x[:, -s:], y[:, -s:], resolve_cost(gw.cost_shared), epsilon=None, scale_cost=1.0)
        cost = cost + fused_penalty(gw) * shared.cost_matrix * stats["inv_s_shared"]
    return cost


def linearised_cost(gw: Any, stats: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    """``C_lin(x, y)`` minus a function of ``x`` alone, for one source cell ``x`` and one target cell ``y``."""
    return linearised_cost_matrix(gw, stats, x[None], y[None])[0, 0]


def plan_target_potential(gw: Any, stats: dict[str, jax.Array], x_sub: Any, y_sub: Any, plan: Any) -> jax.Array:
    """Target potential ``g`` (m,) of the entropic plan of ``C_lin`` on the subsample, with ``plan``'s marginals.

    ``plan`` is that plan when ott's GW iteration reached its fixed point; ``g`` extends it out of sample: for any
    source cell ``x``, ``pi(y_l | x)`` is proportional to ``exp((g_l - C_lin(x, y_l)) / epsilon)`` (ott's
    convention, marginals folded into the potentials). Called eagerly, before training: a Sinkhorn run that misses
    its tolerance within ``_POTENTIAL_ITERATIONS`` warns (:class:`CouplingConvergenceWarning`), a non-finite potential
    raises.
    """
    cost = linearised_cost_matrix(gw, stats, jnp.asarray(x_sub, jnp.float32), jnp.asarray(y_sub, jnp.float32))
    cost = cost - jnp.min(cost, axis=1, keepdims=True)  # a function of x alone: same plan and g, better conditioned
    plan = jnp.asarray(plan, jnp.float32)
    geom = geometry.Geometry(cost_matrix=cost, epsilon=float(gw.epsilon))
    problem = linear_problem.LinearProblem(geom, a=plan.sum(1) / plan.sum(), b=plan.sum(0) / plan.sum())
    out = sinkhorn.Sinkhorn(max_iterations=_POTENTIAL_ITERATIONS)(problem)
    if not bool(jnp.all(jnp.isfinite(cost)) & jnp.all(jnp.isfinite(out.g))):  # ott returns finite g for a NaN cost
        raise FloatingPointError(
            "The potential that starts the Langevin chains across spaces is not finite (the subsample's linearised "
            f"cost or its Sinkhorn potential at epsilon={float(gw.epsilon)}): check the data or raise the epsilon."
        )
    if not bool(out.converged):
        warnings.warn(
            f"The potential that starts the Langevin chains across spaces did not converge in {_POTENTIAL_ITERATIONS} "
            f"Sinkhorn iterations (epsilon={float(gw.epsilon)}), so the chains start from an approximate plan. "
            "Raise the quadratic coupling's epsilon.",
            CouplingConvergenceWarning,
            stacklevel=3,
        )
    return out.g
