"""GENOT's learned mass against ott's discrete unbalanced plan on the full data (the oracle)."""

import jax.numpy as jnp
import numpy as np
import scipy.stats
from ott.geometry import pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn

import nescot as ns

FAST = {"hidden_dims": (64, 64), "embed_dim": 32}


def test_mass_ranks_cells_as_the_full_data_unbalanced_plan():
    # Two source clusters; three quarters of the targets sit next to the first one, so the unbalanced plan
    # gives its cells more mass. GENOT sees batches of 128 of the 400 cells; ott solves all of them at once.
    rng = np.random.default_rng(0)
    n, tau = 400, 0.7
    x = np.concatenate([rng.normal([0, 0], 0.7, (n // 2, 2)), rng.normal([4, 0], 0.7, (n // 2, 2))])
    y = np.concatenate([rng.normal([0.5, 1], 0.7, (3 * n // 4, 2)), rng.normal([4.5, 1], 0.7, (n // 4, 2))])
    x, y = x.astype(np.float32), y.astype(np.float32)
    model = ns.solvers.GENOT(epsilon=0.1, scale_cost="mean", tau_a=tau, tau_b=tau, **FAST)
    model.fit(x, y, n_iters=500, batch_size=128, seed=0)
    geom = pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y), epsilon=0.1, scale_cost="mean")
    plan = sinkhorn.Sinkhorn(max_iterations=5000)(linear_problem.LinearProblem(geom, tau_a=tau, tau_b=tau)).matrix
    rows = np.asarray(plan.sum(1))
    mass = model.mass(x)
    # Measured: Spearman 0.996; cluster means 1.29 / 0.77 (model) vs 1.26 / 0.74 (ott, rows over their mean).
    assert scipy.stats.spearmanr(mass, rows).statistic >= 0.9
    np.testing.assert_allclose(
        [mass[: n // 2].mean(), mass[n // 2 :].mean()],
        [rows[: n // 2].mean(), rows[n // 2 :].mean()] / rows.mean(),
        atol=0.1,
    )
