"""One case of the accuracy grids: a pair with a known entropic plan, training and test cells, and the truth.

Shared by the GENOT and EgNOT accuracy entries, so both solvers see the same cells, seeds and metric.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import nescot as ns

from ._mixture_pairs import mixture_pair


@dataclass(frozen=True)
class Case:
    """Training cells ``x``, ``y``; test cells ``x_test`` with their true conditional moments and exact draws."""

    pair: Any
    epsilon_ott: float  # the pair's epsilon for cost ||x - y||^2 with scale_cost=1.0
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    target_variance: float
    truth: np.ndarray  # exact draws of the plan at x_test, (n_test, n_samples, d)

    def score(self, samples: np.ndarray) -> float:
        """cBW2-UVP (``ns.metrics.cbw2_uvp``, percent) of conditional ``samples`` at ``x_test``."""
        return ns.metrics.cbw2_uvp(samples, self.mean, self.cov, self.target_variance)

    @property
    def floor(self) -> float:
        """The score of exact draws: the estimation noise below which a solver equals the truth."""
        return self.score(self.truth)


def gaussian_case(dim: int, eps: float, cfg: dict) -> Case:
    """Gaussian pair with the closed-form entropic plan (absolute ``eps`` for cost ||x - y||^2)."""
    pair = ns.datasets.gaussian_pair(dim, eps, seed=0)
    x_test = pair.sample_source(cfg["n_test"], seed=3)
    return Case(pair, eps, pair.sample_source(cfg["n_train"], seed=0), pair.sample_target(cfg["n_train"], seed=1),
                x_test, pair.conditional_mean(x_test), pair.conditional_covariance(), pair.target_variance,
                pair.sample_plan(x_test, cfg["n_samples"], seed=4))  # fmt: skip


def mixture_case(dim: int, eps_paper: float, cfg: dict) -> Case:
    """Gushchin et al.-style mixture pair at the paper's ``eps_paper`` (cost ||x - y||^2 / 2)."""
    pair = mixture_pair(dim, eps_paper, seed=0)
    x_test = pair.sample_source(cfg["n_test"], seed=3)
    mean, cov = pair.conditional_moments(x_test)
    return Case(pair, pair.epsilon_ott, pair.sample_source(cfg["n_train"], seed=0),
                pair.sample_target(cfg["n_train"], seed=1), x_test, mean, cov, pair.target_variance(cfg["n_var"]),
                pair.sample_plan(x_test, cfg["n_samples"], seed=4))  # fmt: skip


def fitted_cases(
    cfg: dict, make_case: Callable[[int, float, dict], Case], fit: Callable[[Case], tuple[Any, float]]
) -> Iterator[tuple[int, float, Case, Any, float, float]]:
    """Build, fit and score each ``(dim, eps)`` of ``cfg["cases"]``, in the grid's order.

    Parameters
    ----------
    cfg
        The suite's grid: ``cases``, the sizes ``make_case`` reads, and ``n_samples`` draws per test cell.
    make_case
        :func:`gaussian_case` or :func:`mixture_case`.
    fit
        Trains a solver on ``case.x``, ``case.y`` and returns it with the training seconds.

    Yields
    ------
    ``(dim, eps, case, model, train_s, uvp)``, with ``uvp`` the case's score of ``cfg["n_samples"]`` conditional
    samples per test cell (transport seed 1: the same draws for every solver and entry).
    """
    for dim, eps in cfg["cases"]:
        case = make_case(dim, eps, cfg)
        model, seconds = fit(case)
        uvp = case.score(model.transport(case.x_test, n_samples=cfg["n_samples"], seed=1))
        yield dim, eps, case, model, seconds, uvp
