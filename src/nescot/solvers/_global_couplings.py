"""Couplings fitted once on the whole training data, from which GENOT draws its training pairs.

The paper's mini-batch coupling solves a small entropic problem at every step. At small epsilon in many
dimensions the conditionals of a 256-cell plan are far from those of the population plan, and GENOT learns
the former (docs/benchmarks.md). Even the exact plan of all cells is not enough there: the empirical plan itself
is far from the population's. The couplings here smooth across cells instead: they are fitted once, before
GENOT trains, and then draw ``(source, target)`` pairs from a model of the population plan at every step.

A *global coupling* has ``fit(sources, targets, condition, seed) -> state`` (a pytree of arrays whose leading
axis is the task) and ``draw(state, key, batch, k) -> (x, y)``: ``batch.x.shape[0]`` source cells ``x``
(B, d_x) and ``k`` targets per source ``y`` (B, k, d_y), all in raw units. ``draw`` runs inside GENOT's
compiled training step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import logsumexp

from ._costs import CostLike, check_population_scale_cost, population_cost_scale, resolve_cost
from ._couplings import _check_number, check_epsilon
from ._tasks import Batch

# names GENOT and the tools accept for `coupling`; "global" is the measured default among the global ones
COUPLING_NAMES = ("minibatch", "global", "mixture", "egnot")
GLOBAL_DEFAULT = "mixture"


@runtime_checkable
class GlobalCoupling(Protocol):
    """A model of the population plan, fitted before training, that draws training pairs."""

    def fit(self, sources: list[np.ndarray], targets: list[np.ndarray], condition: np.ndarray, seed: int) -> Any: ...  # noqa: D102

    def draw(self, state: Any, key: jax.Array, batch: Batch, k: int) -> tuple[jax.Array, jax.Array]: ...  # noqa: D102


def _stack_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    return jax.tree.map(lambda *a: jnp.stack(a), *states)


def _task_state(state: Any, task: jax.Array) -> Any:
    return jax.tree.map(lambda a: a[task], state)


@dataclass(frozen=True)
class MixturePotentialCoupling:
    """The entropic plan of the quadratic cost modelled by a Gaussian-mixture potential (LightSB).

    For the cost ``||x - y||^2`` and absolute regularisation ``e`` (``epsilon`` times the cost scale), every
    entropic plan has conditionals ``pi(y | x) ~ exp(2 <x, y> / e) v(y)`` for some function ``v`` of the target.
    Korotin et al. (ICLR 2024, "Light Schroedinger bridge") take ``v`` a Gaussian mixture
    ``sum_k alpha_k N(r_k, S_k)``: the conditionals are then Gaussian mixtures in closed form (weights
    ``~ alpha_k exp(<a, r_k> + a^T S_k a / 2)``, means ``r_k + S_k a``, covariances ``S_k``, ``a = 2 x / e``), and
    the parameters are fitted by minimising ``E_P log c(x) - E_Q log v(y)`` (``c`` the conditional's normaliser),
    the KL divergence from the population plan up to a constant. Covariances are full (``S_k = L_k L_k^T``).
    Fitting uses the whole data set in batches, so the model is of the population, not of one batch.

    Parameters
    ----------
    epsilon
        Entropic regularisation, for the cost divided by ``scale_cost``.
    scale_cost
        A number ``s`` (``1.0``: absolute ``epsilon``) or ``"mean"``, ``"median"``, ``"max_cost"`` of the cost
        over random (source, target) pairs of the training data (``"mean"`` matches the mini-batch coupling's
        relative ``epsilon``: a batch's mean cost estimates the same number).
    n_components
        Mixture components ``K``.
    n_iters, batch_size, learning_rate
        Adam steps, cells per step and (initial) learning rate of the fit.
    final_lr_ratio
        The learning rate decays along a cosine to this fraction of ``learning_rate`` (the decay took the
        fit's own draws from 10% to 1.4% cBW2-UVP on a 64-dimensional Gaussian pair).
    """

    epsilon: float = 0.1
    scale_cost: float | str = "mean"
    n_components: int = 16
    n_iters: int = 5000
    batch_size: int = 512
    learning_rate: float = 1e-2
    final_lr_ratio: float = 0.01

    def __post_init__(self) -> None:
        if check_epsilon(self.epsilon) is None:
            raise ValueError("A mixture-potential coupling needs an explicit `epsilon` > 0.")
        check_population_scale_cost(self.scale_cost)
        for name in ("n_components", "n_iters", "batch_size"):
            _check_number(name, getattr(self, name))
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        _check_number("learning_rate", self.learning_rate)
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be > 0, got {self.learning_rate}.")

    is_balanced = True

    # In standardised units (x - mean_x, y - mean_y, both divided by the target's spread s) the conditional keeps
    # its form with e' = e / s^2; centring only changes v by a linear exponential factor, absorbed by the means.
    @staticmethod
    def _components(p: dict[str, jax.Array], x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Return the conditional's component log-weights at ``x`` (B, K), ``L_k^T a`` (B, K, d) and ``L_k``.

        With ``a = 2 x / e`` the log-weights are ``log alpha_k + <a, r_k> + |L_k^T a|^2 / 2``; their logsumexp is
        log c(x), the conditional's normaliser.
        """
        a = 2.0 * x / p["eps"]
        chol = _cholesky(p)
        lt_a = jnp.einsum("kij,bi->bkj", chol, a)
        terms = jax.nn.log_softmax(p["logit_alpha"]) + a @ p["r"].T + 0.5 * jnp.sum(lt_a**2, -1)
        return terms, lt_a, chol

    @staticmethod
    def _log_v(p: dict[str, jax.Array], y: jax.Array) -> jax.Array:
        diff = y[None] - p["r"][:, None]  # (K, B, d)
        white = jnp.einsum("kij,kbj->kbi", _inverse_cholesky(p), diff)
        log_det = jnp.sum(p["log_diag"], axis=1)
        log_n = -0.5 * jnp.sum(white**2, axis=-1) - log_det[:, None] - 0.5 * y.shape[1] * math.log(2 * math.pi)
        return logsumexp(jax.nn.log_softmax(p["logit_alpha"])[:, None] + log_n, axis=0)

    def _fit_one(self, x: np.ndarray, y: np.ndarray, key: jax.Array) -> dict[str, jax.Array]:
        x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
        k_scale, k_init, k_train = jax.random.split(key, 3)
        eps = float(self.epsilon) * population_cost_scale(resolve_cost("sqeuclidean"), x, y, self.scale_cost, k_scale)
        mean_x, mean_y = x.mean(0), y.mean(0)
        spread = float(np.sqrt(np.mean(y.var(0)))) + 1e-8
        xs, ys = jnp.asarray((x - mean_x) / spread), jnp.asarray((y - mean_y) / spread)
        eps_std, d, n_k = eps / spread**2, y.shape[1], int(self.n_components)
        # Start: conditional covariances eps/2 (the Brownian bridge's), capped by the target's variance, and
        # means at random target cells, so that early conditionals already land on the target.
        init_var = min(eps_std / 2, 1.0)
        centres = ys[jax.random.choice(k_init, ys.shape[0], (n_k,), replace=ys.shape[0] < n_k)]
        params = {
            "logit_alpha": jnp.zeros(n_k),
            "r": centres,
            "log_diag": jnp.full((n_k, d), 0.5 * math.log(init_var)),
            "lower": jnp.zeros((n_k, d, d)),
        }
        const = {"eps": jnp.float32(eps_std)}
        batch = int(min(self.batch_size, len(xs), len(ys)))
        run = _mixture_fit_runner(self, batch)  # compiled once per setting: data and eps are traced
        (params, _), losses = run(params, self._optimizer().init(params), k_train, xs, ys, const)
        finite = [np.all(np.isfinite(np.asarray(v))) for v in [losses, *jax.tree.leaves(params)]]
        if not all(finite):
            raise FloatingPointError(
                "The mixture-potential coupling diverged while fitting (non-finite loss): try a larger epsilon, a "
                "smaller learning_rate, or coupling='minibatch'."
            )
        return {
            **params, **const, "mean_x": jnp.asarray(mean_x), "mean_y": jnp.asarray(mean_y),
            "spread": jnp.float32(spread), "final_loss": jnp.mean(losses[-100:]),
        }  # fmt: skip

    def _optimizer(self) -> optax.GradientTransformation:
        schedule = optax.cosine_decay_schedule(self.learning_rate, int(self.n_iters), alpha=self.final_lr_ratio)
        return optax.chain(optax.clip_by_global_norm(10.0), optax.adam(schedule))

    def fit(
        self, sources: list[np.ndarray], targets: list[np.ndarray], condition: np.ndarray, seed: int
    ) -> dict[str, jax.Array]:
        """Fit one mixture per (source, target) task; the state's leading axis is the task."""
        for i, (x, y) in enumerate(zip(sources, targets, strict=True)):
            if x.shape[1] != y.shape[1]:
                raise ValueError(
                    f"The mixture-potential coupling needs source and target in one space; task {i} has "
                    f"{x.shape[1]} and {y.shape[1]} features."
                )
        keys = jax.random.split(jax.random.key(seed), len(sources))
        return _stack_states([self._fit_one(x, y, k) for x, y, k in zip(sources, targets, keys, strict=True)])

    def sample(self, state: dict[str, jax.Array], key: jax.Array, x: jax.Array, k: int) -> jax.Array:
        """``k`` draws (B, k, d) of the fitted conditional of each source cell (one task's state)."""
        xs = (x - state["mean_x"]) / state["spread"]
        logits, lt_a, chol = self._components(state, xs)
        k_comp, k_noise = jax.random.split(key)
        comp = jax.random.categorical(k_comp, logits[:, None, :], axis=-1, shape=(x.shape[0], k))  # (B, k)
        means = state["r"][None] + jnp.einsum("kij,bkj->bki", chol, lt_a)  # r_k + S_k a, (B, K, d)
        mean = jnp.take_along_axis(means, comp[..., None], axis=1)  # (B, k, d)
        z = jax.random.normal(k_noise, mean.shape)
        y = mean + jnp.einsum("bkij,bkj->bki", chol[comp], z)
        return state["mean_y"] + state["spread"] * y

    def draw(self, state: dict[str, jax.Array], key: jax.Array, batch: Batch, k: int) -> tuple[jax.Array, jax.Array]:
        """Return the batch's source cells and ``k`` targets drawn from the model's conditional of each."""
        return batch.x, self.sample(_task_state(state, batch.task), key, batch.x, k)


@functools.lru_cache(maxsize=16)
def _mixture_fit_runner(coupling: MixturePotentialCoupling, batch: int) -> Callable:
    """Compile the fit of a mixture potential once per coupling setting (compared by value) and batch size.

    Returns ``run(params, opt_state, key, xs, ys, const) -> ((params, opt_state), losses)``: ``n_iters`` Adam steps
    on batches of the standardised cells ``xs``, ``ys``; ``const`` holds the standardised ``eps``.
    """
    optimizer = coupling._optimizer()

    def loss_fn(params, const, xb, yb):
        p = {**params, **const}
        return jnp.mean(logsumexp(coupling._components(p, xb)[0], axis=1)) - jnp.mean(coupling._log_v(p, yb))

    @jax.jit
    def run(params, opt_state, key, xs, ys, const):
        def step(carry, key):
            params, opt_state = carry
            k1, k2 = jax.random.split(key)
            xb = xs[jax.random.randint(k1, (batch,), 0, xs.shape[0])]
            yb = ys[jax.random.randint(k2, (batch,), 0, ys.shape[0])]
            loss, grads = jax.value_and_grad(loss_fn)(params, const, xb, yb)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        return jax.lax.scan(step, (params, opt_state), jax.random.split(key, int(coupling.n_iters)))

    return run


def _cholesky(p: dict[str, jax.Array]) -> jax.Array:
    """``L_k``: strictly lower part of ``lower`` plus the positive diagonal ``exp(log_diag)``."""
    d = p["log_diag"].shape[-1]
    return jnp.tril(p["lower"], -1) + jnp.exp(p["log_diag"])[:, :, None] * jnp.eye(d)


def _inverse_cholesky(p: dict[str, jax.Array]) -> jax.Array:
    """Invert every ``L_k`` by matrix products only.

    ``L = D (I + N)`` with ``N`` strictly lower, hence nilpotent, and ``(I + N)^{-1} = prod_j (I + (-N)^(2^j))``
    over ``2^j < d``. (``jax.scipy.linalg.solve_triangular`` inside the fitting loop deadlocked XLA's CPU runtime
    here after a few hundred steps.)
    """
    d = p["log_diag"].shape[-1]
    inv_diag = jnp.exp(-p["log_diag"])  # (K, d)
    power = -inv_diag[:, :, None] * jnp.tril(p["lower"], -1)  # -N = -D^{-1} strict_lower
    eye = jnp.eye(d)
    inverse = eye + power
    for _ in range(max(0, math.ceil(math.log2(d)) - 1)):
        power = power @ power
        inverse = inverse @ (eye + power)
    return inverse * inv_diag[:, None, :]  # (I + N)^{-1} D^{-1}


@dataclass(frozen=True)
class EgNOTCoupling:
    """Pairs drawn from a fitted EgNOT (energy-guided entropic OT) model: EgNOT as GENOT's teacher.

    EgNOT learns a potential of the population problem and samples its conditionals by Langevin dynamics
    (Mokrov et al., ICLR 2024), for any differentiable cost. Before GENOT trains, this coupling fits EgNOT on the
    data, then draws ``draws_per_cell`` targets for each of ``pool_size`` source cells per task (Langevin chains
    are too slow to run inside every GENOT step); each GENOT step then picks pairs from that pool. GENOT keeps
    its fast ODE sampling and its other features; its conditionals inherit EgNOT's accuracy.

    Parameters
    ----------
    cost, epsilon, scale_cost
        As for :class:`~nescot.solvers.EgNOT`; ``scale_cost="mean"`` is the mean cost over random pairs.
    n_iters, batch_size
        EgNOT training steps and batch size.
    pool_size, draws_per_cell
        Source cells per task in the pool, and targets drawn for each.
    egnot_kwargs
        Further arguments of :class:`~nescot.solvers.EgNOT` (e.g. ``hidden_dims``, ``learning_rate``).
    """

    cost: CostLike = "sqeuclidean"
    epsilon: float = 0.1
    scale_cost: float | str = "mean"
    n_iters: int = 1000
    batch_size: int = 256
    pool_size: int = 4096
    draws_per_cell: int = 8
    egnot_kwargs: dict[str, Any] = field(default_factory=dict)

    is_balanced = True

    def __post_init__(self) -> None:
        self._egnot()  # validates cost, epsilon, scale_cost and the keyword arguments now
        for name in ("n_iters", "batch_size", "pool_size", "draws_per_cell"):
            _check_number(name, getattr(self, name))
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")

    def _egnot(self):
        from ._egnot import EgNOT  # EgNOT imports the couplings module: import at use

        return EgNOT(cost=self.cost, epsilon=self.epsilon, scale_cost=self.scale_cost, **self.egnot_kwargs)

    def fit(
        self, sources: list[np.ndarray], targets: list[np.ndarray], condition: np.ndarray, seed: int
    ) -> dict[str, jax.Array]:
        """Fit EgNOT on all tasks (conditioned like GENOT), then draw each task's pool."""
        model = self._egnot().fit(
            sources if len(sources) > 1 else sources[0],
            targets if len(targets) > 1 else targets[0],
            condition=condition if len(sources) > 1 else None,
            n_iters=int(self.n_iters),
            batch_size=int(self.batch_size),
            seed=seed,
        )
        rng = np.random.default_rng(seed)
        states = []
        for task, x in enumerate(sources):
            cells = x[rng.choice(len(x), int(self.pool_size), replace=len(x) < self.pool_size)]
            cond = condition[task] if len(sources) > 1 else None
            ys = model.transport(cells, cond, n_samples=int(self.draws_per_cell), seed=seed + task)
            states.append({"x": jnp.asarray(cells), "y": jnp.asarray(ys, jnp.float32)})
        return _stack_states(states)

    def draw(self, state: dict[str, jax.Array], key: jax.Array, batch: Batch, k: int) -> tuple[jax.Array, jax.Array]:
        """``B`` pool cells and ``k`` of their EgNOT draws each (with replacement)."""
        pool = _task_state(state, batch.task)
        k_cell, k_draw = jax.random.split(key)
        n_cells, n_draws = pool["y"].shape[:2]
        cells = jax.random.randint(k_cell, (batch.x.shape[0],), 0, n_cells)
        draws = jax.random.randint(k_draw, (batch.x.shape[0], k), 0, n_draws)
        return pool["x"][cells], pool["y"][cells[:, None], draws]


def make_coupling(
    coupling: Any,
    *,
    cost: CostLike = "sqeuclidean",
    epsilon: float | None = 0.1,
    scale_cost: float | str = "mean",
    tau_a: float = 1.0,
    tau_b: float = 1.0,
) -> Any:
    """Resolve GENOT's ``coupling`` argument: a name of :data:`COUPLING_NAMES` or a ready coupling object."""
    from ._couplings import LinearCoupling

    if not isinstance(coupling, str):
        return coupling
    if coupling not in COUPLING_NAMES:
        raise ValueError(f"Unknown coupling {coupling!r}; choose from {list(COUPLING_NAMES)} or a coupling object.")
    if coupling == "minibatch":
        return LinearCoupling(cost, epsilon, scale_cost, tau_a, tau_b)
    if tau_a != 1.0 or tau_b != 1.0:
        raise ValueError(
            f"coupling={coupling!r} models a balanced plan; unbalanced problems (tau_a={tau_a}, tau_b={tau_b}) need "
            "coupling='minibatch'."
        )
    if epsilon is None:
        raise ValueError(f"coupling={coupling!r} needs an explicit `epsilon` > 0.")
    name = GLOBAL_DEFAULT if coupling == "global" else coupling
    if name == "mixture":
        if not (cost == "sqeuclidean" or type(resolve_cost(cost)).__name__ == "SqEuclidean"):
            raise ValueError(
                f"coupling={coupling!r} (a Gaussian-mixture potential) is exact in form only for the cost "
                f"'sqeuclidean', got {cost!r}; use coupling='egnot' for other costs."
            )
        return MixturePotentialCoupling(epsilon=epsilon, scale_cost=scale_cost)
    return EgNOTCoupling(cost=cost, epsilon=epsilon, scale_cost=scale_cost)


def coupling_kind(coupling: Any) -> str:
    """Return the kind of a coupling object, as solvers declare it in ``coupling_kinds``.

    ``"linear"``: :class:`~nescot.solvers.LinearCoupling` (an entropic problem within one space);
    ``"quadratic"``: :class:`~nescot.solvers.QuadraticCoupling` (Gromov-Wasserstein / fused, across spaces);
    ``"plan"``: one discrete plan solved before training on a subsample of the cells
    (:class:`~nescot.solvers.SubsamplePlanCoupling`, e.g. of a quadratic coupling across spaces);
    ``"global"``: another model of the population plan fitted before training (:class:`GlobalCoupling`:
    the Gaussian-mixture potential, the EgNOT teacher); ``"custom"``: any other mini-batch coupling, a callable
    ``coupling(x, y) -> CouplingOutput``. Anything else is ``TypeError``.
    """
    from ._couplings import LinearCoupling, QuadraticCoupling
    from ._plan_coupling import SubsamplePlanCoupling

    if isinstance(coupling, LinearCoupling):
        return "linear"
    if isinstance(coupling, QuadraticCoupling):
        return "quadratic"
    if isinstance(coupling, SubsamplePlanCoupling):
        return "plan"
    if isinstance(coupling, GlobalCoupling):
        return "global"
    if callable(coupling) and not isinstance(coupling, type):
        return "custom"
    raise TypeError(
        f"A coupling must be a LinearCoupling, a QuadraticCoupling, a global coupling (fit / draw) or a callable "
        f"mini-batch coupling, got {type(coupling).__name__}."
    )
