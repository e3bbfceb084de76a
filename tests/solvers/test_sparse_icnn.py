"""SparseICNN backend details not covered through tl.sparse_displacement."""

import numpy as np
import pytest

import nescot as ns


def test_callback_sees_every_chunk_including_adaptive_blocks():
    adata = ns.datasets.simulate_sparse_perturbation(60, 12, 2, seed=0)
    cond = adata.obs["condition"].to_numpy()
    x, y = np.asarray(adata.X[cond == "control"]), np.asarray(adata.X[cond == "treated"])
    seen = []
    model = ns.solvers.SparseICNN(hidden_dims=(8,), n_inner=1, chunk_size=5)
    model.fit(x, y, n_iters=10, batch_size=32, seed=0, callback=lambda it, carry: seen.append(it))
    assert seen == [5, 10]
    seen.clear()
    model.fit(x, y, n_iters=10, batch_size=32, seed=0, target_dim=100.0, block_iters=5, t_min=0.9,
              callback=lambda it, carry: seen.append(it))  # fmt: skip
    # 10 initial steps, no growth (the target is met), then annealing blocks of 5 steps while T > 0.9
    blocks = [b for b in model.trajectory if b["phase"] == "anneal"]
    assert seen == [5, 10] + [10 + 5 * (k + 1) for k in range(len(blocks))] and blocks


def test_map_can_expand():
    # A fixed 0.5 |x|^2 in both potentials made the map 1-Lipschitz: a population scaled by 4 was fitted with
    # slope 1.00. Measured now: 4.08.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2)).astype(np.float32)
    y = 4 * rng.normal(size=(2000, 2)).astype(np.float32)
    model = ns.solvers.SparseICNN(penalty="l1", lam=0.0).fit(x, y, n_iters=1000, seed=0)
    slope = np.polyfit(x[:, 0], model.push(x)[:, 0], 1)[0]
    assert slope == pytest.approx(4.0, rel=0.1)


def test_recovers_a_known_heterogeneous_sparse_map():
    # Paired oracle: 10 of 50 genes move by a_g x + b_g with slopes from 0.5 to 3 (so the displacement differs
    # from cell to cell), the others stay. The model sees the targets shuffled (unpaired) and must recover the
    # per-cell displacement of each source cell.
    rng = np.random.default_rng(0)
    n, n_genes, n_moved = 2000, 50, 10
    x = rng.gamma(4.0, 0.5, size=(n, n_genes)).astype(np.float32)  # skewed, not Gaussian
    genes = rng.permutation(n_genes)[:n_moved]
    slope, offset = np.ones(n_genes), np.zeros(n_genes)
    slope[genes], offset[genes] = np.linspace(0.5, 3.0, n_moved), 3.0
    y = (slope * x + offset).astype(np.float32)
    model = ns.solvers.SparseICNN(penalty="l1", lam=0.01)
    model.fit(x, y[rng.permutation(n)], n_iters=1000, seed=0)
    d, true_d = model.displacement(x), y - x
    fitted = np.array([np.polyfit(x[:, g], x[:, g] + d[:, g], 1)[0] for g in genes])
    # Measured: largest relative slope error 0.009, R^2 0.999, precision = recall = 1.
    np.testing.assert_allclose(fitted, slope[genes], rtol=0.15)
    r2 = 1 - np.sum((d - true_d) ** 2) / np.sum((true_d - true_d.mean(0)) ** 2)
    assert r2 >= 0.9
    found = np.mean(np.abs(d) > 1.0, axis=0) >= 0.5
    truth = np.isin(np.arange(n_genes), genes)
    assert (found & truth).sum() / max(found.sum(), 1) >= 0.95 and (found & truth).sum() / truth.sum() >= 0.95


@pytest.fixture(scope="module")
def small_shift():
    # 3 of 20 genes shifted by U(0, 100) (the paper's design, small enough for Sinkhorn on all cells)
    adata = ns.datasets.simulate_sparse_perturbation(120, 20, 3, seed=0)
    cond = adata.obs["condition"].to_numpy()
    x = np.asarray(adata.X[cond == "control"], np.float32)
    y = np.asarray(adata.X[cond == "treated"], np.float32)
    return x, y, adata.var["displaced"].to_numpy()


def test_is_a_map_solver_whose_transport_repeats_push(small_shift):
    x, y, _ = small_shift
    model = ns.solvers.SparseICNN(hidden_dims=(8,), n_inner=1, chunk_size=5).fit(x, y, n_iters=5, batch_size=32)
    assert isinstance(model, ns.solvers.MapSolver) and ns.solvers.get_solver("icnn") is ns.solvers.SparseICNN
    assert ns.solvers.get_solver("sparse-icnn") is ns.solvers.SparseICNN and not model.coupling_kinds
    t = model.push(x[:7])
    out = model.transport(x[:7], n_samples=3)
    assert t.shape == (7, x.shape[1]) and out.shape == (7, 3, x.shape[1])
    np.testing.assert_array_equal(out, np.repeat(t[:, None], 3, axis=1))
    np.testing.assert_array_equal(model.predict(x[:7]), t)
    np.testing.assert_array_equal(model.displacement(x[:7]), t - x[:7])
    with pytest.raises(ValueError, match="takes no `condition`"):
        model.fit(x, y, condition=np.ones((1, 2)), n_iters=5)
    with pytest.raises(ValueError, match="shape"):
        model.push(x[:, :5])


def _old_entropic_elastic_map(x, y, *, penalty, gamma, epsilon=None):
    """The function as it was before EntropicElasticMap (its STVS scale fixed at 1)."""
    import jax.numpy as jnp
    from ott.geometry import costs, pointcloud, regularizers
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    reg = regularizers.L1() if penalty == "l1" else regularizers.STVS(gamma=1.0)
    geom = pointcloud.PointCloud(
        jnp.asarray(x), jnp.asarray(y), cost_fn=costs.RegTICost(reg, lam=gamma), epsilon=epsilon
    )
    potentials = sinkhorn.Sinkhorn(max_iterations=5000)(linear_problem.LinearProblem(geom)).to_dual_potentials()
    return lambda z: np.asarray(potentials.transport(jnp.asarray(z, jnp.float32)))


@pytest.mark.parametrize(("penalty", "gamma"), [("l1", 1.0), ("stvs", 0.5)])
def test_deprecated_entropic_function_gives_the_old_numbers(small_shift, penalty, gamma):
    x, y, _ = small_shift
    x, y = x[:60], y[:60]
    old = _old_entropic_elastic_map(x, y, penalty=penalty, gamma=gamma)(x)
    with pytest.warns(FutureWarning, match="EntropicElasticMap"):
        mapped = ns.solvers.entropic_elastic_map(x, y, penalty=penalty, gamma=gamma)(x)
    # measured: bit for bit (the compiled map runs ott's own transport of the same dual vectors)
    np.testing.assert_allclose(mapped, old, rtol=1e-6, atol=1e-5)
    model = ns.solvers.EntropicElasticMap(penalty=penalty, lam=gamma, gamma=1.0).fit(x, y)
    np.testing.assert_array_equal(model.push(x), mapped)


def test_entropic_map_moves_the_shifted_genes(small_shift):
    x, y, truth = small_shift
    model = ns.solvers.EntropicElasticMap(penalty="l1", lam=1.0).fit(x, y, n_iters=10, batch_size=8, seed=3)
    assert isinstance(model, ns.solvers.MapSolver) and ns.solvers.get_solver("entropic") is type(model)
    assert model.converged
    d = model.displacement(x)
    frequency = np.mean(np.abs(d) > 1.0, axis=0)
    # Measured: every cell moves each of the 3 shifted genes (mean |d| 48 to 51), at most 6 % of cells any other
    # gene by more than 1 (mean |d| at most 0.43).
    assert frequency[truth].min() > 0.9 and frequency[~truth].max() < 0.2
    assert np.abs(d[:, truth]).mean() > 20 * np.abs(d[:, ~truth]).mean()
    np.testing.assert_array_equal(model.transport(x[:4], n_samples=2)[:, 1], model.push(x[:4]))
    with pytest.raises(ValueError, match="takes no `condition`"):
        model.fit(x, y, condition=np.ones(1))


def test_entropic_map_checks_its_settings():
    with pytest.raises(ValueError, match="'l1' and 'stvs'"):
        ns.solvers.EntropicElasticMap(penalty="smoothed_l0")
    with pytest.raises(ValueError, match="`gamma`"):
        ns.solvers.EntropicElasticMap(penalty="stvs", gamma=0.0)
    with pytest.raises(RuntimeError, match="not fitted"):
        ns.solvers.EntropicElasticMap().push(np.zeros((2, 2)))
