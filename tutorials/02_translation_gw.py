# %% [markdown]
# # Translating ATAC into RNA with Gromov-Wasserstein GENOT
#
# The two modalities are measured on different features, so cells are compared only within each
# space (Gromov-Wasserstein); gene-activity scores, which exist in both, add a fused term. The cells
# are paired in this simulation, but the pairing is used only to evaluate (FOSCTTM, label transfer).

# %% [markdown]
# ## Why simulated data
# No real paired multiome data set reaches the machines that build these tutorials (they have no general
# internet access), so this tutorial runs on `simulate_multiome`, whose cells are paired by construction.
# With internet access, the NeurIPS 2021 bone-marrow multiome (Luecken et al., 2021; GEO GSE194122, about
# 2.7 GB gzipped, downloaded once into the cache) can be used instead, e.g. one donor and site:
#
# ```python
# rna, atac = ns.datasets.bone_marrow_multiome(samples="s1d1")  # .obs['batch'] values; (rna, atac) with the same cells
# # rna.obsm['X_pca'] and atac.obsm['lsi_full'] come with the file
# ns.tl.translate_modalities(atac, rna, "lsi_full", "X_pca", transfer_labels=["cell_type"], key_added="GW")
# ```

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd

import nescot as ns

QUICK = os.environ.get("NESCOT_QUICK") == "1"
N_ITERS = 150 if QUICK else 2000
BATCH = 64 if QUICK else 256
ns.settings.progress_bar = not QUICK

rna, atac = ns.datasets.simulate_multiome(600 if QUICK else 2000, seed=0)
rna, atac

# %%
results = {}
for name, fused in (("GW", None), ("fused GW", "X_shared")):
    ns.tl.translate_modalities(
        atac, rna, "X_pca", "X_pca", fused_rep=fused, n_iters=N_ITERS, batch_size=BATCH, transfer_labels=["cell_type"],
        key_added=name.replace(" ", "_"),
    )  # fmt: skip
    results[name] = dict(atac.uns[name.replace(" ", "_")]["metrics"])
pd.DataFrame(results).T  # FOSCTTM: 0 is perfect, 0.5 random

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
codes = rna.obs["cell_type"].cat.codes
axes[0].scatter(*rna.obsm["X_pca"][:, :2].T, c=codes, s=4, cmap="tab10")
axes[0].set_title("measured RNA")
for ax, key in zip(axes[1:], ("GW", "fused_GW"), strict=True):
    ax.scatter(*atac.obsm[key][:, :2].T, c=codes, s=4, cmap="tab10")
    ax.set_title(f"ATAC translated ({key})")

# %%
pd.crosstab(atac.obs["cell_type"], atac.obs["fused_GW_cell_type"])
