# %% [markdown]
# # Development over time: myoblast differentiation (HSMM)
#
# Trapnell et al. (2014) switched primary human skeletal muscle myoblasts (HSMM) from growth to
# differentiation medium and sequenced single cells at 0, 24, 48 and 72 h (Fluidigm C1, full-length
# RNA-seq, 271 cells). Cells are destroyed when measured, so nobody observes how one cell changes: each time
# point is a separate snapshot. Optimal transport links successive snapshots, assuming cells move as little as
# possible in expression space, and its unbalanced version lets some cells carry more mass than others: a
# cell whose kind becomes more frequent at the next time point (proliferating, or the destination of many
# cells) gets a larger mass, a cell whose kind disappears gets a smaller one.
#
# We fit GENOT for 0 h -> 24 h, 24 h -> 48 h and 48 h -> 72 h, check each prediction against the observed
# next time point, and read the learned mass as a proxy for growth and loss along Monocle's pseudotime.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scanpy as sc

import nescot as ns

QUICK = os.environ.get("NESCOT_QUICK") == "1"
N_ITERS = 500 if QUICK else 3000
ns.settings.progress_bar = not QUICK

adata = ns.datasets.hsmm_myoblasts()  # FPKM, not counts
adata.obs["time"].value_counts().sort_index()

# %% [markdown]
# ## Preprocessing
# The data are FPKM values, so we take `log1p` directly (no count normalisation), keep genes detected in at
# least 10 cells, select 1,000 highly variable genes and compute 10 principal components (few cells: a small
# space).

# %%
sc.pp.log1p(adata)
sc.pp.filter_genes(adata, min_cells=10)
sc.pp.highly_variable_genes(adata, n_top_genes=1000)
adata = adata[:, adata.var["highly_variable"]].copy()
sc.pp.pca(adata, n_comps=10, random_state=0)
sc.pl.pca(adata, color=["time", "pseudotime"])

# %% [markdown]
# ## One model per pair of successive time points
# `tau_a = 0.8` relaxes the source marginal: the model learns each source cell's relative mass (mean 1). With
# about 70 cells per time point there are too few cells to hold some out, so `holdout=0` and the predictions
# are checked against the same next-time-point cells the model was trained on (an in-sample check).

# %%
times = list(adata.obs["time"].cat.categories)
steps = list(zip(times[:-1], times[1:], strict=True))
for t0, t1 in steps:
    ns.tl.map_perturbation(
        adata, "time", t0, t1, tau_a=0.8, holdout=0.0, n_iters=N_ITERS, batch_size=64,
        solver_kwargs={"hidden_dims": (128, 128)}, key_added=f"{t0}_{t1}",
    )  # fmt: skip

# %% [markdown]
# ## Do the predictions reach the next time point?
# Energy distance (in PCA space; 0 for identical populations) between the next time point's observed cells
# and (a) the earlier cells left where they are, (b) GENOT's prediction: 16 samples per earlier cell, weighted
# by the cell's learned mass. The model was trained on these very cells, so its scores are optimistic: a
# flexible model can learn to reproduce the next time point's cells; read them as a check that training
# worked, not as a test of prediction.

# %%
pca = adata.obsm["X_pca"]
rows = {}
for t0, t1 in steps:
    key = f"{t0}_{t1}"
    src = (adata.obs["time"] == t0).to_numpy()
    obs_next = pca[(adata.obs["time"] == t1).to_numpy()]
    samples = adata.obsm[f"{key}_samples"][src]
    weights = np.repeat(adata.obs[f"{key}_mass"].to_numpy()[src], samples.shape[1])
    rows[f"{t0} -> {t1}"] = {
        "unmapped": ns.metrics.energy_distance(pca[src], obs_next),
        "GENOT (mass-weighted)": ns.metrics.energy_distance(
            samples.reshape(-1, samples.shape[-1]), obs_next, x_weights=weights
        ),
    }
pd.DataFrame(rows).T

# %% [markdown]
# Each panel shows, on the first two principal components, the cells of the earlier time point (blue), those
# of the next one (orange) and GENOT's prediction (green, one sample per earlier cell, drawn in proportion to
# the learned mass).

# %%
fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
for ax, (t0, t1) in zip(axes, steps, strict=True):
    ns.pl.pushforward(adata, f"{t0}_{t1}", ax=ax, show=False)
fig.tight_layout()

# %% [markdown]
# ## Learned mass along pseudotime
# Monocle's pseudotime orders cells along differentiation independently of the collection time. Each point is
# a cell at the start of a transition, placed by its pseudotime and its learned relative mass (1 = average).
# Cells with mass above 1 have more counterparts at the next time point than an average cell (their state
# expands or attracts cells); cells below 1 fewer (their state shrinks, e.g. cells that stop proliferating
# or leave the population). With ~70 cells per time point and short training, read this as a trend, not as a
# per-cell measurement.

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for t0, t1 in steps:
    src = (adata.obs["time"] == t0).to_numpy()
    ax.scatter(adata.obs["pseudotime"][src], adata.obs[f"{t0}_{t1}_mass"][src], s=14, label=f"{t0} -> {t1}")
ax.axhline(1.0, color="0.5", lw=1)
ax.set_xlabel("Monocle pseudotime")
ax.set_ylabel("learned relative mass")
ax.legend(frameon=False)
plt.show()

# %% [markdown]
# Spearman correlation between pseudotime and learned mass within each transition:

# %%
pd.Series(
    {
        f"{t0} -> {t1}": adata.obs.loc[adata.obs["time"] == t0, ["pseudotime", f"{t0}_{t1}_mass"]]
        .corr(method="spearman")
        .iloc[0, 1]
        for t0, t1 in steps
    },
    name="Spearman(pseudotime, mass)",
)
