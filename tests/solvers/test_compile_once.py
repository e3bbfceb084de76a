"""Compiled training and sampling are shared by models of one configuration, without sharing their data."""

import gc
import weakref
from dataclasses import dataclass

import numpy as np
import pytest
from ott.geometry import costs, regularizers

import nescot as ns
from nescot.solvers import _compile_cache
from nescot.solvers._compile_cache import clear_compile_cache, compiled, config_key, count_compiles
from nescot.solvers._data import ArrayRows

# a configuration no other test uses, so the first model of each test compiles and later ones may not
CONFIG = {"hidden_dims": (24, 24), "embed_dim": 8, "n_frequencies": 3, "mass_hidden_dims": (8,), "chunk_size": 5}
FIT = {"n_iters": 10, "batch_size": 16}


def _data(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)).astype(np.float32), (rng.normal(size=(n, 2)) + 1).astype(np.float32)


def _fit_and_transport(x, y, solver: str = "genot", fed: bool = False, **config):
    """Fit a tiny model of ``solver`` and transport 8 cells (SparseICNN: push them through its map)."""
    if solver == "sparse_icnn":
        model = ns.solvers.SparseICNN(hidden_dims=(8, 8), n_inner=2, chunk_size=5, **config).fit(x, y, seed=0, **FIT)
        return model, model.push(x[:8])
    if solver == "egnot":
        model = ns.solvers.EgNOT(hidden_dims=(8,), n_langevin_steps=3, chunk_size=5, epsilon=0.5, **config)
    else:
        model = ns.solvers.GENOT(**{**CONFIG, **config})
    model.fit(ArrayRows(x) if fed else x, y, seed=0, **FIT)
    if solver == "genot":  # learned masses (unbalanced models) are compiled once per configuration too
        model.mass(x[:8]), model.target_mass(y[:8])
    return model, model.transport(x[:8], n_samples=2, seed=1)


CASES = {
    "genot": {},
    "genot-unbalanced": {"tau_a": 0.9},
    "genot-fed": {"fed": True},
    "genot-mixture": {"coupling": ns.solvers.MixturePotentialCoupling(n_iters=5, n_components=2, batch_size=16)},
    "egnot": {"solver": "egnot"},
    "sparse_icnn": {"solver": "sparse_icnn"},
}


@pytest.mark.parametrize("case", list(CASES))
def test_second_model_compiles_nothing(case):
    x, y = _data(0)
    first, _ = _fit_and_transport(x, y, **CASES[case])
    first_ref = weakref.ref(first)
    del first
    gc.collect()
    assert first_ref() is None  # the caches keep no model alive
    x2, y2 = _data(1)
    with count_compiles() as n:
        second, _ = _fit_and_transport(3 * x2 - 1, y2, **CASES[case])  # other values, same shapes
        # another call of the same shapes and settings
        second.push(x2[:8]) if case == "sparse_icnn" else second.transport(x2[:8], n_samples=2, seed=2)
    assert n[0] == 0


@pytest.mark.parametrize("case", ["genot", "egnot", "sparse_icnn"])
def test_shared_compilation_does_not_leak_statistics(case):
    x, y = _data(0)
    clear_compile_cache()
    _fit_and_transport(x, y, **CASES[case])
    with count_compiles() as n:  # shares the first model's compiled functions
        shared, shared_out = _fit_and_transport(10 * x + 5, y * 10 + 5, **CASES[case])
    assert n[0] == 0
    clear_compile_cache()
    with count_compiles() as n:  # alone: traced and compiled for itself
        alone, alone_out = _fit_and_transport(10 * x + 5, y * 10 + 5, **CASES[case])
    assert n[0] > 0
    np.testing.assert_array_equal(shared.loss_history["loss"], alone.loss_history["loss"])
    np.testing.assert_array_equal(shared_out, alone_out)


def test_genot_models_differing_only_in_their_coupling_share_the_sampler():
    x, y = _data(0)
    clear_compile_cache()
    ns.solvers.GENOT(**CONFIG).fit(x, y, seed=0, **FIT).transport(x[:8], n_samples=2, seed=1)
    other = ns.solvers.GENOT(epsilon=0.5, tau_a=0.9, cost=lambda a, b: ((a - b) ** 2).sum(), **CONFIG)
    other.fit(x, y, seed=0, **FIT)
    with count_compiles() as n:  # the sampler integrates the velocity field: coupling and cost play no part
        shared = other.transport(x[:8], n_samples=2, seed=1)
    assert n[0] == 0
    clear_compile_cache()
    np.testing.assert_array_equal(shared, other.transport(x[:8], n_samples=2, seed=1))  # compiled alone
    wider = ns.solvers.GENOT(**{**CONFIG, "hidden_dims": (32, 32)}).fit(x, y, seed=0, **FIT)
    with count_compiles() as n:  # another network: its own sampler
        wider.transport(x[:8], n_samples=2, seed=1)
    assert n[0] > 0


def test_undescribable_configuration_compiles_per_model():
    def cost(a, b):
        return np.float32(1.0) * ((a - b) ** 2).sum()

    model = ns.solvers.GENOT(cost=cost, **CONFIG)
    assert config_key(model) is None
    x, y = _data(0)
    model.fit(x, y, seed=0, n_iters=2, batch_size=16)
    model.transport(x[:4], seed=0)
    with count_compiles() as n:  # kept on the model itself
        model.transport(x[4:8], seed=1)
    assert n[0] == 0
    other = ns.solvers.GENOT(cost=cost, **CONFIG)
    with count_compiles() as n:  # never shared: a callable is not compared by value
        other.fit(x, y, seed=0, n_iters=2, batch_size=16)
    assert n[0] > 0
    wider = np.hstack([x, x[:, :1]]), np.hstack([y, y[:, :1]])
    model.fit(*wider, seed=0, n_iters=2, batch_size=16)  # a refit on other dimensions traces its own functions
    assert model.transport(wider[0][:4], seed=0).shape == (4, 1, x.shape[1] + 1)


@dataclass(frozen=True)
class LinearCoupling:  # a look-alike of nescot's class name, unknown to the model file format
    epsilon: float = 0.1

    def __call__(self, x, y):
        raise NotImplementedError


def test_config_key_describes_the_configuration_by_value():
    assert config_key(ns.solvers.GENOT(epsilon=0.1)) == config_key(ns.solvers.GENOT(epsilon=0.1))
    assert config_key(ns.solvers.GENOT(epsilon=0.1)) != config_key(ns.solvers.GENOT(epsilon=0.2))
    assert config_key(ns.solvers.GENOT(epsilon=0.1)) != config_key(ns.solvers.EgNOT(epsilon=0.1))
    coupling = ns.solvers.LinearCoupling(epsilon=0.3)
    assert config_key(ns.solvers.GENOT(coupling=coupling)) == config_key(
        ns.solvers.GENOT(coupling=ns.solvers.LinearCoupling(epsilon=0.3))
    )
    assert config_key(ns.solvers.GENOT(coupling=LinearCoupling())) is None
    # ott 0.6 leaves Cosine's ridge out of its flattening: such a cost is not described by value, never shared
    assert config_key(ns.solvers.GENOT(cost=costs.Cosine(ridge=0.5))) is None
    ridge = {lam: config_key(ns.solvers.GENOT(cost=costs.RegTICost(regularizers.L1(), lam=lam))) for lam in (1, 2)}
    assert None not in ridge.values() and ridge[1] != ridge[2]


class _Model:
    def __init__(self, value: int) -> None:
        self.config, self.dims = {"value": value}, (1, 1, 0)


def test_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(_compile_cache, "_MAX_ENTRIES", 3)
    clear_compile_cache()
    for i in range(5):
        assert compiled(_Model(i), "f", lambda i=i: i) == i
    assert len(_compile_cache._cache) == 3
    assert compiled(_Model(4), "f", lambda: "rebuilt") == 4  # still cached
    assert compiled(_Model(0), "f", lambda: "rebuilt") == "rebuilt"  # evicted
    clear_compile_cache()
