import anndata as ad
import numpy as np
import pytest

import nescot as ns

FAST = {"hidden_dims": (64, 64), "embed_dim": 32}


def _small_adata(**kwargs) -> ad.AnnData:
    # the shapes of the balanced run in test_balanced_problems_default_to_the_global_coupling: tests that map it
    # with the same settings reuse its compiled training, sampling and metrics
    return ns.datasets.simulate_perturbation(400, 400, 40, n_comps=5, seed=0, **kwargs)


def _snapshot(adata: ad.AnnData) -> dict:
    return {
        "obs": adata.obs.copy(),
        "var": adata.var.copy(),
        "obsm": {k: np.array(v, copy=True) for k, v in adata.obsm.items()},
        "layers": sorted(adata.layers),
        "uns": sorted(adata.uns),
        "X": np.array(adata.X, copy=True),
    }


def _assert_unchanged(adata: ad.AnnData, snap: dict) -> None:
    assert adata.obs.equals(snap["obs"]) and adata.var.equals(snap["var"])
    assert sorted(adata.obsm) == sorted(snap["obsm"])
    for k, v in snap["obsm"].items():
        np.testing.assert_array_equal(adata.obsm[k], v)
    assert sorted(adata.layers) == snap["layers"] and sorted(adata.uns) == snap["uns"]
    np.testing.assert_array_equal(adata.X, snap["X"])


@pytest.fixture(scope="module")
def mapped():
    # 400 + 400 cells, 30% held out: enough held-out cells for the population metrics to be stable
    adata = ns.datasets.simulate_perturbation(
        400, 400, 40, n_comps=5, seed=0, resistant_fraction=0.8, response_scale=1.0
    )
    model = ns.tl.map_perturbation(
        adata, "condition", "control", "drug", tau_a=0.8, n_iters=300, batch_size=128, n_samples=8,
        holdout=0.3, solver_kwargs=FAST,
    )  # fmt: skip
    return adata, model


def test_keys_shapes_and_nan_rows(mapped):
    adata, model = mapped
    src = (adata.obs["condition"] == "control").to_numpy()
    pred, samples = adata.obsm["map_perturbation"], adata.obsm["map_perturbation_samples"]
    assert pred.shape == (adata.n_obs, 5) and samples.shape == (adata.n_obs, 8, 5)
    assert np.isfinite(pred[src]).all() and np.isnan(pred[~src]).all()
    assert np.isfinite(samples[src]).all() and np.isnan(samples[~src]).all()
    np.testing.assert_allclose(samples[src].mean(1), pred[src], rtol=1e-5, atol=1e-5)
    mass = adata.obs["map_perturbation_mass"].to_numpy()
    assert np.isfinite(mass[src]).all() and (mass[src] > 0).all() and np.isnan(mass[~src]).all()
    layer = adata.layers["map_perturbation"]
    assert layer.shape == adata.shape and np.all(layer[~src] == 0)
    uns = adata.uns["map_perturbation"]
    assert uns["params"]["tau_a"] == 0.8 and uns["params"]["rep"] == "X_pca"
    assert len(uns["loss_history"]["loss"]) == 300
    assert set(uns["metrics"]["drug"]) >= {"energy_distance", "sinkhorn_divergence", "mmd_rbf", "pearson_r_means"}


def test_prediction_beats_identity_on_held_out_cells(mapped):
    adata, _ = mapped
    uns = adata.uns["map_perturbation"]
    # Measured (samples weighted by mass vs held-out drug cells): energy distance 0.109 (0.093 unweighted) vs
    # 0.956 for unmapped control cells; ~120 held-out cells per group.
    metrics, identity = uns["metrics"]["drug"], uns["metrics_identity"]["drug"]
    assert metrics["energy_distance"] < 0.3 * identity["energy_distance"]
    assert metrics["sinkhorn_divergence"] < identity["sinkhorn_divergence"]
    assert metrics["pearson_r_means"] > identity["pearson_r_means"] and metrics["r2_means"] > identity["r2_means"]


def test_decoded_expression_matches_pca_reconstruction(mapped):
    adata, _ = mapped
    src = (adata.obs["condition"] == "control").to_numpy()
    expected = adata.obsm["map_perturbation"][src] @ adata.varm["PCs"].T + np.asarray(adata.X.mean(0))
    np.testing.assert_allclose(adata.layers["map_perturbation"][src], expected, rtol=1e-4, atol=1e-4)


def test_resistant_cells_get_lower_mass(mapped):
    adata, _ = mapped
    src = (adata.obs["condition"] == "control").to_numpy()
    mass = adata.obs.loc[src, "map_perturbation_mass"]
    by_type = mass.groupby(adata.obs.loc[src, "cell_type"], observed=True).mean()
    # 80% of the type_0 cells die under the drug: their relative mass must be the lowest.
    # Measured: type_0 0.64, type_1 1.20, type_2 1.14 (mean 1 over control cells).
    assert by_type.idxmin() == "type_0"


def test_h5ad_round_trip(mapped, tmp_path):
    adata, _ = mapped
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    for key in ("map_perturbation", "map_perturbation_samples"):
        np.testing.assert_array_equal(back.obsm[key], adata.obsm[key])
    np.testing.assert_array_equal(back.obs["map_perturbation_mass"], adata.obs["map_perturbation_mass"])
    np.testing.assert_array_equal(back.layers["map_perturbation"], adata.layers["map_perturbation"])
    np.testing.assert_array_equal(
        back.uns["map_perturbation"]["loss_history"]["loss"], adata.uns["map_perturbation"]["loss_history"]["loss"]
    )
    assert back.uns["map_perturbation"]["metrics"]["drug"]["energy_distance"] == pytest.approx(
        adata.uns["map_perturbation"]["metrics"]["drug"]["energy_distance"]
    )


def test_balanced_problems_default_to_the_global_coupling(mapped):
    adata, _ = mapped  # tau_a = 0.8: unbalanced, so the mini-batch coupling and its bias check
    assert adata.uns["map_perturbation"]["params"]["coupling"] == "LinearCoupling"
    assert "coupling_diagnostic" in adata.uns["map_perturbation"]
    balanced = _small_adata()
    ns.tl.map_perturbation(balanced, "condition", "control", "drug", n_iters=5, n_samples=2, batch_size=128,
                           solver_kwargs=FAST)  # fmt: skip
    assert balanced.uns["map_perturbation"]["params"]["coupling"] == "MixturePotentialCoupling"
    assert "coupling_diagnostic" not in balanced.uns["map_perturbation"]  # a global coupling has no batch size


def test_same_seed_same_result():
    runs = []
    for _ in range(2):
        adata = _small_adata()
        ns.tl.map_perturbation(
            adata, "condition", "control", "drug", n_iters=20, n_samples=2, batch_size=128, solver_kwargs=FAST, seed=3
        )
        runs.append(adata.obsm["map_perturbation_samples"])
    np.testing.assert_array_equal(runs[0], runs[1])


def test_several_targets_one_conditioned_model():
    adata = ns.datasets.simulate_perturbation(150, 150, 30, perturbations=("drugA", "drugB"), n_comps=5, seed=1)
    model = ns.tl.map_perturbation(
        adata, "condition", "control", ["drugA", "drugB"], n_iters=300, batch_size=128, n_samples=4, solver_kwargs=FAST
    )
    assert model.condition_dim == 2
    for drug in ("drugA", "drugB"):
        assert adata.obsm[f"map_perturbation_{drug}"].shape == (adata.n_obs, 5)
        assert f"map_perturbation_{drug}" in adata.layers
    # Each condition's prediction must be closer (in mean) to its own drug than to the other one.
    src = (adata.obs["condition"] == "control").to_numpy()
    means = {d: adata.obsm["X_pca"][(adata.obs["condition"] == d).to_numpy()].mean(0) for d in ("drugA", "drugB")}
    for drug, other in (("drugA", "drugB"), ("drugB", "drugA")):
        pred = adata.obsm[f"map_perturbation_{drug}"][src].mean(0)
        assert np.linalg.norm(pred - means[drug]) < 0.5 * np.linalg.norm(pred - means[other])
    assert ns.pl.pushforward(adata, target="drugB") is not None


@pytest.mark.parametrize(
    ("kwargs", "edit", "error", "match"),
    [
        ({"groupby": "batch"}, None, KeyError, "'batch' not found in adata.obs"),
        ({"rep": "X_umap"}, None, KeyError, "'X_umap' not found"),
        ({"target": "drgu"}, None, KeyError, "Group 'drgu' not found"),
        ({"target": ["drug", "ghost"]}, None, KeyError, "Group 'ghost' not found"),
        ({"target": "control"}, None, ValueError, "also a target"),
        ({"tau_a": 0.0}, None, ValueError, "tau_a"),
        ({"tau_b": 1.5}, None, ValueError, "tau_b"),
        ({"epsilon": -1.0}, None, ValueError, "epsilon"),
        ({"cost": "manhattan"}, None, ValueError, "Unknown cost 'manhattan'"),
        ({"solver": "magic"}, None, ValueError, "Unknown solver 'magic'"),
        ({"holdout": 1.0}, None, ValueError, "holdout"),
        ({}, "nan", ValueError, "'X_pca' contains 1 NaN"),
        ({}, "single", ValueError, "Group 'drug' .* has 1 cell"),
        ({"rep": "X"}, "inf_x", ValueError, "'X' contains"),
        ({"solver": "egnot", "fit_kwargs": {"checkpoint_dir": "c"}}, None, TypeError, r"\['checkpoint_dir'\].*EgNOT"),
        ({"fit_kwargs": {"n_iters": 3}}, None, TypeError, "does not take here"),
        ({"coupling": "sinkhorn"}, None, ValueError, "Unknown coupling 'sinkhorn'"),
        ({"coupling": "global", "tau_a": 0.5}, None, ValueError, "balanced plan; unbalanced"),
        ({"solver": "egnot", "coupling": "global"}, None, ValueError, "EgNOT cannot learn from a global coupling"),
        ({"coupling": "global", "solver_kwargs": {"coupling": "egnot"}}, None, ValueError, "not in `solver_kwargs`"),
    ],
)
def test_bad_input_fails_fast_and_leaves_adata_unchanged(kwargs, edit, error, match):
    adata = _small_adata()
    if edit == "nan":
        adata.obsm["X_pca"][3, 1] = np.nan
    elif edit == "single":
        adata = adata[(adata.obs["condition"] == "control").to_numpy() | (np.arange(adata.n_obs) == 450)].copy()
    elif edit == "inf_x":
        adata.X[0, 0] = np.inf
    snap = _snapshot(adata)
    args = {"groupby": "condition", "source": "control", "target": "drug", "n_iters": 5, **kwargs}
    with pytest.raises(error, match=match):
        ns.tl.map_perturbation(adata, **args)
    _assert_unchanged(adata, snap)


def test_egnot_solver_writes_the_same_keys():
    adata = _small_adata()
    ns.tl.map_perturbation(
        adata,
        "condition",
        "control",
        "drug",
        solver="egnot",
        n_iters=50,
        n_samples=2,
        solver_kwargs={"hidden_dims": (32, 32)},
    )
    src = (adata.obs["condition"] == "control").to_numpy()
    assert adata.obsm["map_perturbation"].shape == (adata.n_obs, 5)
    assert np.isfinite(adata.obsm["map_perturbation_samples"][src]).all()
    assert "map_perturbation_mass" not in adata.obs  # EgNOT is balanced
    assert adata.uns["map_perturbation"]["params"]["solver"] == "egnot"
    with pytest.raises(ValueError, match="balanced"):
        ns.tl.map_perturbation(adata, "condition", "control", "drug", solver="egnot", tau_a=0.5)


def test_fit_kwargs_reach_genot_checkpoints_and_resume(tmp_path):
    kw = {"n_iters": 40, "batch_size": 64, "n_samples": 2, "solver_kwargs": {"hidden_dims": (16,), "chunk_size": 10}}
    first = _small_adata()
    ckpt = {"checkpoint_dir": tmp_path / "ckpt", "checkpoint_every": 20}
    ns.tl.map_perturbation(first, "condition", "control", "drug", fit_kwargs=ckpt, **kw)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["ckpt_000000020.msgpack", "ckpt_000000040.msgpack"]
    again = _small_adata()  # resumes from the final checkpoint: no step is re-run, the same model comes back
    ns.tl.map_perturbation(again, "condition", "control", "drug", fit_kwargs={**ckpt, "resume": True}, **kw)
    np.testing.assert_array_equal(first.obsm["map_perturbation"], again.obsm["map_perturbation"])
