"""Real data: out-of-distribution prediction of IFN-beta-stimulated CD14 monocytes (Kang et al., 2018).

CellOT's held-out-cell-type evaluation: CD14 monocytes (control and stimulated) are removed from training;
every model learns control -> stimulated on the other cell types, then predicts from control CD14 monocytes.
(Keeping the control CD14 monocytes in the training source, with no stimulated counterpart in the target,
forces a balanced map to send them onto other cell types: measured in the notes below.) The prediction is
compared with the held-out stimulated CD14 monocytes by the energy distance in PCA space and by the R^2 of
mean expression over the top-50 differentially expressed genes of the held-out type (stimulated vs control
CD14 monocytes, t-test, on the HVGs), PCA predictions decoded through the loadings. Baselines: the unmapped
control CD14 monocytes and a global mean shift (mean of training stimulated minus mean of training control
cells, in PCA space). Normalisation, HVGs and PCA use all cells (as CellOT's preprocessing does).
"""

from __future__ import annotations

import time

import numpy as np

import nescot as ns

from . import register

HELD_OUT = "CD14 Mono"
N_DE = 50
EGNOT_EPS = 0.1  # relative to the mean cost (scale_cost="mean")
CFG = {
    "smoke": {"max_cells": 1200, "n_hvg": 300, "n_pcs": 10, "n_iters": 20, "hidden": (32, 32), "egnot_iters": 10,
              "sinkhorn_cells": 300, "sparse_genes": 100, "sparse_iters": 10},
    "quick": {"max_cells": None, "n_hvg": 2000, "n_pcs": 30, "n_iters": 1000, "hidden": (256, 256), "egnot_iters": 500,
              "sinkhorn_cells": 3000, "sparse_genes": 300, "sparse_iters": 500},
    "full": {"max_cells": None, "n_hvg": 2000, "n_pcs": 30, "n_iters": 10000, "hidden": (256, 256, 256),
             "egnot_iters": 3000, "sinkhorn_cells": 6000, "sparse_genes": 500, "sparse_iters": 2000},
}  # fmt: skip


def prepare_kang(n_hvg: int = 2000, n_pcs: int = 30, max_cells: int | None = None, seed: int = 0):
    """Kang PBMCs: log-normalised HVGs with PCA, ``obs['ood_group']`` and the held-out type's top DE genes.

    ``obs['ood_group']``: ``'control'`` / ``'stimulated'`` (the other types' cells: training source and target),
    ``'held_out_control'`` (control CD14 monocytes, predicted from) or ``'held_out'`` (stimulated CD14
    monocytes, compared with); the held-out type is never trained on.
    Returns ``(adata, de_genes)``: the top-``N_DE`` genes by t-test score, stimulated vs control CD14 monocytes.
    """
    import scanpy as sc

    adata = ns.datasets.kang_ifnb()
    if max_cells is not None and adata.n_obs > max_cells:
        rows = np.sort(np.random.default_rng(seed).choice(adata.n_obs, max_cells, replace=False))
        adata = adata[rows].copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=n_hvg)
    adata = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    del adata.layers["counts"]
    sc.pp.pca(adata, n_comps=n_pcs, random_state=seed)
    stim = (adata.obs["condition"] == "stimulated").to_numpy()
    held = stim & (adata.obs["cell_type"] == HELD_OUT).to_numpy()
    held_ctrl = ~stim & (adata.obs["cell_type"] == HELD_OUT).to_numpy()
    adata.obs["ood_group"] = np.where(
        held, "held_out", np.where(held_ctrl, "held_out_control", np.where(stim, "stimulated", "control"))
    )
    mono = adata[(adata.obs["cell_type"] == HELD_OUT).to_numpy()].copy()
    sc.tl.rank_genes_groups(mono, "condition", groups=["stimulated"], reference="control", method="t-test")
    de_genes = list(sc.get.rank_genes_groups_df(mono, "stimulated")["names"][:N_DE])
    return adata, de_genes


def decode(adata, pca: np.ndarray) -> np.ndarray:
    """Expression of PCA coordinates ``pca`` through ``sc.pp.pca``'s loadings (centred PCA)."""
    X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    return np.asarray(pca, np.float64) @ np.asarray(adata.varm["PCs"]).T + X.mean(0)


def ood_metrics(adata, de_genes: list[str], pred_pca: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Energy distance (PCA) and R^2 of top-DE-gene means (decoded) of a prediction against held-out cells."""
    held = (adata.obs["ood_group"] == "held_out").to_numpy()
    obs_pca = adata.obsm["X_pca"][held]
    rng = np.random.default_rng(seed)
    p = pred_pca[rng.choice(len(pred_pca), min(len(pred_pca), 2000), replace=False)]
    o = obs_pca[rng.choice(len(obs_pca), min(len(obs_pca), 2000), replace=False)]
    genes = adata.var_names.get_indexer(de_genes)
    X = adata.X[held][:, genes]
    obs_expr = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
    pred_expr = decode(adata, pred_pca.mean(0, keepdims=True))[:, genes]
    return {
        "energy_distance_pca": ns.metrics.energy_distance(p, o),
        "r2_top50_de": ns.metrics.r2_means(pred_expr, obs_expr),
    }


def _sinkhorn_map(x_train: np.ndarray, y_train: np.ndarray, x_new: np.ndarray, n_max: int, seed: int) -> np.ndarray:
    """Entropic (barycentric) map of ott's Sinkhorn between subsampled training cells, applied to ``x_new``."""
    import jax.numpy as jnp
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    rng = np.random.default_rng(seed)
    xs = x_train[rng.choice(len(x_train), min(n_max, len(x_train)), replace=False)]
    ys = y_train[rng.choice(len(y_train), min(n_max, len(y_train)), replace=False)]
    # epsilon 0.05 of the mean squared distance, as map_perturbation's default (scale_cost="mean")
    d2 = ((xs[:500, None, :] - ys[None, :500, :]) ** 2).sum(-1).mean()
    geom = pointcloud.PointCloud(jnp.asarray(xs), jnp.asarray(ys), epsilon=0.05 * float(d2))
    out = sinkhorn.Sinkhorn(max_iterations=2000)(linear_problem.LinearProblem(geom))
    return np.asarray(out.to_dual_potentials().transport(jnp.asarray(x_new, jnp.float32)))


def _sparse_overlap(adata, de_genes, cfg, seed: int) -> dict:
    """Sparse displacement (smoothed l0) on the most variable genes, trained on training cells; the top genes
    it moves in control CD14 monocytes against the held-out type's DE genes within the same gene subset."""
    import scanpy as sc

    order = np.argsort(-adata.var["dispersions_norm"].to_numpy())[: cfg["sparse_genes"]]
    sub = adata[:, np.sort(order)].copy()
    t0 = time.perf_counter()
    model = ns.tl.sparse_displacement(
        sub, "ood_group", "control", "stimulated", penalty="smoothed_l0", lam=1.0, n_iters=cfg["sparse_iters"],
        seed=seed, key_added="sparse",
    )  # fmt: skip
    secs = time.perf_counter() - t0
    mono = (sub.obs["ood_group"] == "held_out_control").to_numpy()
    X = sub.X[mono]
    disp = model.displacement(np.asarray(X.toarray() if hasattr(X, "toarray") else X, np.float32))
    top = set(sub.var_names[np.argsort(-np.abs(disp).mean(0))[:N_DE]])
    cd14 = sub[(sub.obs["cell_type"] == HELD_OUT).to_numpy()].copy()
    sc.tl.rank_genes_groups(cd14, "condition", groups=["stimulated"], reference="control", method="t-test")
    de_sub = set(sc.get.rank_genes_groups_df(cd14, "stimulated")["names"][:N_DE])
    k = min(N_DE, sub.n_vars)
    return {
        "method": "sparse displacement (smoothed l0)",
        "top50_overlap_with_DE": len(top & de_sub),
        "chance_overlap": round(k * k / sub.n_vars, 1),
        "n_genes": sub.n_vars,
        "mean_displaced_genes_cd14": float((np.abs(disp) > 1.0).sum(1).mean()),
        "train_s": round(secs, 1),
    }


@register("real.kang", kind="accuracy")
def kang(suite: str) -> dict:
    """Kang IFN-beta PBMCs: held-out stimulated CD14 monocytes; GENOT, EgNOT, Sinkhorn map vs baselines."""
    cfg = CFG[suite]
    seed = 0
    adata, de_genes = prepare_kang(cfg["n_hvg"], cfg["n_pcs"], cfg["max_cells"], seed)
    group = adata.obs["ood_group"].to_numpy()
    src = group == "held_out_control"
    pca = np.asarray(adata.obsm["X_pca"], np.float32)
    x_train, y_train = pca[group == "control"], pca[group == "stimulated"]
    rows = []

    def add(method, pred, secs):
        rows.append({"method": method, **ood_metrics(adata, de_genes, pred, seed), "train_s": round(secs, 1)})

    def fit(method, solver, n_iters, groupby="ood_group", **kwargs):
        t0 = time.perf_counter()
        model = ns.tl.map_perturbation(
            adata, groupby, "control", "stimulated", solver=solver, n_iters=n_iters, holdout=0.0, seed=seed,
            key_added="fit", **kwargs,
        )  # fmt: skip
        secs = time.perf_counter() - t0
        samples = model.transport(pca[src], n_samples=8, seed=seed)
        add(method, samples.reshape(-1, samples.shape[-1]), secs)
        for store in (adata.obsm, adata.layers, adata.uns):
            for key in [k for k in store if k.startswith("fit")]:
                del store[key]
        adata.obs.drop(columns=[c for c in adata.obs if c.startswith("fit")], inplace=True)
        adata.var.drop(columns=[c for c in adata.var if c.startswith("fit")], inplace=True)

    add("unmapped control", pca[src], 0.0)
    add("mean shift", pca[src] + (y_train.mean(0) - x_train.mean(0)), 0.0)
    t0 = time.perf_counter()
    add("Sinkhorn entropic map (ott)", _sinkhorn_map(x_train, y_train, pca[src], cfg["sinkhorn_cells"], seed),
        time.perf_counter() - t0)  # fmt: skip
    genot_kw = {"solver_kwargs": {"hidden_dims": cfg["hidden"]}}
    for coupling in ("minibatch", "global"):  # issue 16: the paper's coupling and the fitted population model
        fit(f"GENOT {coupling} ({cfg['n_iters']} steps)", "genot", cfg["n_iters"], coupling=coupling, **genot_kw)
    fit(f"EgNOT ({cfg['egnot_iters']} steps)", "egnot", cfg["egnot_iters"], epsilon=EGNOT_EPS, scale_cost="mean",
        solver_kwargs={"hidden_dims": cfg["hidden"], "learning_rate": 1e-4})  # fmt: skip
    if suite != "smoke":  # the same GENOT with control CD14 monocytes in the training source (no counterpart)
        adata.obs["with_cd14_control"] = np.where(src, "control", group)
        for coupling in ("minibatch", "global"):
            fit(f"GENOT {coupling}, control CD14 in training", "genot", cfg["n_iters"], groupby="with_cd14_control",
                coupling=coupling, **genot_kw)  # fmt: skip
        fit("GENOT minibatch tau 0.8, control CD14 in training", "genot", cfg["n_iters"],
            groupby="with_cd14_control", tau_a=0.8, tau_b=0.8, **genot_kw)  # fmt: skip
    sparse = _sparse_overlap(adata, de_genes, cfg, seed)
    n_held = int((group == "held_out").sum())
    return {
        "rows": rows,
        "notes": [
            f"{adata.n_obs} cells x {adata.n_vars} HVGs, {pca.shape[1]} PCs; trained on {len(x_train)} control and "
            f"{len(y_train)} stimulated cells of the other types; predicted from {int(src.sum())} control CD14 "
            f"monocytes; compared with {n_held} held-out stimulated CD14 monocytes",
            "GENOT: epsilon 0.05 relative ('mean'), velocity MLP {h}, balanced unless tau given, 'minibatch': the "
            "paper's batch couplings, 'global': MixturePotentialCoupling defaults; EgNOT: epsilon "
            "{e} relative, learning rate 1e-4, potential {h}; rows 'control CD14 in training' (not in smoke): "
            "control CD14 monocytes also in the training source (only their stimulated counterparts held "
            "out)".format(h=cfg["hidden"], e=EGNOT_EPS),
            "energy distance in PCA space (2000 cells of each side at most; GENOT/EgNOT: 8 conditional samples per "
            "cell); R^2 of the mean expression of the top-50 DE genes (t-test stimulated vs control CD14 monocytes), "
            "every prediction decoded from PCA through the loadings, observed = log-normalised expression",
            f"Sinkhorn: ott PointCloud/Sinkhorn between {cfg['sinkhorn_cells']} subsampled training control and "
            "stimulated cells, epsilon 0.05 x mean squared distance, entropic map of the dual potentials",
            "sparse displacement (smoothed l0, lam 1, threshold 1, {sparse_iters} steps) on the {n_genes} most "
            "variable genes, trained control -> stimulated training cells: {top50_overlap_with_DE} of its top-50 "
            "genes (mean |displacement| over control CD14 monocytes) are among the top-50 DE genes of the held-out "
            "type within those genes (chance {chance_overlap}); {mean_displaced_genes_cd14:.1f} genes displaced "
            "per CD14 monocyte on average; {train_s} s".format(sparse_iters=cfg["sparse_iters"], **sparse),
        ],
    }
