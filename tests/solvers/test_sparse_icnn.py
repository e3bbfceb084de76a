"""SparseICNN backend details not covered through tl.sparse_displacement."""

import numpy as np

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
