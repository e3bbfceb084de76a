"""Data and checks shared by several test modules."""

from __future__ import annotations

import numpy as np

import nescot as ns


def shifted_clouds(n_x: int, n_y: int, dim: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two standard Gaussian clouds (float32), the second shifted by ``shift`` in every coordinate.

    Parameters
    ----------
    n_x, n_y
        Number of source and target points.
    dim
        Dimension.
    shift
        Offset added to the target cloud.
    seed
        Seed of the one generator both clouds are drawn from (source first).

    Returns
    -------
    The source and target clouds.
    """
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_x, dim)).astype(np.float32), (rng.normal(size=(n_y, dim)) + shift).astype(np.float32)


def fit_on_gaussian_pair(model, dim: int, eps: float, n_iters: int):
    """Fit ``model`` on 4000 cells of each side of the Gaussian pair and sample 1000 targets at 64 test cells.

    Parameters
    ----------
    model
        An unfitted conditional solver (GENOT, EgNOT).
    dim, eps
        The pair of :func:`nescot.datasets.gaussian_pair` (seed 0).
    n_iters
        Training steps (batch 256, seed 0).

    Returns
    -------
    The pair, the test cells and the samples, of shape ``(64, 1000, dim)``.
    """
    pair = ns.datasets.gaussian_pair(dim, eps, seed=0)
    x, y = pair.sample_source(4000, 0), pair.sample_target(4000, 1)
    model.fit(x, y, n_iters=n_iters, batch_size=256, seed=0)
    x_test = pair.sample_source(64, 5)
    return pair, x_test, model.transport(x_test, n_samples=1000, seed=0)


def assert_matches_gaussian_plan(pair, x_test, samples, limits: tuple[float, float, float]) -> None:
    """Check conditional samples against the closed-form Gaussian entropic plan.

    Parameters
    ----------
    pair
        The Gaussian pair the samples were drawn for.
    x_test
        Source cells, shape ``(n, dim)``.
    samples
        Samples at those cells, shape ``(n, k, dim)``.
    limits
        Upper bounds on the cBW2-UVP (%), the RMSE of the conditional means, and the relative error of the
        conditional covariance's trace (as a share of the target's total variance).
    """
    max_uvp, max_rmse, max_trace_err = limits
    uvp = ns.metrics.cbw2_uvp(
        samples, pair.conditional_mean(x_test), pair.conditional_covariance(), pair.target_variance
    )
    rmse = np.sqrt(np.mean(np.sum((samples.mean(1) - pair.conditional_mean(x_test)) ** 2, -1)))
    cov_hat = np.mean([np.cov(s.T) for s in samples], axis=0)
    trace_err = abs(np.trace(cov_hat) - np.trace(pair.conditional_covariance())) / pair.target_variance
    assert uvp < max_uvp
    assert rmse < max_rmse
    assert trace_err < max_trace_err
