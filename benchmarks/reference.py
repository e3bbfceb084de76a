"""Solver-free checks of the benchmark pairs themselves (fast; numpy only).

For the Gushchin-style mixture pairs: the closed-form conditional moments against Monte-Carlo moments of exact
conditional draws, how multimodal the conditionals are, and the cBW2-UVP "floor" of exact samples (the value a
perfect solver would get with the same number of test cells and samples).
"""

from __future__ import annotations

import numpy as np

import nescot as ns

from . import register
from ._mixture_pairs import mixture_pair

CASES = {
    "smoke": {"cases": [(2, 1.0)], "n_test": 8, "n_samples": 64},
    "quick": {"cases": [(d, e) for d in (2, 16) for e in (0.1, 1.0, 10.0)], "n_test": 32, "n_samples": 256},
    "full": {"cases": [(d, e) for d in (2, 16, 64, 128) for e in (0.1, 1.0, 10.0)], "n_test": 100, "n_samples": 1000},
}


@register("reference.mixtures", kind="accuracy")
def mixtures(suite: str) -> dict:
    """mixture pairs: closed-form conditional moments vs Monte Carlo, multimodality, metric floor."""
    cfg, rows = CASES[suite], []
    for dim, eps in cfg["cases"]:
        pair = mixture_pair(dim, eps, seed=0)
        x = pair.sample_source(cfg["n_test"], seed=3)
        mean, cov = pair.conditional_moments(x)
        draws = pair.sample_plan(x, cfg["n_samples"], seed=4).astype(np.float64)
        mc_mean = draws.mean(1)
        scale = np.sqrt(np.trace(cov, axis1=1, axis2=2).mean())
        var_q = pair.target_variance(4000)
        floor = ns.metrics.cbw2_uvp(draws, mean, cov, var_q)
        weights = np.exp(pair._log_weights(x))
        rows.append(
            {
                "d": dim,
                "eps_paper": eps,
                "var_Q": var_q,
                "mean_err/sd": float(np.abs(mc_mean - mean).max() / scale),
                "top_component_weight": float(weights.max(1).mean()),
                "floor_paper_%": floor / 2,
            }
        )
    return {
        "rows": rows,
        "notes": [
            f"{cfg['n_test']} source cells x {cfg['n_samples']} exact draws; mean_err/sd: worst "
            "|MC mean - closed form| over cells and coordinates, in units of sqrt(trace Cov(y|x)) "
            "(expected ~ 3 / sqrt(n_samples))",
            "top_component_weight: average weight of the dominant mixture component of pi(.|x) (1 = unimodal)",
        ],
    }
