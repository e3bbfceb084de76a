"""Entropic OT pairs with a known plan whose conditionals are Gaussian mixtures (Gushchin et al., NeurIPS 2023).

The construction (our own code, after the paper's idea): take any source P and a potential f with
``exp(f(y) / eps)`` proportional to a Gaussian mixture ``g(y) = sum_k w_k N(y; mu_k, Sigma_k)``. The plan

    pi(x, y) = P(x) * exp((f(y) - c(x, y)) / eps) / Z(x)

is then the entropic OT plan between P and its own y-marginal Q (Q is *defined* as that marginal).
For the quadratic cost the conditional is a product of Gaussians, hence again a mixture:
    pi(y | x) propto N(y; x, s2 I) * g(y),
component k with weight propto w_k N(x; mu_k, Sigma_k + s2 I), covariance S_k = (Sigma_k^-1 + I / s2)^-1
and mean S_k (Sigma_k^-1 mu_k + x / s2).

Conventions. The paper uses c = ||x - y||^2 / 2 with regularisation eps_paper, so s2 = eps_paper. nescot
and ott use c = ||x - y||^2 with an absolute epsilon (``scale_cost=1.0``): exp(-||x - y||^2 / eps) is
N(y; x, eps / 2 I), so the same plan is ``epsilon = 2 * eps_paper`` there. The benchmark is indexed by
eps_paper so that its numbers line up with the published table.

The paper's exact mixtures are downloaded files; ours are drawn from a fixed seed (P = N(0, I_d), K = 5
components, means on a sphere of radius 2.5, covariance eigenvalues in [0.1, 0.5]), so the pairs are of the
same kind but not identical: published numbers are a reference, not a same-data comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _random_spd(rng: np.random.Generator, dim: int, low: float, high: float) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return (q * rng.uniform(low, high, size=dim)) @ q.T


@dataclass(frozen=True)
class MixturePair:
    """Source N(0, I_d) and the target defined by a Gaussian-mixture Schrödinger potential."""

    dim: int
    eps_paper: float
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d) of the potential's mixture
    covs: np.ndarray  # (K, d, d)

    @property
    def epsilon_ott(self) -> float:
        """The same plan's epsilon for ott's cost ||x - y||^2 with ``scale_cost=1.0``."""
        return 2.0 * self.eps_paper

    def _components(self):
        s2 = self.eps_paper
        eye = np.eye(self.dim)
        prec = np.linalg.inv(self.covs)
        s_k = np.linalg.inv(prec + eye / s2)  # (K, d, d) conditional covariances
        bias = np.einsum("kij,kjl,kl->ki", s_k, prec, self.means)  # S_k Sigma_k^-1 mu_k
        return s_k, bias, s_k / s2  # mean_k(x) = bias_k + (S_k / s2) x

    def _log_weights(self, x: np.ndarray) -> np.ndarray:
        """(n, K) normalised log weights of the conditional's components."""
        cov = self.covs + self.eps_paper * np.eye(self.dim)
        chol = np.linalg.cholesky(cov)
        diff = x[:, None, :] - self.means[None]  # (n, K, d)
        sol = np.linalg.solve(chol[None], diff[..., None])[..., 0]
        logdet = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(-1)
        logp = np.log(self.weights) - 0.5 * (np.sum(sol**2, -1) + logdet)
        return logp - np.logaddexp.reduce(logp, axis=1, keepdims=True)

    def conditional_moments(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean (n, d) and covariance (n, d, d) of pi(y | x) (a mixture: law of total covariance)."""
        x = np.asarray(x, np.float64)
        s_k, bias, gain = self._components()
        w = np.exp(self._log_weights(x))  # (n, K)
        m = bias[None] + np.einsum("kij,nj->nki", gain, x)  # (n, K, d)
        mean = np.einsum("nk,nki->ni", w, m)
        centred = m - mean[:, None]
        cov = np.einsum("nk,kij->nij", w, s_k) + np.einsum("nk,nki,nkj->nij", w, centred, centred)
        return mean, cov

    def sample_source(self, n: int, seed: int = 0) -> np.ndarray:
        """Draw n source cells from N(0, I_d)."""
        return np.random.default_rng(seed).normal(size=(n, self.dim)).astype(np.float32)

    def sample_plan(self, x: np.ndarray, n_samples: int, seed: int = 2) -> np.ndarray:
        """Exact conditional draws, (n, n_samples, d)."""
        rng = np.random.default_rng(seed)
        x = np.asarray(x, np.float64)
        s_k, bias, gain = self._components()
        chol = np.linalg.cholesky(s_k)
        logw = self._log_weights(x)
        gumbel = rng.gumbel(size=(len(x), n_samples, len(self.weights)))
        comp = np.argmax(logw[:, None, :] + gumbel, axis=-1)  # (n, n_samples)
        out = np.empty((len(x), n_samples, self.dim), np.float32)
        rows = np.broadcast_to(np.arange(len(x))[:, None], comp.shape)
        for k in range(len(self.weights)):  # one component at a time: memory O(n * n_samples * d)
            mask = comp == k
            if mask.any():
                z = rng.normal(size=(int(mask.sum()), self.dim))
                out[mask] = bias[k] + x[rows[mask]] @ gain[k].T + z @ chol[k].T
        return out

    def sample_target(self, n: int, seed: int = 1) -> np.ndarray:
        """Draw n target cells (x ~ P, then y ~ pi(. | x); the pairing is discarded)."""
        x = self.sample_source(n, seed=seed + 1000)
        return self.sample_plan(x, 1, seed=seed)[:, 0]

    def target_variance(self, n: int = 20000, seed: int = 7) -> float:
        """trace Cov(Q) by E[Cov(y|x)] + Cov(E[y|x]) over n source draws (exact moments, no y sampling)."""
        out_mean, out_tr = [], 0.0
        x = self.sample_source(n, seed=seed)
        for chunk in np.array_split(x, max(1, n // 2000)):
            mean, cov = self.conditional_moments(chunk)
            out_mean.append(mean)
            out_tr += np.trace(cov, axis1=1, axis2=2).sum()
        means = np.concatenate(out_mean)
        return float(out_tr / n + np.trace(np.cov(means.T)))


def mixture_pair(dim: int, eps_paper: float, *, n_components: int = 5, seed: int = 0) -> MixturePair:
    """Draw the benchmark pair for ``dim`` and ``eps_paper`` (the paper's convention, see module docstring)."""
    rng = np.random.default_rng([seed, dim])
    dirs = rng.normal(size=(n_components, dim))
    means = 2.5 * dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    covs = np.stack([_random_spd(rng, dim, 0.1, 0.5) for _ in range(n_components)])
    weights = np.full(n_components, 1.0 / n_components)
    return MixturePair(dim, float(eps_paper), weights, means, covs)
