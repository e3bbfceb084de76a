"""Flax networks shared by the solvers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
    """Fully connected network: ``len(hidden_dims)`` hidden layers, then a linear output layer."""

    hidden_dims: Sequence[int]
    output_dim: int
    activation: Callable[[jax.Array], jax.Array] = nn.silu

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # noqa: D102
        for width in self.hidden_dims:
            x = self.activation(nn.Dense(width)(x))
        return nn.Dense(self.output_dim)(x)


def time_encoding(t: jax.Array, n_frequencies: int) -> jax.Array:
    """Cyclical encoding of times in [0, 1]: (..., 1) -> (..., 2 * n_frequencies)."""
    freqs = 2.0 * jnp.pi * jnp.arange(1, n_frequencies + 1, dtype=t.dtype)
    return jnp.concatenate([jnp.sin(t * freqs), jnp.cos(t * freqs)], axis=-1)


def default_embed_dim(dim_x: int, dim_y: int) -> int:
    """Embedding width of :class:`ConditionalVelocityField` by default: ``max(128, 2 * max(dim_x, dim_y))``.

    Each input is embedded by a single layer; one no wider than the data discards part of it (measured at
    128 dimensions, docs/benchmarks.md), while up to 64 dimensions this keeps the width of earlier releases.
    """
    return max(128, 2 * max(int(dim_x), int(dim_y)))


class ConditionalVelocityField(nn.Module):
    """Velocity ``v(t, x_t | source, condition)`` for conditional flow matching.

    Time, state and conditioning inputs are embedded separately, concatenated, then mapped by an MLP.
    """

    output_dim: int
    hidden_dims: Sequence[int] = (256, 256, 256)
    embed_dim: int = 128
    n_frequencies: int = 16

    @nn.compact
    def __call__(self, t: jax.Array, x_t: jax.Array, source: jax.Array, condition: jax.Array) -> jax.Array:
        """Evaluate the field; ``t`` has shape (n, 1), the others (n, d_*)."""
        parts = [
            nn.silu(nn.Dense(self.embed_dim)(time_encoding(t, self.n_frequencies))),
            nn.silu(nn.Dense(self.embed_dim)(x_t)),
            nn.silu(nn.Dense(self.embed_dim)(source)),
        ]
        if condition.shape[-1]:
            parts.append(nn.silu(nn.Dense(self.embed_dim)(condition)))
        return MLP(self.hidden_dims, self.output_dim)(jnp.concatenate(parts, axis=-1))


class MassNetwork(nn.Module):
    """Positive scalar function of a cell (and condition): learned relative mass (re-weighting)."""

    hidden_dims: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, x: jax.Array, condition: jax.Array) -> jax.Array:
        """Return masses of shape (n,)."""
        h = jnp.concatenate([x, condition], axis=-1)
        return nn.softplus(MLP(self.hidden_dims, 1)(h))[..., 0]
