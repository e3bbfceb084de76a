"""Bad inputs to every public entry point: each row is one fault, the exception it must raise, a fragment of the
message naming the culprit, and the guarantees that the AnnData is unchanged and nothing was trained.

No training runs in this module: ``run_training`` is replaced by a function that fails the test, so every
row must raise before any training starts.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from flax import serialization

import nescot as ns
from nescot.solvers import ModelFileError

TINY = {"hidden_dims": (8,), "embed_dim": 8, "n_frequencies": 2, "mass_hidden_dims": (8,)}
FAST = {"n_iters": 2, "batch_size": 8, "solver_kwargs": TINY}


def _adata(n: int = 40, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    groups = np.array(["ctrl", "A", "B", "ctrl"] * (n // 4))
    x = rng.normal(size=(n, 5)).astype(np.float32)
    adata = ad.AnnData(
        X=sp.csr_matrix(np.abs(x)), obs=pd.DataFrame({"group": groups}, index=[f"c{i}" for i in range(n)])
    )
    adata.obs["dose"] = np.where(groups == "ctrl", 0, 1)
    adata.obsm["X_pca"] = x[:, :3]
    adata.obsm["X_text"] = np.array([["a", "b"]] * n, dtype=object)
    adata.layers["counts"] = np.abs(x)
    return adata


def _pair(n: int = 24) -> tuple[ad.AnnData, ad.AnnData]:
    rng = np.random.default_rng(1)
    names = [f"c{i}" for i in range(n)]
    src = ad.AnnData(obs=pd.DataFrame({"t": ["u", "v"] * (n // 2)}, index=names))
    tgt = ad.AnnData(obs=pd.DataFrame({"t": ["u", "v"] * (n // 2)}, index=names))
    src.obsm["X_a"] = rng.normal(size=(n, 3)).astype(np.float32)
    tgt.obsm["X_b"] = rng.normal(size=(n, 4)).astype(np.float32)
    return src, tgt


def _snapshot(adata) -> dict:
    return {
        "obs": adata.obs.copy(),
        "obsm": {k: np.array(v, copy=True) for k, v in adata.obsm.items()},
        "layers": sorted(adata.layers),
        "var": list(adata.var.columns),
        "uns": sorted(adata.uns),
    }


def _assert_unchanged(before: dict, adata) -> None:
    after = _snapshot(adata)
    pd.testing.assert_frame_equal(before["obs"], after["obs"])
    assert sorted(before["obsm"]) == sorted(after["obsm"])
    for k, v in before["obsm"].items():
        assert v.dtype == after["obsm"][k].dtype and np.array_equal(v, after["obsm"][k]), k
    assert before["layers"] == after["layers"] and before["var"] == after["var"] and before["uns"] == after["uns"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny trained GENOT and SparseICNN saved to disk, and damaged or crafted variants of the GENOT file."""
    d = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 2)), rng.normal(size=(16, 2)) + 1
    genot = ns.solvers.GENOT(**TINY).fit(x, y, n_iters=2, batch_size=8)
    sparse = ns.solvers.SparseICNN(hidden_dims=(4,), n_inner=1).fit(x, y, n_iters=2, batch_size=8)
    good = genot.save(d / "genot.nescot")
    raw = good.read_bytes()
    payload = serialization.msgpack_restore(raw)
    out = {"good": good, "sparse": sparse.save(d / "sparse.nescot"), "marker": d / "pwned"}

    def write(name, data):
        (d / name).write_bytes(data if isinstance(data, bytes) else serialization.msgpack_serialize(data))
        out[name] = d / name

    write("garbage", b"\x93not a model at all" * 3)
    write("truncated", raw[: len(raw) // 2])
    write("empty", b"")
    write("future", {**payload, "version": 99})
    write("no_state", {k: v for k, v in payload.items() if k != "state"})
    write("no_config", {k: v for k, v in payload.items() if k != "config"})
    write("bad_config_json", {**payload, "config": "{not json"})
    write("other_solver", {**payload, "solver": "nope"})
    write("bad_param_shape", {**payload, "state": {**payload["state"], "params": {"vf": {"x": np.zeros(3)}}}})
    write("text_array", {**payload, "config": json.dumps({"hidden_dims": {"__array__": ["a"], "dtype": "|O"}})})
    write("unknown_class", {**payload, "config": json.dumps({"cost": {"__ott__": "os.system", "children": []}})})

    class Exploit:  # a version-1 file: its pickled config would run code if unpickled
        def __reduce__(self):
            return (Path.touch, (out["marker"],))

    v1 = {"format": "nescot-solver", "version": 1, "solver": "genot", "state": payload["state"], "loss_history": {},
          "config": np.frombuffer(pickle.dumps(Exploit()), dtype=np.uint8)}  # fmt: skip
    write("pickle_v1", v1)
    return out


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if any training starts."""

    def forbidden(*args, **kwargs):
        raise AssertionError("training started although the input is invalid")

    for module in ("_checkpoint", "_egnot", "_sparse_icnn"):
        monkeypatch.setattr(f"nescot.solvers.{module}.run_training", forbidden)


def _mp(**kw):
    return lambda a: ns.tl.map_perturbation(a, **{"groupby": "group", "source": "ctrl", "target": "A", **FAST, **kw})


def _sd(**kw):
    kw = {"groupby": "group", "source": "ctrl", "target": "A", "n_iters": 2, "batch_size": 8, **kw}
    return lambda a: ns.tl.sparse_displacement(a, **kw)


def _tm(**kw):
    def call(_):
        src, tgt = _pair()
        return ns.tl.translate_modalities(src, tgt, "X_a", "X_b", **{**FAST, **kw})

    return call


def _tm_on(prepare, **kw):
    def call(_):
        src, tgt = _pair()
        src, tgt = prepare(src, tgt)
        before = _snapshot(src)
        try:
            ns.tl.translate_modalities(src, tgt, "X_a", "X_b", **{**FAST, **kw})
        finally:
            _assert_unchanged(before, src)

    return call


def _dup(src, tgt):
    src.obs_names = ["same"] * src.n_obs
    return src, tgt


def _gen(**kw):
    rng = np.random.default_rng(0)
    x = kw.pop("x", rng.normal(size=(16, 2)))
    y = kw.pop("y", rng.normal(size=(16, 2)) + 1)
    fit = {"n_iters": 2, "batch_size": 8, **kw.pop("fit", {})}
    return lambda _: ns.solvers.GENOT(**{**TINY, **kw}).fit(x, y, **fit)


def _on_disk(**kw):
    """Run map_perturbation on an AnnData read back with ``X`` and layers left on disk (``read_on_disk``)."""

    def call(a, tmp):
        a = a.copy()
        del a.obsm["X_text"]
        a.write_h5ad(tmp / "a.h5ad")
        lazy = ns.io.read_on_disk(tmp / "a.h5ad")
        before = _snapshot(lazy)
        try:
            _mp(**kw)(lazy)
        finally:
            _assert_unchanged(before, lazy)

    return call


def _write_text(a, tmp):
    path = tmp / "notes.h5ad"
    path.write_text("just text")
    return ns.io.read_on_disk(path)


# (id, call(adata) -- or call(adata, tmp_path) for io rows --, exception, fragment of the message)
ROWS = [
    # -- tl.map_perturbation
    ("mp-key-is-rep", _mp(key_added="X_pca"), ValueError, "overwrite adata.obsm['X_pca']"),
    ("mp-groupby-list", _mp(groupby=["group"]), TypeError, "`groupby`"),
    ("mp-groupby-missing", _mp(groupby="nope"), KeyError, "'nope'"),
    ("mp-target-missing", _mp(target="Z"), KeyError, "'Z'"),
    ("mp-target-is-source", _mp(target=["A", "ctrl"]), ValueError, "also a target"),
    ("mp-obsm-strings", _mp(rep="X_text"), TypeError, "'X_text' must hold numbers"),
    ("mp-seed-none", _mp(seed=None), TypeError, "`seed`"),
    ("mp-epsilon-str", _mp(epsilon="0.1"), TypeError, "`epsilon`"),
    ("mp-epsilon-zero", _mp(epsilon=0.0), ValueError, "`epsilon`"),
    ("mp-scale-cost-typo", _mp(scale_cost="maen"), ValueError, "`scale_cost`"),
    ("mp-scale-cost-zero", _mp(scale_cost=0), ValueError, "`scale_cost`"),
    ("mp-tau-str", _mp(tau_a="1"), TypeError, "`tau_a`"),
    ("mp-tau-zero", _mp(tau_a=0.0), ValueError, "`tau_a`"),
    ("mp-n-samples-zero", _mp(n_samples=0), ValueError, "`n_samples`"),
    ("mp-holdout-one", _mp(holdout=1.0), ValueError, "`holdout`"),
    ("mp-batch-one", _mp(batch_size=1), ValueError, "`batch_size`"),
    ("mp-iters-zero", _mp(n_iters=0), ValueError, "`n_iters`"),
    ("mp-unknown-solver", _mp(solver="nope"), ValueError, "'nope'"),
    ("mp-unknown-cost", _mp(cost="manhattan"), ValueError, "'manhattan'"),
    ("mp-resume-no-dir", _mp(fit_kwargs={"resume": True}), ValueError, "checkpoint_dir"),
    ("mp-fit-kwargs-unknown", _mp(fit_kwargs={"nope": 1}), TypeError, "'nope'"),
    ("mp-huge-values", lambda a: _mp(rep="X_huge")(_with_huge(a)), ValueError, "overflow"),
    ("mp-nan", lambda a: _mp(rep="X_nan")(_with_nan(a)), ValueError, "'X_nan'"),
    ("mp-egnot-tau", _mp(solver="egnot", tau_a=0.5, solver_kwargs={}), ValueError, "tau_a"),
    ("mp-sparse-x-iters", _mp(rep="X", n_iters=0), ValueError, "`n_iters`"),
    ("mp-backed-seed-none", _on_disk(rep="X", seed=None), TypeError, "`seed`"),
    ("mp-backed-key-is-rep", _on_disk(key_added="X_pca"), ValueError, "overwrite adata.obsm['X_pca']"),
    ("mp-backed-layer-groupby", _on_disk(rep="counts", groupby=("group",)), TypeError, "`groupby`"),
    # -- tl.sparse_displacement
    ("sd-batch-zero", _sd(batch_size=0), ValueError, "`batch_size`"),
    ("sd-key-is-layer", _sd(layer="counts", key_added="counts"), ValueError, "overwrite adata.layers['counts']"),
    ("sd-seed-none", _sd(seed=None), TypeError, "`seed`"),
    ("sd-groupby-list", _sd(groupby=["group"]), TypeError, "`groupby`"),
    ("sd-layer-missing", _sd(layer="nope"), KeyError, "'nope'"),
    ("sd-penalty", _sd(penalty="l2"), ValueError, "'l2'"),
    ("sd-threshold", _sd(threshold=0), ValueError, "`threshold`"),
    ("sd-solver", _sd(solver="nope"), ValueError, "'nope'"),
    # -- tl.translate_modalities (the source AnnData is checked inside the call)
    ("tm-key-is-rep", _tm_on(lambda s, t: (s, t), key_added="X_a"), ValueError, "overwrite adata.obsm['X_a']"),
    ("tm-n-samples-zero", _tm_on(lambda s, t: (s, t), n_samples=0), ValueError, "`n_samples`"),
    ("tm-duplicate-names", _tm_on(_dup), ValueError, "duplicate obs_names"),
    ("tm-label-missing", _tm_on(lambda s, t: (s, t), transfer_labels="nope"), KeyError, "'nope'"),
    ("tm-seed-none", _tm(seed=None), TypeError, "`seed`"),
    ("tm-epsilon-str", _tm(epsilon="0.1"), TypeError, "`epsilon`"),
    ("tm-alpha", _tm(alpha=0.5), ValueError, "fused_rep"),
    ("tm-cost", _tm(intra_cost="nope"), ValueError, "'nope'"),
    ("tm-batch-zero", _tm(batch_size=0), ValueError, "`batch_size`"),
    (
        "tm-mudata-mod",
        lambda a: ns.tl.translate_modalities(
            md.MuData({"x": _pair()[0]}), src_rep="X_a", tgt_rep="X_b", src_mod="x", tgt_mod="y"
        ),
        KeyError,
        "'y'",
    ),  # fmt: skip
    ("tm-wrong-type", lambda a: ns.tl.translate_modalities(np.zeros(3), None, "X_a", "X_b"), TypeError, "ndarray"),
    # -- solvers
    ("genot-seed-none", _gen(fit={"seed": None}), TypeError, "`seed`"),
    ("genot-resume-no-dir", _gen(fit={"resume": True}), ValueError, "checkpoint_dir"),
    ("genot-object-strings", _gen(x=np.array([["a", "b"]] * 16, dtype=object)), TypeError, "source[0]"),
    ("genot-huge", _gen(x=np.full((16, 2), 1e20) * np.arange(16)[:, None]), ValueError, "overflow"),
    ("genot-epsilon-str", _gen(epsilon="0.1"), TypeError, "`epsilon`"),
    ("genot-scale-cost", _gen(scale_cost="meen"), ValueError, "`scale_cost`"),
    (
        "genot-condition-missing",
        lambda a: ns.solvers.GENOT(**TINY).fit([np.ones((4, 2))] * 2, [np.ones((4, 2))] * 2),
        ValueError,
        "condition",
    ),  # fmt: skip
    (
        "genot-condition-rows",
        lambda a: ns.solvers.GENOT(**TINY).fit(np.ones((4, 2)), np.ones((4, 2)), condition=np.ones((3, 1))),
        ValueError,
        "`condition`",
    ),  # fmt: skip
    (
        "egnot-seed-none",
        lambda a: ns.solvers.EgNOT().fit(np.ones((4, 2)), np.ones((4, 2)), seed=None),
        TypeError,
        "`seed`",
    ),  # fmt: skip
    (
        "icnn-batch-zero",
        lambda a: ns.solvers.SparseICNN().fit(np.ones((4, 2)), np.ones((4, 2)), batch_size=0),
        ValueError,
        "`batch_size`",
    ),  # fmt: skip
    (
        "icnn-condition",
        lambda a: ns.solvers.SparseICNN().fit(np.ones((4, 2)), np.ones((4, 2)), condition=np.ones((1, 1))),
        ValueError,
        "`condition`",
    ),  # fmt: skip
    (
        "entropic-condition",
        lambda a: ns.solvers.EntropicElasticMap().fit(np.ones((4, 2)), np.ones((4, 2)), condition=np.ones((1, 1))),
        ValueError,
        "`condition`",
    ),  # fmt: skip
    (
        "icnn-strings",
        lambda a: ns.solvers.SparseICNN().fit(np.array([["a"]] * 4, object), np.ones((4, 1))),
        TypeError,
        "source",
    ),  # fmt: skip
    # -- io
    ("io-read-on-disk-text", _write_text, ValueError, "neither an HDF5"),
    ("io-read-on-disk-missing", lambda a, tmp: ns.io.read_on_disk(tmp / "missing.h5ad"), FileNotFoundError, "missing"),
    # -- datasets
    ("datasets-unknown", lambda a: ns.datasets.fetch("no-such-dataset"), (KeyError, ValueError), "no-such-dataset"),
]


def _with_huge(a):
    a.obsm["X_huge"] = a.obsm["X_pca"] * 1e20
    return a


def _with_nan(a):
    a.obsm["X_nan"] = a.obsm["X_pca"].copy()
    a.obsm["X_nan"][0, 0] = np.nan
    return a


@pytest.mark.parametrize(("call", "exc", "fragment"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_raises_before_training_and_leaves_adata_unchanged(call, exc, fragment, no_training, tmp_path):
    adata = _adata()
    prepared = adata
    before = _snapshot(prepared)
    with pytest.raises(exc) as info:
        call(prepared, tmp_path) if call.__code__.co_argcount == 2 else call(prepared)
    assert fragment in str(info.value), str(info.value)
    # rows adding an input representation add it before the call; nothing else may change
    for extra in ("X_huge", "X_nan"):
        before["obsm"].pop(extra, None)
        prepared.obsm.pop(extra, None)
    _assert_unchanged(before, prepared)


# -- model files ---------------------------------------------------------------------------------------------
FILE_ROWS = [
    ("garbage", ModelFileError, "not a readable nescot model file"),
    ("truncated", ModelFileError, "not a readable nescot model file"),
    ("empty", ModelFileError, "not a readable nescot model file"),
    ("future", ModelFileError, "version 99"),
    ("no_state", ModelFileError, "'state' is missing"),
    ("no_config", ModelFileError, "'config' is missing"),
    ("bad_config_json", ModelFileError, "configuration is not valid"),
    ("other_solver", ModelFileError, "'nope'"),
    ("bad_param_shape", ModelFileError, "state"),
    ("text_array", ModelFileError, "non-numeric dtype"),
    ("unknown_class", ModelFileError, "'os.system'"),
    ("pickle_v1", ModelFileError, "version 1"),
]


@pytest.mark.parametrize(("name", "exc", "fragment"), FILE_ROWS, ids=[r[0] for r in FILE_ROWS])
@pytest.mark.parametrize("loader", ["GENOT", "ConditionalSolver"])
def test_bad_model_file_is_refused_naming_the_file(files, name, exc, fragment, loader):
    with pytest.raises(exc) as info:
        getattr(ns.solvers, loader).load(files[name])
    assert fragment in str(info.value) and str(files[name]) in str(info.value), str(info.value)
    assert not files["marker"].exists()  # nothing from the file was executed


def test_model_file_of_another_type_is_refused(files):
    with pytest.raises(ModelFileError, match="not a SparseICNN"):
        ns.solvers.SparseICNN.load(files["good"])
    with pytest.raises(ModelFileError, match="'sparse-icnn'"):
        ns.solvers.GENOT.load(files["sparse"])
    with pytest.raises(ModelFileError, match="not a EgNOT"):
        ns.solvers.EgNOT.load(files["good"])
    with pytest.raises(ModelFileError, match="version 1"):
        ns.solvers.SparseICNN.load(files["pickle_v1"])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ns.solvers.GENOT.load(files["good"].parent / "nowhere.nescot")
    assert not files["marker"].exists()


def test_base_class_load_returns_the_stored_solver(files):
    model = ns.solvers.ConditionalSolver.load(files["good"])
    assert isinstance(model, ns.solvers.GENOT) and model.is_fitted
    sparse = ns.solvers.ConditionalSolver.load(files["sparse"])
    assert isinstance(sparse, ns.solvers.SparseICNN) and sparse.is_fitted
