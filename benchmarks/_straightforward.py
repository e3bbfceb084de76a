"""A straightforward GENOT training loop, written here only as a speed baseline (same network, same workload).

What makes it "straightforward" (and what nescot's GENOT does instead):
- a Python loop with one jitted optimiser update per step, and the loss read back each step for logging
  (nescot: ``chunk_size`` steps compiled into one ``lax.fori_loop``, no host round trip inside a chunk);
- the batch is drawn on the host with numpy and the coupling is a separate ott Sinkhorn call whose plan is
  copied to the host, where the conditional targets are sampled with numpy (nescot: batch draw, Sinkhorn,
  conditional sampling and the update are one XLA program on device);
- inference with an adaptive integrator (dopri5) instead of a fixed-step one (nescot: Heun, 16 steps).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from ott.geometry import pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn

from nescot.solvers._networks import ConditionalVelocityField


class StraightforwardGENOT:
    """Conditional flow matching on mini-batch Sinkhorn couplings, one Python-level step at a time."""

    def __init__(
        self,
        dim: int,
        *,
        epsilon: float = 0.1,
        scale_cost: float | str = "mean",
        k: int = 4,
        hidden_dims: Sequence[int] = (256, 256, 256),
        embed_dim: int = 128,
        n_frequencies: int = 16,
        learning_rate: float = 1e-3,
        seed: int = 0,
    ) -> None:
        self.k, self.dim = k, dim
        self.vf = ConditionalVelocityField(dim, tuple(hidden_dims), embed_dim, n_frequencies)
        self.opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate))
        z = jnp.zeros((1, dim))
        self.params = self.vf.init(jax.random.key(seed), jnp.zeros((1, 1)), z, z, jnp.zeros((1, 0)))
        self.opt_state = self.opt.init(self.params)
        self.rng = np.random.default_rng(seed)

        def solve(x, y):
            geom = pointcloud.PointCloud(x, y, epsilon=epsilon, scale_cost=scale_cost)
            return sinkhorn.Sinkhorn(max_iterations=2000)(linear_problem.LinearProblem(geom)).matrix

        def update(params, opt_state, t, x_t, src, u):
            def loss_fn(p):
                v = self.vf.apply(p, t, x_t, src, jnp.zeros((t.shape[0], 0)))
                return jnp.mean(jnp.sum((v - u) ** 2, axis=-1))

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = self.opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        self.solve = jax.jit(solve)
        self.update = jax.jit(update)

    def step(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
        """One training step on host arrays ``x``, ``y``; returns the loss (a host float, as a logging loop would)."""
        rng, k = self.rng, self.k
        i = rng.integers(len(x), size=batch_size)
        j = rng.integers(len(y), size=batch_size)
        xb, yb = x[i], y[j]
        plan = np.asarray(self.solve(xb, yb), dtype=np.float64)  # device -> host copy every step
        cum = np.cumsum(plan / plan.sum(1, keepdims=True), axis=1)
        u = rng.random((batch_size, k))
        picks = np.minimum((cum[:, None, :] < u[..., None]).sum(-1), batch_size - 1)  # inverse-CDF draws
        y1 = yb[picks]  # (B, k, d)
        z = rng.normal(size=y1.shape).astype(np.float32)
        t = rng.random((batch_size, k, 1)).astype(np.float32)
        x_t, target = (1 - t) * z + t * y1, y1 - z
        src = np.repeat(xb, k, axis=0)
        self.params, self.opt_state, loss = self.update(
            self.params, self.opt_state, t.reshape(-1, 1), x_t.reshape(-1, self.dim), src, target.reshape(-1, self.dim)
        )
        return float(loss)
