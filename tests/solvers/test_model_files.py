"""Model files are data only (JSON configuration, msgpack arrays) and round-trip bit for bit; checkpoints that are
incomplete or from another format version are skipped; behaviours that used to be silently wrong."""

import json
import warnings

import anndata as ad
import jax
import numpy as np
import optax
import pandas as pd
import pytest
from flax import serialization
from ott.geometry import costs, regularizers

import nescot as ns
from nescot.solvers import MODEL_FILE_VERSION, ModelFileError
from nescot.solvers._base import CouplingConvergenceWarning, warn_if_not_converged
from nescot.solvers._checkpoint import load_checkpoint, save_checkpoint, train_with_checkpoints
from nescot.solvers._model_file import config_to_json, decode_config, encode_config, write_model_file

TINY = {"hidden_dims": (8,), "embed_dim": 8, "n_frequencies": 2, "mass_hidden_dims": (8,)}


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 2)).astype(np.float32), (rng.normal(size=(32, 2)) + 1).astype(np.float32)


@pytest.fixture(scope="module")
def unbalanced(pair):
    x, y = pair
    cost = costs.RegTICost(regularizers.L1(), lam=0.5)
    return ns.solvers.GENOT(cost=cost, tau_a=0.9, epsilon=0.5, **TINY).fit(x, y, n_iters=3, batch_size=16, seed=3)


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for u, v in zip(la, lb, strict=True):
        assert np.asarray(u).dtype == np.asarray(v).dtype
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_genot_round_trip_is_bit_identical_with_an_ott_cost(unbalanced, pair, tmp_path):
    x, _ = pair
    path = unbalanced.save(tmp_path / "m.nescot")
    loaded = ns.solvers.ConditionalSolver.load(path)
    assert isinstance(loaded, ns.solvers.GENOT)
    _leaves_equal(unbalanced.params, loaded.params)
    _leaves_equal(unbalanced.loss_history, loaded.loss_history)
    np.testing.assert_array_equal(unbalanced.transport(x[:4], n_samples=2), loaded.transport(x[:4], n_samples=2))
    np.testing.assert_array_equal(unbalanced.mass(x[:4]), loaded.mass(x[:4]))
    cost = loaded.config["cost"]
    assert isinstance(cost, costs.RegTICost) and cost.lam == 0.5
    assert encode_config(loaded.config) == encode_config(unbalanced.config)
    assert loaded.config["hidden_dims"] == (8,)  # tuples stay tuples


def test_model_file_is_json_and_arrays_only(unbalanced, tmp_path):
    payload = serialization.msgpack_restore(unbalanced.save(tmp_path / "m.nescot").read_bytes())
    assert payload["format"] == "nescot-model" and payload["version"] == MODEL_FILE_VERSION
    assert payload["solver"] == "genot"
    config = json.loads(payload["config"])  # plain JSON
    assert config["cost"]["__ott__"] == "ott.geometry.costs.RegTICost"
    for leaf in jax.tree.leaves(payload["state"]):
        assert isinstance(leaf, np.ndarray) and leaf.dtype.kind in "fiu"


def test_quadratic_coupling_config_round_trips(pair, tmp_path):
    x, _ = pair
    coupling = ns.solvers.QuadraticCoupling(epsilon=0.1, cost_x="cosine", gw_kwargs={"max_iterations": 3})
    model = ns.solvers.GENOT(coupling=coupling, **TINY).fit(x, x[:, :1] * 2, n_iters=2, batch_size=8)
    loaded = ns.solvers.GENOT.load(model.save(tmp_path / "gw.nescot"))
    assert loaded.coupling == coupling
    np.testing.assert_array_equal(model.transport(x[:3]), loaded.transport(x[:3]))


def test_unstorable_config_is_refused_with_the_key_named():
    with pytest.raises(TypeError, match=r"config\['cost'\].*cannot be stored as data"):
        encode_config({"cost": lambda a, b: a - b})
    with pytest.raises(TypeError, match="reserved"):
        encode_config({"x": {"__tuple__": 1}})
    assert decode_config(encode_config({"a": (1, [2.5, None]), "b": np.float32(0.1)})) == {
        "a": (1, [2.5, None]),
        "b": float(np.float32(0.1)),
    }


@pytest.fixture(scope="module")
def sparse_icnn(pair):
    x, y = pair
    return ns.solvers.SparseICNN(hidden_dims=(4,), n_inner=1).fit(x, y, n_iters=2, batch_size=8)


@pytest.mark.parametrize("loader", ["SparseICNN", "MapSolver", "ConditionalSolver"])
def test_sparse_icnn_round_trip_keeps_trajectory(sparse_icnn, pair, tmp_path, loader):
    x, _ = pair
    model = sparse_icnn
    loaded = getattr(ns.solvers, loader).load(model.save(tmp_path / "s.nescot"))
    assert isinstance(loaded, ns.solvers.SparseICNN) and loaded.is_fitted
    np.testing.assert_array_equal(model.push(x), loaded.push(x))
    np.testing.assert_array_equal(model.transport(x, n_samples=2), loaded.transport(x, n_samples=2))
    _leaves_equal(model._train_state.f_params, loaded._train_state.f_params)
    _leaves_equal(model._train_state.g_params, loaded._train_state.g_params)
    assert loaded.lam == model.lam and len(loaded.trajectory) == len(model.trajectory) == 1
    assert loaded.trajectory[0]["phase"] == "initial"


def test_sparse_icnn_file_of_the_layout_before_the_solver_contract_loads(sparse_icnn, pair, tmp_path):
    # The layout SparseICNN.save wrote before SparseICNN was a MapSolver, written field by field: those files
    # must keep loading, and today's files keep the layout.
    x, _ = pair
    model = sparse_icnn
    state = {
        "params": {"f": model._train_state.f_params, "g": model._train_state.g_params},
        "centre": np.asarray(model.centre),
        "scale": np.float32(model.scale),
        "lam": np.float32(model.lam),
    }
    config = config_to_json(model.config, "SparseICNN")
    extra = {"trajectory": model.trajectory}
    path = write_model_file(
        tmp_path / "old.nescot", "sparse-icnn", config, state, history=model.loss_history, extra=extra
    )
    for loader in (ns.solvers.SparseICNN, ns.solvers.ConditionalSolver):
        loaded = loader.load(path)
        assert isinstance(loaded, ns.solvers.SparseICNN)
        np.testing.assert_array_equal(loaded.push(x), model.push(x))
        assert loaded.lam == model.lam
        assert json.dumps(loaded.trajectory) == json.dumps(model.trajectory)  # NaN temperatures compare unequal
    new = serialization.msgpack_restore(model.save(tmp_path / "new.nescot").read_bytes())
    old = serialization.msgpack_restore(path.read_bytes())
    assert new["solver"] == old["solver"] == "sparse-icnn" and new["config"] == old["config"]
    assert json.loads(new["extra"]) == json.loads(old["extra"])
    _leaves_equal(new["state"], old["state"])
    assert jax.tree.structure(new["state"]) == jax.tree.structure(old["state"])


def test_entropic_map_round_trip_is_identical(pair, tmp_path):
    x, y = pair
    model = ns.solvers.EntropicElasticMap(penalty="stvs", lam=0.5, gamma=2.0).fit(x, y)
    for loader in (ns.solvers.EntropicElasticMap, ns.solvers.ConditionalSolver):
        loaded = loader.load(model.save(tmp_path / "e.nescot"))
        assert isinstance(loaded, ns.solvers.EntropicElasticMap) and loaded.converged
        assert loaded.config == model.config
        np.testing.assert_array_equal(loaded.push(x), model.push(x))
    with pytest.raises(ModelFileError, match="not a SparseICNN"):
        ns.solvers.SparseICNN.load(tmp_path / "e.nescot")


# -- checkpoints ---------------------------------------------------------------------------------------------
def _carry():
    params = {"w": np.arange(6.0, dtype=np.float32).reshape(2, 3)}
    return params, optax.adam(1e-3).init(params)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: {k: v for k, v in p.items() if k != "fingerprint"},
        lambda p: {k: v for k, v in p.items() if k != "carry"},
        lambda p: {**p, "version": 99},
        lambda p: {**p, "iteration": "20"},
        lambda p: [1, 2, 3],
    ],
    ids=["no-fingerprint", "no-carry", "other-version", "iteration-text", "not-a-map"],
)
def test_incomplete_or_other_version_checkpoint_falls_back(tmp_path, damage, caplog):
    carry = _carry()
    for it in (10, 20):
        save_checkpoint(tmp_path, it, carry, {"loss": np.zeros(it, np.float32)}, {"seed": 1})
    newest = tmp_path / "ckpt_000000020.msgpack"
    newest.write_bytes(serialization.msgpack_serialize(damage(serialization.msgpack_restore(newest.read_bytes()))))
    payload = load_checkpoint(tmp_path)
    assert payload["iteration"] == 10
    assert "ckpt_000000020" in caplog.text


def test_checkpoint_of_another_model_shape_names_the_file(tmp_path):
    carry = _carry()
    save_checkpoint(tmp_path, 2, carry, {"loss": np.zeros(2, np.float32)}, {})
    other = ({"w": np.zeros((5, 5), np.float32)}, optax.adam(1e-3).init({"w": np.zeros((5, 5), np.float32)}))
    with pytest.raises(ValueError, match=r"Cannot resume from .*ckpt_000000002.*does not match"):
        train_with_checkpoints(
            lambda *a: None, other, None, n_iters=4, chunk_size=2, seed=jax.random.key(0), desc="t",
            checkpoint_dir=tmp_path, resume=True,
        )  # fmt: skip


# -- behaviours that used to be silently wrong ---------------------------------------------------------------
def test_numeric_groups_work(pair):
    x, y = pair
    adata = ad.AnnData(obsm={"X_pca": np.vstack([x, y])}, obs=pd.DataFrame({"dose": [0.0] * 32 + [1.0] * 32}))
    adata.obs_names = [f"c{i}" for i in range(64)]
    ns.tl.map_perturbation(adata, "dose", 0, 1, n_iters=2, batch_size=8, holdout=0, n_samples=2, solver_kwargs=TINY)
    assert np.isfinite(adata.obsm["map_perturbation"][:32]).all()
    assert adata.uns["map_perturbation"]["params"]["source"] == "0"


def test_never_converging_couplings_warn_with_advice(pair):
    x, y = pair
    coupling = ns.solvers.LinearCoupling(epsilon=1e-4, scale_cost=1.0, sinkhorn_kwargs={"max_iterations": 1})
    model = ns.solvers.GENOT(coupling=coupling, **TINY)
    with pytest.warns(CouplingConvergenceWarning, match="epsilon"):
        model.fit(x * 100, y * 100, n_iters=2, batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CouplingConvergenceWarning)
        warn_if_not_converged({"coupling_converged": np.ones(5, np.float32)}, "GENOT")


def test_load_of_a_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)


def test_ott_cost_whose_settings_ott_drops_is_refused_not_reset(pair):
    x, y = pair
    model = ns.solvers.GENOT(cost=costs.Cosine(ridge=0.5), **TINY).fit(x, y, n_iters=2, batch_size=8)
    with pytest.raises(TypeError, match="does not keep"):
        model.save("never_written.nescot")
