"""Cost functions: names resolved to ott-jax costs, and cost matrices for any of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ott.geometry import costs, geometry, pointcloud

CostLike = str | costs.CostFn | Callable[[jax.Array, jax.Array], jax.Array]

_NAMED_COSTS: dict[str, Callable[[], costs.CostFn]] = {
    "sqeuclidean": costs.SqEuclidean,  # ott convention: ||x - y||^2, no factor 1/2
    "euclidean": costs.Euclidean,
    "cosine": costs.Cosine,
}


def resolve_cost(cost: CostLike) -> costs.CostFn | Callable:
    """Return an ott ``CostFn`` for a name, or the ``CostFn`` / callable ``c(x, y)`` unchanged."""
    if isinstance(cost, str):
        if cost not in _NAMED_COSTS:
            raise ValueError(f"Unknown cost {cost!r}; choose from {sorted(_NAMED_COSTS)}, an ott CostFn or a callable.")
        return _NAMED_COSTS[cost]()
    if isinstance(cost, costs.CostFn) or callable(cost):
        return cost
    raise TypeError(f"`cost` must be a name, an ott CostFn or a callable c(x, y), got {type(cost).__name__}.")


def make_geometry(
    x: jax.Array,
    y: jax.Array,
    cost: costs.CostFn | Callable,
    *,
    epsilon: float | None,
    scale_cost: float | str,
) -> geometry.Geometry:
    """Geometry between two point clouds; ``epsilon`` applies to the cost divided by ``scale_cost``."""
    if isinstance(cost, costs.CostFn):
        return pointcloud.PointCloud(x, y, cost_fn=cost, epsilon=epsilon, scale_cost=scale_cost)
    cost_matrix = jax.vmap(lambda xi: jax.vmap(lambda yj: cost(xi, yj))(y))(x)
    return geometry.Geometry(cost_matrix=jnp.asarray(cost_matrix), epsilon=epsilon, scale_cost=scale_cost)


POPULATION_SCALES = {"mean": np.mean, "median": np.median, "max_cost": np.max}


def check_population_scale_cost(scale_cost: object) -> float | str:
    """Validate a cost scale fixed for a whole data set: a finite number > 0 or one of :data:`POPULATION_SCALES`."""
    if isinstance(scale_cost, str) and scale_cost in POPULATION_SCALES:
        return scale_cost
    number = isinstance(scale_cost, int | float | np.integer | np.floating) and not isinstance(scale_cost, bool)
    if number and np.isfinite(scale_cost) and scale_cost > 0:
        return float(scale_cost)
    raise ValueError(f"`scale_cost` must be > 0 or one of {sorted(POPULATION_SCALES)}, got {scale_cost!r}.")


def population_cost_scale(
    cost: costs.CostFn | Callable, x: Any, y: Any, scale_cost: float | str, key: jax.Array, n_pairs: int = 2048
) -> float:
    """Return a cost scale fixed for a whole data set (the population counterpart of ott's per-batch scaling).

    A number is returned as is; ``"mean"``, ``"median"`` or ``"max_cost"`` is that statistic of the cost over
    ``n_pairs`` random (source, target) pairs.
    """
    if not isinstance(scale_cost, str):
        return float(scale_cost)
    if scale_cost not in POPULATION_SCALES:
        raise ValueError(f"`scale_cost` must be a number or one of {sorted(POPULATION_SCALES)}, got {scale_cost!r}.")
    k1, k2 = jax.random.split(key)
    i = jax.random.randint(k1, (n_pairs,), 0, x.shape[0])
    j = jax.random.randint(k2, (n_pairs,), 0, y.shape[0])
    value = float(POPULATION_SCALES[scale_cost](np.asarray(jax.vmap(cost)(jnp.asarray(x)[i], jnp.asarray(y)[j]))))
    if not value > 0:
        raise ValueError(f"scale_cost={scale_cost!r} gives a non-positive cost scale ({value}); pass a number.")
    return value
