"""Accuracy of conditional laws against Gaussian ground truth (Gushchin et al., NeurIPS 2023)."""

from __future__ import annotations

import numpy as np


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + np.swapaxes(a, -1, -2)) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))[..., None, :]) @ np.swapaxes(v, -1, -2)


def bures_wasserstein2(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray) -> np.ndarray:
    """Squared 2-Wasserstein distance between Gaussians (batched over leading axes), no factor 1/2.

    ``||m1 - m2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)``.
    """
    mean1, mean2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    root1 = _sqrtm_psd(cov1)
    cross = _sqrtm_psd(root1 @ cov2 @ root1)
    trace = np.trace(cov1 + cov2 - 2 * cross, axis1=-2, axis2=-1)
    return np.sum((mean1 - mean2) ** 2, axis=-1) + trace


def cbw2_uvp(samples: np.ndarray, true_means: np.ndarray, true_covs: np.ndarray, target_variance: float) -> float:
    """Conditional Bures-Wasserstein UVP in percent.

    ``100 / (Var(Q) / 2) * mean_x BW2^2(N(m_hat(x), S_hat(x)), N(m(x), S(x)))``, where ``m_hat``, ``S_hat``
    are the mean and covariance of the samples drawn for source cell ``x`` and ``Var(Q)`` the target's total
    variance. Convention: this is **twice** the figure of Gushchin et al. (2023), who divide by ``Var(Q)``;
    halve it to compare with their tables.

    Parameters
    ----------
    samples
        Conditional draws, (n, n_samples, d).
    true_means
        True conditional means, (n, d).
    true_covs
        True conditional covariances, (d, d) shared or (n, d, d).
    target_variance
        Total variance of the target population, ``trace(Cov(Q))``.

    Returns
    -------
    The cBW2-UVP in percent (0: the conditional laws match exactly).
    """
    samples = np.asarray(samples, np.float64)
    if samples.ndim != 3 or samples.shape[1] < 2:
        raise ValueError(f"`samples` must be (n, n_samples >= 2, d), got {samples.shape}.")
    means = samples.mean(1)
    centred = samples - means[:, None]
    covs = np.einsum("nki,nkj->nij", centred, centred) / (samples.shape[1] - 1)
    true_covs = np.broadcast_to(np.asarray(true_covs, np.float64), covs.shape)
    bw = bures_wasserstein2(means, covs, np.asarray(true_means), true_covs)
    return float(100.0 * np.mean(bw) / (0.5 * target_variance))
