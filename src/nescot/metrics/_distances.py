"""Sample-based distances between two populations (predicted vs observed cells)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from ott.geometry import pointcloud
from ott.tools import sinkhorn_divergence as ott_sd
from ott.tools import sliced as ott_sliced


def _pair(x, y) -> tuple[jax.Array, jax.Array]:
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"Expected two 2-D arrays with the same number of columns, got {x.shape} and {y.shape}.")
    if len(x) == 0 or len(y) == 0:
        raise ValueError("Both populations must contain at least one cell.")
    return jnp.asarray(x), jnp.asarray(y)


def _weights(w, n: int, name: str) -> jax.Array:
    """Probability weights of ``n`` cells: uniform for ``None``, else ``w`` checked and normalised to sum 1."""
    if w is None:
        return jnp.full((n,), 1.0 / n)
    w = np.asarray(w, np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f"`{name}` must hold {n} finite non-negative weights with a positive sum (shape {w.shape}).")
    return jnp.asarray(w / w.sum(), jnp.float32)


def sq_euclidean_matrix(a: jax.Array, b: jax.Array) -> jax.Array:
    """Pairwise squared Euclidean distances ``||a_i - b_j||^2`` (jit-safe).

    Parameters
    ----------
    a, b
        Points (n, d) and (m, d).

    Returns
    -------
    The (n, m) matrix: ott's squared-Euclidean point-cloud cost, clipped at 0 because its expanded form
    ``|a|^2 + |b|^2 - 2 a.b`` can round below 0 for (nearly) equal points.
    """
    return jnp.maximum(pointcloud.PointCloud(a, b).cost_matrix, 0.0)


def _weighted_mean_dist(a: jax.Array, b: jax.Array, wa: jax.Array, wb: jax.Array) -> jax.Array:
    return wa @ jnp.sqrt(sq_euclidean_matrix(a, b)) @ wb


# The metrics' array code is jitted: run eagerly, each of its operations compiles on its own for every new
# population size (dozens of small compilations per call, more time than computing the metrics).
@jax.jit
def _energy_distance(x, y, wx, wy) -> jax.Array:
    return 2 * _weighted_mean_dist(x, y, wx, wy) - _weighted_mean_dist(x, x, wx, wx) - _weighted_mean_dist(y, y, wy, wy)


def energy_distance(
    x: np.ndarray, y: np.ndarray, *, x_weights: np.ndarray | None = None, y_weights: np.ndarray | None = None
) -> float:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (V-statistic, >= 0, in the data's units).

    Parameters
    ----------
    x, y
        Samples (n, d) and (m, d).
    x_weights, y_weights
        Optional non-negative weights of the cells (e.g. learned masses): the expectations are then over the
        weighted empirical laws. ``None``: uniform.

    Returns
    -------
    The energy distance.
    """
    x, y = _pair(x, y)
    wx, wy = _weights(x_weights, len(x), "x_weights"), _weights(y_weights, len(y), "y_weights")
    return float(_energy_distance(x, y, wx, wy))


def mmd_rbf(
    x: np.ndarray,
    y: np.ndarray,
    gammas: Sequence[float] = (2.0, 1.0, 0.5, 0.1, 0.01, 0.005),
    *,
    x_weights: np.ndarray | None = None,
    y_weights: np.ndarray | None = None,
) -> float:
    """Squared MMD with RBF kernels ``exp(-gamma |a - b|^2)``, averaged over ``gammas`` (biased V-statistic).

    The bandwidths are absolute (in the data's squared units). ``x_weights`` / ``y_weights``: optional cell
    weights, as in :func:`energy_distance`.
    """
    x, y = _pair(x, y)
    wx, wy = _weights(x_weights, len(x), "x_weights"), _weights(y_weights, len(y), "y_weights")
    return float(_mmd_rbf(x, y, wx, wy, tuple(float(g) for g in gammas)))


@partial(jax.jit, static_argnums=4)
def _mmd_rbf(x, y, wx, wy, gammas: tuple[float, ...]) -> jax.Array:
    dxx, dyy, dxy = sq_euclidean_matrix(x, x), sq_euclidean_matrix(y, y), sq_euclidean_matrix(x, y)
    vals = [wx @ jnp.exp(-g * dxx) @ wx + wy @ jnp.exp(-g * dyy) @ wy - 2 * wx @ jnp.exp(-g * dxy) @ wy for g in gammas]
    return jnp.mean(jnp.stack(vals))


def sinkhorn_divergence(
    x: np.ndarray,
    y: np.ndarray,
    epsilon: float = 0.1,
    scale_cost: float | str = 1.0,
    *,
    x_weights: np.ndarray | None = None,
    y_weights: np.ndarray | None = None,
) -> float:
    """Debiased Sinkhorn divergence (ott-jax) for the squared Euclidean cost ``||x - y||^2``.

    ``S(x, y) = OT_eps(x, y) - (OT_eps(x, x) + OT_eps(y, y)) / 2``: 0 for equal samples, growing with their
    difference. The three terms use one cost scale and one ``epsilon``, so the value is a divergence.

    Parameters
    ----------
    x, y
        Samples (n, d) and (m, d); ``y`` is the reference population (e.g. observed cells).
    epsilon
        Entropic regularisation of the cost divided by ``scale_cost``.
    scale_cost
        A positive number dividing every cost, or ``"mean"``: the mean cost between two cells of ``y``
        (``2 tr Cov(y)``). Fixing the scale on the reference makes values for different ``x`` against the same
        ``y`` comparable. (ott's own ``"mean"`` would scale each of the three terms by its own mean, which
        makes the value saturate as the populations move apart.)
    x_weights, y_weights
        Optional non-negative cell weights (e.g. learned masses); ``None``: uniform.

    Returns
    -------
    The divergence, in units of the scaled cost.
    """
    x, y = _pair(x, y)
    wx, wy = _weights(x_weights, len(x), "x_weights"), _weights(y_weights, len(y), "y_weights")
    if isinstance(scale_cost, str):
        if scale_cost != "mean":
            raise ValueError(f"`scale_cost` must be a positive number or 'mean', got {scale_cost!r}.")
        scale = float(_mean_cost_within(y, wy))
    else:
        scale = float(scale_cost)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"The cost scale must be a positive number, got {scale} (scale_cost={scale_cost!r}).")
    return float(_sinkhorn_divergence(x, y, wx, wy, jnp.float32(epsilon), jnp.float32(scale)))


@jax.jit
def _mean_cost_within(y, wy) -> jax.Array:
    """Mean squared Euclidean cost between two cells of ``y`` (weights ``wy``): ``2 tr Cov(y)``."""
    centred = y - wy @ y
    return 2 * wy @ jnp.sum(centred**2, axis=1)


@jax.jit  # one compilation per shape (ott's solver loops would otherwise compile again at every call)
def _sinkhorn_divergence(x, y, wx, wy, epsilon, scale) -> jax.Array:
    value, _ = ott_sd.sinkhorn_divergence(pointcloud.PointCloud, x, y, a=wx, b=wy, epsilon=epsilon, scale_cost=scale)
    return value


def _weighted_feature_means(a: np.ndarray, w: np.ndarray | None, name: str) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return a.mean(0) if w is None else np.asarray(_weights(w, len(a), name), np.float64) @ a


def pearson_r_means(x: np.ndarray, y: np.ndarray, *, x_weights: np.ndarray | None = None) -> float:
    """Pearson correlation between the feature means of the two populations (``x``'s optionally weighted)."""
    mx, my = _weighted_feature_means(x, x_weights, "x_weights"), np.asarray(y).mean(0)
    if mx.size < 2 or np.std(mx) == 0 or np.std(my) == 0:
        return float("nan")
    return float(np.corrcoef(mx, my)[0, 1])


def r2_means(pred: np.ndarray, obs: np.ndarray, *, pred_weights: np.ndarray | None = None) -> float:
    """Coefficient of determination of the observed feature means by the predicted ones.

    ``1 - sum_g (mean_obs_g - mean_pred_g)^2 / sum_g (mean_obs_g - mean over g of mean_obs)^2``: 1 is perfect,
    0 as good as predicting every feature by the average observed feature mean, negative worse. In a
    representation whose features are centred (e.g. PCA), the spread of the observed means is small and this
    value is harsh; :func:`pearson_r_means` and the distances are then more telling.
    """
    mp, mo = _weighted_feature_means(pred, pred_weights, "pred_weights"), np.asarray(obs, np.float64).mean(0)
    ss_tot = np.sum((mo - mo.mean()) ** 2)
    return float(1.0 - np.sum((mo - mp) ** 2) / ss_tot) if ss_tot > 0 else float("nan")


def compare_populations(
    pred: np.ndarray,
    obs: np.ndarray,
    *,
    pred_weights: np.ndarray | None = None,
    max_cells: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """All population metrics at once: energy distance, Sinkhorn divergence, RBF MMD, Pearson r and R^2 of means.

    Conventions: :func:`energy_distance` in the data's units; :func:`sinkhorn_divergence` with ``epsilon=0.1``
    relative to the mean cost within ``obs`` (one scale for its three terms); :func:`mmd_rbf` with its absolute
    bandwidths; :func:`pearson_r_means` and :func:`r2_means` on feature means.

    Parameters
    ----------
    pred, obs
        Predicted and observed cells, (n, d) and (m, d).
    pred_weights
        Optional non-negative weights of the predicted cells, e.g. the learned masses of their source cells in
        an unbalanced problem: every metric then compares the weighted predicted population.
    max_cells
        Larger populations are subsampled (without replacement) to this many cells for the pairwise metrics.
    seed
        Seed of the subsampling.

    Returns
    -------
    A dict of floats.
    """
    rng = np.random.default_rng(seed)
    pred, obs = np.asarray(pred, np.float32), np.asarray(obs, np.float32)
    w = None if pred_weights is None else np.asarray(_weights(pred_weights, len(pred), "pred_weights"))
    ip = rng.choice(len(pred), max_cells, replace=False) if len(pred) > max_cells else np.arange(len(pred))
    o = obs[rng.choice(len(obs), max_cells, replace=False)] if len(obs) > max_cells else obs
    p, wp = pred[ip], None if w is None else w[ip]
    # identical observed cells have no cost scale: the divergence is then undefined, not an error
    spread = float(np.sum(np.var(o, axis=0)))
    return {
        "energy_distance": energy_distance(p, o, x_weights=wp),
        "sinkhorn_divergence": sinkhorn_divergence(p, o, epsilon=0.1, scale_cost="mean", x_weights=wp)
        if spread > 0
        else float("nan"),
        "mmd_rbf": mmd_rbf(p, o, x_weights=wp),
        "pearson_r_means": pearson_r_means(pred, obs, x_weights=w),
        "r2_means": r2_means(pred, obs, pred_weights=w),
    }


def foscttm(pred: np.ndarray, true: np.ndarray) -> float:
    """Fraction of samples closer than the true match, averaged over cells and both directions.

    ``pred[i]`` and ``true[i]`` describe the same cell (e.g. translated and measured modality of a paired
    multiome cell). 0 is a perfect matching, about 0.5 a random one.

    Parameters
    ----------
    pred, true
        Paired arrays (n, d).

    Returns
    -------
    The FOSCTTM.
    """
    pred, true = _pair(pred, true)
    if pred.shape[0] != true.shape[0] or pred.shape[0] < 2:
        raise ValueError(f"FOSCTTM needs two paired arrays of >= 2 cells, got {pred.shape} and {true.shape}.")
    return float(_foscttm(pred, true))


@jax.jit
def _foscttm(pred, true) -> jax.Array:
    d = jnp.sqrt(sq_euclidean_matrix(pred, true))
    diag = jnp.diag(d)
    n = d.shape[0]
    closer_rows = jnp.sum(d < diag[:, None], axis=1) / (n - 1)
    closer_cols = jnp.sum(d < diag[None, :], axis=0) / (n - 1)
    return jnp.mean((closer_rows + closer_cols) / 2)


def knn_transfer(
    query: np.ndarray, reference: np.ndarray, labels: np.ndarray, n_neighbors: int = 15
) -> tuple[np.ndarray, np.ndarray]:
    """Transfer labels to ``query`` cells by majority vote of their nearest ``reference`` cells.

    Returns
    -------
    The predicted labels (n_query,) and the confidence, the fraction of neighbours that agree with the vote.
    """
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
    k = int(min(n_neighbors, len(reference)))
    _, idx = NearestNeighbors(n_neighbors=k).fit(np.asarray(reference)).kneighbors(np.asarray(query))
    codes, uniques = pd.factorize(labels)
    votes = np.zeros((len(query), len(uniques)))
    np.add.at(votes, (np.repeat(np.arange(len(query)), k), codes[idx].ravel()), 1.0)
    best = votes.argmax(1)
    return uniques[best], votes[np.arange(len(query)), best] / k


def label_transfer_accuracy(
    query: np.ndarray,
    reference: np.ndarray,
    reference_labels: np.ndarray,
    true_labels: np.ndarray,
    n_neighbors: int = 15,
) -> float:
    """Accuracy of kNN label transfer from ``reference`` cells to ``query`` cells whose true labels are known."""
    predicted, _ = knn_transfer(query, reference, reference_labels, n_neighbors)
    return float(np.mean(predicted.astype(str) == np.asarray(true_labels).astype(str)))


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, *, n_projections: int = 128, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance: the root mean W2^2 of 1-D projections on random unit directions.

    A thin wrapper of :func:`ott.tools.sliced.sliced_wasserstein`, which solves each 1-D problem exactly
    between the two empirical laws (squared Euclidean cost) and averages the W2^2 over the directions.

    Parameters
    ----------
    x, y
        Samples (n, d) and (m, d).
    n_projections
        Random directions.
    seed
        Seed of the directions.

    Returns
    -------
    The sliced Wasserstein distance (in the data's units, the square root of ott's averaged squared cost).
    """
    x, y = _pair(x, y)
    # Our own directions (d, n_projections) rather than ott's default projector, so a seed gives the same
    # directions as before the switch to ott.
    theta = jax.random.normal(jax.random.key(seed), (x.shape[1], n_projections))
    theta = theta / jnp.linalg.norm(theta, axis=0, keepdims=True)
    cost, _ = ott_sliced.sliced_wasserstein(x, y, proj_fn=lambda z: z @ theta)
    return float(jnp.sqrt(cost))
