"""Input-convex neural networks (Amos et al., 2017) as used by Makkuva et al. (2020) and CellOT."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

QUADRATIC = "log_quadratic"  # name of the per-feature log-coefficients of the quadratic term


def _leaky(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, negative_slope=0.2)


class ICNN(nn.Module):
    """Convex potential ``phi(x) = 0.5 sum_i a_i x_i^2 + h(x)``, ``h`` an ICNN, ``a_i = exp(log_quadratic_i) > 0``.

    ``h``: first layer a squared leaky ReLU of an affine map; later layers ``leaky(A_k x + b_k + W_k z)`` with
    ``W_k >= 0`` (parameters named ``W_*``: kept non-negative by projection or penalty during training), plus a
    linear term. The per-feature coefficients ``a`` are learned (log scale, so they stay positive and can move by
    orders of magnitude): ``grad phi(x) = a * x + grad h(x)`` can expand or contract each feature. A fixed
    ``a = 1`` would make ``phi`` 1-strongly convex, and a map fitted through such a potential's conjugate
    1-Lipschitz. ``a = 1`` is the initialisation (the identity map); :func:`gaussian_diagonal_init` gives
    another.
    """

    hidden_dims: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Potentials of a batch (n, d) -> (n,)."""
        init = nn.initializers.normal(0.01)
        log_a = self.param(QUADRATIC, nn.initializers.zeros, (x.shape[-1],))
        z = _leaky(nn.Dense(self.hidden_dims[0], kernel_init=init)(x)) ** 2
        for k, width in enumerate(self.hidden_dims[1:]):
            wz = nn.Dense(width, use_bias=False, kernel_init=nn.initializers.uniform(0.01), name=f"W_{k}")(z)
            z = _leaky(nn.Dense(width, kernel_init=init, name=f"A_{k}")(x) + wz)
        h = nn.Dense(1, use_bias=False, kernel_init=nn.initializers.uniform(0.01), name="W_out")(z)
        h = h + nn.Dense(1, kernel_init=init, name="A_out")(x)
        return 0.5 * jnp.sum(jnp.exp(log_a) * x**2, axis=-1) + h[..., 0]


def gaussian_diagonal_init(params, x: np.ndarray, y: np.ndarray):
    """Start ``grad phi`` at the OT map between diagonal Gaussians fitted to ``x`` and ``y`` (both (n, d)).

    That map is ``a * (x - mean_x) + mean_y`` with ``a = sd(y) / sd(x)`` per feature: the quadratic term takes
    ``a`` and the linear term of ``h`` the offset. ott-jax's ICNN offers the same idea with a full Gaussian map
    (``gaussian_map_samples``); per feature it costs nothing in high dimension.
    """
    sd_x, sd_y = np.std(x, axis=0) + 1e-6, np.std(y, axis=0) + 1e-6
    a = np.clip(sd_y / sd_x, 1e-3, 1e3)  # a gene constant in one population must not start an extreme slope
    offset = np.mean(y, axis=0) - a * np.mean(x, axis=0)
    inner = dict(params["params"])
    inner[QUADRATIC] = jnp.asarray(np.log(a), jnp.float32)
    inner["A_out"] = {**inner["A_out"], "kernel": jnp.asarray(offset[:, None], jnp.float32)}
    return {**params, "params": inner}


def _is_w(path) -> bool:
    return any(getattr(p, "key", "").startswith("W_") for p in path)


def project_nonnegative(params):
    """Clip the ``W_*`` kernels at 0 (the projection after each f step)."""
    return jax.tree_util.tree_map_with_path(lambda p, v: jnp.maximum(v, 0.0) if _is_w(p) else v, params)


def negative_weight_penalty(params) -> jax.Array:
    """``sum relu(-W)^2`` over the ``W_*`` kernels (the soft constraint on g)."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    return sum(jnp.sum(jax.nn.relu(-v) ** 2) for p, v in leaves if _is_w(p))
