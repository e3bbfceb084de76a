"""SubsamplePlanCoupling: draws follow the solved plan, tasks stay apart, GW across dimensions recovers a pairing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ott.geometry import pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn

import nescot as ns
from nescot.metrics import foscttm
from nescot.solvers import GENOT, LinearCoupling, QuadraticCoupling, SubsamplePlanCoupling
from nescot.solvers._base import CouplingConvergenceWarning
from nescot.solvers._global_couplings import GlobalCoupling
from nescot.solvers._tasks import Batch

FAST = {"hidden_dims": (64, 64), "embed_dim": 32}


def _draw_indices(coupling, state, x, y, n_rounds=16, batch=2048, k=2, task=0):
    """Draw ``n_rounds`` batches and map every drawn (source, target) pair back to row indices of x and y."""
    empty = Batch(jnp.zeros((batch, x.shape[1])), jnp.zeros((batch, y.shape[1])), jnp.zeros((batch, 1)), task)
    draw = jax.jit(lambda key: coupling.draw(state, key, empty, k))
    pairs = []
    for r in range(n_rounds):
        xs, ys = map(np.asarray, draw(jax.random.key(r)))
        i = np.argmax(np.all(xs[:, None] == x[None], -1), 1)  # exact: the subsample holds copies of the rows
        j = np.argmax(np.all(ys[..., None, :] == y[None, None], -1), -1)
        assert np.all(x[i] == xs) and np.all(y[j] == ys)
        pairs.append(np.stack([np.repeat(i, k), j.ravel()], 1))
    return np.concatenate(pairs)


def test_draws_follow_the_ott_plan():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 2)).astype(np.float32), rng.normal(size=(5, 2)).astype(np.float32) + 0.5
    coupling = SubsamplePlanCoupling(LinearCoupling(epsilon=0.5, scale_cost=1.0))
    assert isinstance(coupling, GlobalCoupling) and coupling.is_balanced
    state = coupling.fit([x], [y], np.zeros((1, 1)), seed=0)
    # oracle: ott's Sinkhorn on the cells in their original order, solved tightly
    geom = pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y), epsilon=0.5)
    plan = np.asarray(sinkhorn.Sinkhorn(threshold=1e-6)(linear_problem.LinearProblem(geom)).matrix, np.float64)
    pairs = _draw_indices(coupling, state, x, y)
    freq = np.zeros_like(plan)
    np.add.at(freq, (pairs[:, 0], pairs[:, 1]), 1.0)
    freq /= len(pairs)
    # 65536 pairs: the standard error of the largest cell (mass 0.12) is 1.4e-3. Measured: max deviation 2.5e-3
    # (chi-square p = 0.29).
    assert np.max(np.abs(freq - plan / plan.sum())) < 5e-3


def test_subsample_size_tasks_and_padding():
    rng = np.random.default_rng(1)
    sources = [rng.normal(size=(50, 3)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32) + 10]
    targets = [rng.normal(size=(40, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32) - 10]
    coupling = SubsamplePlanCoupling(LinearCoupling(epsilon=1.0), n_cells=20)
    state = coupling.fit(sources, targets, np.eye(2), seed=3)
    assert state["x"].shape == (2, 20, 3) and state["y"].shape == (2, 20, 3) and state["plan"].shape == (2, 20, 20)
    assert len(np.unique(np.asarray(state["x"][0]), axis=0)) == 20  # drawn without replacement
    np.testing.assert_allclose(np.asarray(state["plan"]).sum((1, 2)), 1.0, rtol=1e-5)
    # the small task is padded with zero-mass cells, which are never drawn
    pairs = _draw_indices(coupling, state, sources[1], targets[1], n_rounds=2, batch=512, task=1)
    assert set(pairs[:, 0]) == set(range(8)) and set(pairs[:, 1]) == set(range(6))
    assert coupling.fit(sources, targets, np.eye(2), seed=3)["x"][0].tolist() == state["x"][0].tolist()  # seeded


def test_bad_arguments_and_non_convergence():
    with pytest.raises(ValueError, match="use the mini-batch coupling"):
        SubsamplePlanCoupling(QuadraticCoupling(tau_a=0.9))
    with pytest.raises(ValueError, match="n_cells"):
        SubsamplePlanCoupling(LinearCoupling(), n_cells=1)
    with pytest.raises(TypeError, match="mini-batch coupling"):
        SubsamplePlanCoupling("minibatch")
    x = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
    stuck = SubsamplePlanCoupling(LinearCoupling(epsilon=1e-3, sinkhorn_kwargs={"max_iterations": 1}))
    with pytest.warns(CouplingConvergenceWarning, match="did not converge"):
        stuck.fit([x], [x + 1], np.zeros((1, 1)), seed=0)


@pytest.mark.filterwarnings("ignore::nescot.solvers._base.CouplingConvergenceWarning")  # 3 GW iterations
def test_genot_model_file_round_trip(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    coupling = SubsamplePlanCoupling(QuadraticCoupling(epsilon=0.1, gw_kwargs={"max_iterations": 3}), n_cells=32)
    model = GENOT(coupling=coupling, hidden_dims=(8,), embed_dim=8).fit(x, x[:, :2], n_iters=2, batch_size=8)
    path = model.save(tmp_path / "m.nescot")
    loaded = GENOT.load(path)
    assert loaded.coupling == coupling
    np.testing.assert_array_equal(loaded.transport(x[:4]), model.transport(x[:4]))


def _clusters_and_isometric_image(n=400, d=10, d_embed=20, seed=0):
    """Clusters in d dimensions (random centres, sizes and per-axis spreads) and their image in d_embed by a
    matrix with orthonormal columns: the same distances, so GW can recover the pairing."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(6, d))
    label = rng.choice(6, n, p=rng.dirichlet(np.full(6, 3.0)))
    y = centres[label] + rng.normal(size=(n, d)) * rng.uniform(0.3, 1.0, size=(6, d))[label]
    q, _ = np.linalg.qr(rng.normal(size=(d_embed, d)))
    return (y @ q.T).astype(np.float32), y.astype(np.float32)


def test_genot_with_a_global_gw_plan_recovers_an_isometry():
    x, y = _clusters_and_isometric_image()
    perm = np.random.default_rng(1).permutation(len(y))  # unpaired: the targets shuffled
    gw = QuadraticCoupling(epsilon=0.01)
    # oracle: ott's GW plan of all cells and its barycentric projection
    plan = np.asarray(jax.jit(lambda a, b: gw(a, b).plan)(x, y[perm]), np.float64)
    gw_foscttm = foscttm(plan @ y[perm] / plan.sum(1, keepdims=True), y)
    model = GENOT(coupling=SubsamplePlanCoupling(gw), **FAST).fit(x, y[perm], n_iters=300, batch_size=64, seed=0)
    genot_foscttm = foscttm(model.transport(x, n_samples=16).mean(1), y)
    # Measured: GW plan 0.029, GENOT 0.030 (the mini-batch coupling: 0.071).
    assert gw_foscttm < 0.05
    assert genot_foscttm < min(0.1, 1.5 * gw_foscttm + 0.01)


def test_exported():
    assert ns.solvers.SubsamplePlanCoupling is SubsamplePlanCoupling
    assert "SubsamplePlanCoupling" in ns.solvers.__all__
