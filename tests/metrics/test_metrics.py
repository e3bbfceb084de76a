import numpy as np
import pytest
import scipy.stats

import nescot as ns
from tests._helpers import shifted_clouds


@pytest.fixture(scope="module")
def samples():
    return shifted_clouds(400, 300, dim=3, shift=1.0, seed=0)


def test_energy_distance_matches_scipy_in_1d(samples):
    x, y = samples
    # scipy returns the square root of the energy distance.
    expected = scipy.stats.energy_distance(x[:, 0], y[:, 0]) ** 2
    assert ns.metrics.energy_distance(x[:, :1], y[:, :1]) == pytest.approx(expected, rel=1e-4)


def test_distances_vanish_on_identical_samples_and_grow_with_shift(samples):
    x, y = samples
    for fn in (ns.metrics.energy_distance, ns.metrics.mmd_rbf, ns.metrics.sinkhorn_divergence):
        same, shifted = fn(x, x), fn(x, y)
        assert abs(same) < 1e-3 and shifted > 0.05 and fn(x, y + 2.0) > shifted


def test_mean_correlations():
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(100, 20)) + np.arange(20)
    assert ns.metrics.pearson_r_means(obs, obs) == pytest.approx(1.0)
    assert ns.metrics.r2_means(obs, obs) == pytest.approx(1.0)
    assert ns.metrics.r2_means(obs[:, ::-1], obs) < 0


def test_compare_populations_keys(samples):
    x, y = samples
    out = ns.metrics.compare_populations(x, y, max_cells=100)
    assert set(out) == {"energy_distance", "sinkhorn_divergence", "mmd_rbf", "pearson_r_means", "r2_means"}


def test_bures_wasserstein_closed_form_1d():
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2.
    value = ns.metrics.bures_wasserstein2(np.array([1.0]), np.array([[4.0]]), np.array([-1.0]), np.array([[9.0]]))
    assert value == pytest.approx(4.0 + 1.0)


def test_cbw2_uvp_is_small_for_exact_samples_and_large_for_wrong_ones():
    pair = ns.datasets.gaussian_pair(4, 1.0, seed=0)
    x = pair.sample_source(50, 3)
    exact = pair.sample_plan(x, 2000, seed=4)
    args = (pair.conditional_mean(x), pair.conditional_covariance(), pair.target_variance)
    # Measured 0.3 % (sampling error of the covariance estimate).
    assert ns.metrics.cbw2_uvp(exact, *args) < 1.0
    independent = np.broadcast_to(pair.sample_target(2000, 5), exact.shape)  # ignores x: the product coupling
    assert ns.metrics.cbw2_uvp(independent, *args) > 20.0
    with pytest.raises(ValueError, match="n_samples >= 2"):
        ns.metrics.cbw2_uvp(exact[:, :1], *args)


def test_foscttm_and_label_transfer_on_hand_made_cases():
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert ns.metrics.foscttm(x, x) == 0.0
    # Reversed order: cell 0 sits on 3's partner. Rows: 3, 1, 1, 3 closer of 3; same for columns -> mean 2/3.
    assert ns.metrics.foscttm(x, x[::-1]) == pytest.approx(2 / 3)
    ref = np.array([[0.0], [0.1], [0.2], [5.0], [5.1]])
    labels, conf = ns.metrics.knn_transfer(np.array([[0.05], [5.05]]), ref, np.array(list("aaabb")), n_neighbors=3)
    assert list(labels) == ["a", "b"] and conf[0] == 1.0 and conf[1] == pytest.approx(2 / 3)
    assert (
        ns.metrics.label_transfer_accuracy(np.array([[0.05], [5.05]]), ref, np.array(list("aaabb")), ["a", "a"], 3)
        == 0.5
    )


def test_sliced_wasserstein_matches_1d_closed_form():
    # In 1-D every projection is +-1, so SW2 is W2 between the samples: a pure shift of 3 gives 3.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 1))
    assert ns.metrics.sliced_wasserstein(x, x + 3.0) == pytest.approx(3.0, rel=1e-5)
    assert ns.metrics.sliced_wasserstein(x, x) == pytest.approx(0.0, abs=1e-6)


def test_sliced_wasserstein_is_exact_empirical_w2_for_unequal_sizes():
    # Quantile functions of {0, 1} and {0, 0.5, 1} differ by 0.5 on (1/3, 2/3): W2^2 = 0.25 / 3 = 1 / 12.
    x, y = np.array([[0.0], [1.0]]), np.array([[0.0], [0.5], [1.0]])
    assert ns.metrics.sliced_wasserstein(x, y) == pytest.approx(np.sqrt(1 / 12), rel=1e-5)


def test_sinkhorn_divergence_does_not_saturate_with_the_shift():
    # ott's own scale_cost="mean" scaled each term by its own mean cost: shifts of 3, 10 and 100 scored 0.558,
    # 0.587, 0.587. With one scale (2 tr Cov(y) = 20 here) the value grows like |shift|^2 / 20 (+ the eps bias).
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(500, 10)), rng.normal(size=(500, 10))
    assert abs(ns.metrics.sinkhorn_divergence(y, y, scale_cost="mean")) < 1e-4
    values = [ns.metrics.sinkhorn_divergence(x + s, y, scale_cost="mean") for s in (0.0, 3.0, 10.0, 100.0)]
    assert values[0] < 0.2 and np.all(np.diff(values) > 0)
    for shift, value in zip((3.0, 10.0, 100.0), values[1:], strict=True):  # measured 4.54, 49.9, 5000.3
        assert value == pytest.approx(10 * shift**2 / 20, rel=0.05)
    with pytest.raises(ValueError, match="scale_cost"):
        ns.metrics.sinkhorn_divergence(x, y, scale_cost="median")


def test_weighted_metrics_equal_repeated_cells():
    # Integer weights must give the metric of the population with each cell repeated that many times.
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(50, 3)) + 0.5
    w = rng.integers(0, 4, size=40).astype(float)
    rep = np.repeat(x, w.astype(int), axis=0)
    assert ns.metrics.energy_distance(x, y, x_weights=w) == pytest.approx(ns.metrics.energy_distance(rep, y), rel=1e-4)
    assert ns.metrics.mmd_rbf(x, y, x_weights=w) == pytest.approx(ns.metrics.mmd_rbf(rep, y), rel=1e-4)
    assert ns.metrics.r2_means(x, y, pred_weights=w) == pytest.approx(ns.metrics.r2_means(rep, y), rel=1e-6)
    sd_w = ns.metrics.sinkhorn_divergence(x, y, scale_cost="mean", x_weights=w)
    assert sd_w == pytest.approx(ns.metrics.sinkhorn_divergence(rep, y, scale_cost="mean"), rel=2e-3)
    with pytest.raises(ValueError, match="x_weights"):
        ns.metrics.energy_distance(x, y, x_weights=-w)
