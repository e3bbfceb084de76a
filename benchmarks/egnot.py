"""EgNOT benchmarks: the same Gaussian and mixture pairs as GENOT, and train / transport speed.

EgNOT's ``epsilon`` is absolute for the cost ||x - y||^2 with ``scale_cost=1.0`` (ott's convention, as
GENOT's), so the pairs and seeds of ``benchmarks.genot`` are reused unchanged.
"""

from __future__ import annotations

from functools import partial

import numpy as np

import nescot as ns

from . import register
from ._cases import Case, fitted_cases, gaussian_case, mixture_case
from ._published import published_rows
from ._timing import fit_chunk_ms, median_time, wall
from .genot import ACCURACY, MIXTURES

# 2 x 128 MLP potential, 100 Langevin steps per training step (the solver's default chain length).
NET = {"smoke": {"hidden_dims": (16, 16), "n_langevin_steps": 10}, "quick": {"hidden_dims": (128, 128)}}
NET["full"] = NET["quick"]


def _fit(case: Case, cfg: dict, suite: str):
    model = ns.solvers.EgNOT(epsilon=case.epsilon_ott, scale_cost=1.0, **NET[suite])
    _, secs = wall(
        lambda: model.fit(case.x, case.y, n_iters=cfg["n_iters_egnot"], batch_size=cfg.get("batch", 256), seed=0)
    )
    return model, secs


@register("egnot.accuracy.gaussian", kind="accuracy")
def accuracy_gaussian(suite: str) -> dict:
    """cBW2-UVP of EgNOT conditionals vs the closed-form Gaussian entropic plan."""
    cfg, rows = ACCURACY[suite], []
    for dim, eps, case, _, secs, uvp in fitted_cases(cfg, gaussian_case, partial(_fit, cfg=cfg, suite=suite)):
        rows.append({"d": dim, "eps": eps, "n_iters": cfg["n_iters_egnot"], "train_s": round(secs, 1),
                     "cbw2_uvp_%": uvp, "floor_%": case.floor})  # fmt: skip
    return {"rows": rows, "notes": [f"same pairs, seeds and metric as genot.accuracy.gaussian; EgNOT {NET[suite]}"]}


@register("egnot.accuracy.mixtures", kind="accuracy")
def accuracy_mixtures(suite: str) -> dict:
    """Gushchin et al. (2023) construction: Gaussian source, Gaussian-mixture conditionals, EgNOT."""
    cfg, rows = MIXTURES[suite], []
    for dim, eps_paper, case, _, secs, uvp in fitted_cases(cfg, mixture_case, partial(_fit, cfg=cfg, suite=suite)):
        rows.append({"solver": "nescot EgNOT (measured)", "d": dim, "eps_paper": eps_paper,
                     "n_iters": cfg["n_iters_egnot"], "train_s": round(secs, 1), "cbw2_uvp_paper_%": uvp / 2,
                     "floor_paper_%": case.floor / 2})  # fmt: skip
    rows += published_rows(list(cfg["cases"]))
    return {
        "rows": rows,
        "notes": [
            "same pairs, seeds and metric as genot.accuracy.mixtures; rows marked 'published' are copied from "
            "shared/reference/eot_benchmark_cbw2uvp.md (the paper's own pairs), not re-run here"
        ],
    }


SPEED = {"smoke": (4, 2, 16), "quick": (20, 6, 256), "full": (50, 10, 1024)}  # steps per chunk, chunks, cells


@register("egnot.speed", kind="speed")
def speed(suite: str) -> dict:
    """EgNOT train ms/step and transport ms/cell at d=16, batch 256."""
    chunk, n_chunks, n_cells = SPEED[suite]
    pair = ns.datasets.gaussian_pair(16, 1.0, seed=0)
    x, y = pair.sample_source(10000, seed=0), pair.sample_target(10000, seed=1)
    model = ns.solvers.EgNOT(epsilon=1.0, scale_cost=1.0, chunk_size=chunk, **NET[suite])
    train = fit_chunk_ms(lambda cb: model.fit(x, y, n_iters=chunk * (n_chunks + 1), seed=0, callback=cb))
    cells = pair.sample_source(n_cells, seed=5)
    t = median_time(lambda: model.transport(cells, n_samples=1, seed=0), repeats=3)
    steps = model.config["n_langevin_steps"]
    return {
        "rows": [
            {
                "impl": "nescot EgNOT",
                "ms_per_step": train["median_ms"],
                "langevin_steps": steps,
                "transport_ms_per_cell": 1e3 * t["median_s"] / n_cells,
                "compile_s": train["first_chunk_s"],
            }
        ],
        "notes": [
            f"d=16, batch 256, potential {NET[suite]}, {steps} Langevin steps per training step and at transport; "
            f"ms_per_step: median over {n_chunks} chunks of {chunk} steps of EgNOT.fit after the first (compile)",
            "no coupling solve: EgNOT's inner cost is the Langevin chain (coupling share not applicable)",
        ],
    }


SAMPLING_CASES = {
    "smoke": [("mixture", 2, 1.0)],
    "quick": [("mixture", 128, 10.0), ("mixture", 16, 1.0), ("gaussian", 64, 0.1)],
}
SAMPLING_CASES["full"] = SAMPLING_CASES["quick"]


def _mode_tv(pair, x: np.ndarray, samples: np.ndarray) -> float:
    """Total variation between the samples' component frequencies (nearest component mean) and the true weights."""
    s_k, bias, gain = pair._components()
    means = bias[None] + np.einsum("kij,nj->nki", gain, x.astype(np.float64))
    comp = ((samples[:, :, None, :] - means[:, None]) ** 2).sum(-1).argmin(-1)
    freq = np.stack([(comp == k).mean(1) for k in range(means.shape[1])], 1)
    return float(0.5 * np.abs(freq - np.exp(pair._log_weights(x.astype(np.float64)))).sum(1).mean())


@register("egnot.sampling", kind="accuracy")
def sampling(suite: str) -> dict:
    """EgNOT: sampling chain length (1x, 2x, 4x the training chain); spread and mode occupancy."""
    rows = []
    for kind, dim, eps in SAMPLING_CASES[suite]:
        cfg = (MIXTURES if kind == "mixture" else ACCURACY)[suite]
        case = (mixture_case if kind == "mixture" else gaussian_case)(dim, eps, cfg)
        model, _ = _fit(case, cfg, suite)
        n_train = model.config["n_langevin_steps"]
        true_trace = float(np.mean(np.trace(np.broadcast_to(case.cov, (len(case.x_test),) + case.cov.shape[-2:]),
                                            axis1=1, axis2=2)))  # fmt: skip
        for factor in (1, 2, 4):
            s = model.transport(case.x_test, n_samples=cfg["n_samples"], seed=1, n_steps=factor * n_train)
            centred = s - s.mean(1, keepdims=True)
            trace = float(np.mean(np.einsum("nki,nki->n", centred, centred) / (s.shape[1] - 1)))
            rows.append({"pair": kind, "d": dim, "eps": eps, "sample_steps": factor * n_train,
                         "cbw2_uvp_%": case.score(s), "floor_%": case.floor, "spread_ratio": trace / true_trace,
                         "mode_tv": _mode_tv(case.pair, case.x_test, s) if kind == "mixture" else float("nan"),
                         "mode_tv_exact": _mode_tv(case.pair, case.x_test, case.truth) if kind == "mixture"
                         else float("nan")})  # fmt: skip
    return {
        "rows": rows,
        "notes": [
            f"one model per case (same training as egnot.accuracy, {NET[suite]}), sampled with chains of 1, 2 and 4 "
            "times its training length from fresh noise; eps: the paper's for mixtures, ott's for Gaussians",
            "spread_ratio: mean trace of the samples' conditional covariance over the true one; mode_tv: total "
            "variation between the samples' mixture-component frequencies (nearest component mean) and the true "
            "weights (mode_tv_exact: the same for exact draws)",
        ],
    }
