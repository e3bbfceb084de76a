"""Mass-aware results of map_perturbation: a source component with no counterpart among the targets."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import nescot as ns

FAST = {"hidden_dims": (64, 64), "embed_dim": 32}


@pytest.fixture(scope="module")
def orphan():
    # Source: three clusters; target: only the first two, shifted. The third has no counterpart.
    rng = np.random.default_rng(1)
    n = 300
    centres = [[0, 0], [0, 4], [6, 2]]
    src = np.concatenate([rng.normal(c, 0.5, (n // 3, 2)) for c in centres])
    tgt = np.concatenate([rng.normal([1, 0], 0.5, (n // 2, 2)), rng.normal([1, 4], 0.5, (n // 2, 2))])
    obs = pd.DataFrame(
        {
            "condition": pd.Categorical(["ctrl"] * n + ["stim"] * n),
            "component": pd.Categorical([f"c{i // (n // 3)}" for i in range(n)] + ["target"] * n),
        },
        index=[f"cell_{i}" for i in range(2 * n)],
    )
    adata = ad.AnnData(np.concatenate([src, tgt]).astype(np.float32), obs=obs)
    ns.tl.map_perturbation(
        adata, "condition", "ctrl", "stim", rep="X", tau_a=0.5, epsilon=0.05, n_iters=500, batch_size=128,
        n_samples=8, holdout=0.3, solver_kwargs=FAST,
    )  # fmt: skip
    return adata


def test_orphan_component_gets_the_lowest_mass(orphan):
    src = (orphan.obs["condition"] == "ctrl").to_numpy()
    mass = orphan.obs.loc[src, "map_perturbation_mass"]
    by_component = mass.groupby(orphan.obs.loc[src, "component"], observed=True).mean()
    # Measured: c0 1.53, c1 1.46, c2 0.00. Mass is relative: mean 1 over the source cells.
    assert by_component.idxmin() == "c2" and by_component["c2"] < 0.2
    assert mass.mean() == pytest.approx(1.0, rel=1e-5)


def test_weighted_prediction_is_closer_to_the_target(orphan):
    uns = orphan.uns["map_perturbation"]
    weighted, unweighted = uns["metrics"]["stim"], uns["metrics_unweighted"]["stim"]
    # Measured on held-out cells: energy distance 0.036 (mass-weighted) vs 0.177 (unweighted), 0.62 unmapped.
    assert weighted["energy_distance"] < 0.5 * unweighted["energy_distance"]
    assert weighted["sinkhorn_divergence"] < unweighted["sinkhorn_divergence"]
    assert unweighted["energy_distance"] < uns["metrics_identity"]["stim"]["energy_distance"]


def test_coupling_diagnostic_is_recorded(orphan):
    # 2-D clusters, 210 training cells against batches of 128 (reference 210): little mini-batch bias expected.
    diagnostic = orphan.uns["map_perturbation"]["coupling_diagnostic"]
    assert diagnostic["batch_size"] == 128 and diagnostic["reference_batch_size"] > 128
    assert 0 <= diagnostic["batch_sensitivity"] < 0.1


def test_pushforward_plots_mass_weighted_samples(orphan):
    target = orphan.X[(orphan.obs["condition"] == "stim").to_numpy()]
    ax = ns.pl.pushforward(orphan, show=False)
    weighted = np.asarray(ax.collections[2].get_offsets())
    assert "one sample per cell, mass-weighted" in ax.get_legend().get_texts()[2].get_text()
    ax = ns.pl.pushforward(orphan, weighted=False, show=False)
    unweighted = np.asarray(ax.collections[2].get_offsets())
    assert len(weighted) == len(unweighted) == 300
    # The orphan cells' conditionals land on the targets too, over-filling them; drawing cells in proportion to
    # their mass restores the target's proportions. Measured: 0.02 vs 0.13.
    dist = ns.metrics.energy_distance
    assert dist(weighted, target) < 0.5 * dist(unweighted, target)
