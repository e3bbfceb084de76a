# %% [markdown]
# # EgNOT: energy-guided entropic OT
#
# EgNOT learns a potential whose Langevin dynamics sample the entropic plan's conditionals. We map a
# Gaussian onto a Swiss roll at several entropic regularisations, then compare EgNOT with GENOT on a
# perturbation.

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd

import nescot as ns

QUICK = os.environ.get("NESCOT_QUICK") == "1"
N_ITERS = 200 if QUICK else 2000
ns.settings.progress_bar = not QUICK

x, y = ns.datasets.gaussian_source(4000, seed=0), ns.datasets.swiss_roll(4000, seed=1)
fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
for ax, eps in zip(axes, (1.0, 0.1, 0.01), strict=True):
    model = ns.solvers.EgNOT(epsilon=eps, hidden_dims=(64, 64)).fit(x, y, n_iters=N_ITERS)
    samples = model.transport(x[:6], n_samples=200, seed=0)
    ax.scatter(*y[:2000].T, s=2, c="0.8")
    for k in range(6):
        ax.scatter(*samples[k].T, s=3)
        ax.scatter(*x[k], marker="x", c="k")
    ax.set_title(f"y | x for 6 source points, eps = {eps}")

# %%
adata = ns.datasets.simulate_perturbation(600, 600, 100, response_scale=1.0, seed=0)
table = {}
for solver in ("genot", "egnot"):
    ns.tl.map_perturbation(adata, "condition", "control", "drug", solver=solver, n_iters=N_ITERS, key_added=solver)
    table[solver] = adata.uns[solver]["metrics"]["drug"]
table["unmapped control"] = adata.uns["genot"]["metrics_identity"]["drug"]
pd.DataFrame(table).T

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, solver in zip(axes, ("genot", "egnot"), strict=True):
    ns.pl.pushforward(adata, solver, ax=ax, show=False)
