"""EgNOT: energy-guided entropic neural OT (Mokrov et al., ICLR 2024)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._base import ConditionalSolver, as_tasks, check_training_args
from ._compile_cache import compiled
from ._costs import CostLike, check_population_scale_cost, population_cost_scale, resolve_cost
from ._couplings import LinearCoupling, check_epsilon, check_tau
from ._gw_linearisation import (
    STAT_KEYS,
    check_gw_plan_coupling,
    linearisation_stats,
    linearised_cost,
    linearised_cost_matrix,
    plan_target_potential,
)
from ._networks import MLP
from ._tasks import TaskData, sample_batch
from ._training import make_chunk_runner, run_training
from ._transport import sample_in_chunks


class Potential(nn.Module):
    """Scalar potential ``f(y, condition) = MLP(y, condition) - (well_scale / 2) exp(log_well) ||y||^2``.

    ``y`` is standardised (target mean, and the square root of the target's mean per-feature variance). The learned
    quadratic well (``log_well``, starting at 0, at most ``log(10)``) confines the Langevin chains: with
    ``well_scale = epsilon``, the initial ``exp(f / epsilon)`` is the isotropic Gaussian with the target's mean and
    mean variance. Without it, in many dimensions and at large epsilon the MLP alone did not confine the chains,
    whose spread then grew with the chain length (d = 128, paper epsilon 10: conditional variance 3.0 times the
    truth after 100 steps, 4.3 after 400). The cap keeps the well's curvature within what the default Langevin
    step integrates stably (step ``<= 0.1`` mean variance, curvature ``<= 10 /`` mean variance).
    """

    hidden_dims: Sequence[int] = (128, 128, 128)
    well_scale: float = 1.0

    @nn.compact
    def __call__(self, y: jax.Array, condition: jax.Array) -> jax.Array:
        """Return potentials of shape (n,)."""
        log_well = jnp.minimum(self.param("log_well", nn.initializers.zeros, ()), jnp.log(10.0))
        well = 0.5 * self.well_scale * jnp.exp(log_well) * jnp.sum(y**2, axis=-1)
        return MLP(self.hidden_dims, 1)(jnp.concatenate([y, condition], axis=-1))[..., 0] - well


class EgNOT(ConditionalSolver):
    """Energy-guided entropic neural optimal transport.

    The entropic plan's conditional law is an energy model,
    ``pi(y | x) ~ exp((f(y) - c(x, y) / s) / epsilon)``, with a learned potential ``f`` on the target
    space and the cost ``c`` divided by ``s`` (``scale_cost``). ``f`` is trained by maximising
    ``E_Q f(y) - E_x E_{pi(.|x)} f(y)``, the model's samples drawn by Langevin dynamics
    ``y <- y + (eta / 2) grad_y log pi(y | x) + sqrt(eta) xi``, started from ``N(mean(Q), sigma0^2 I)``.
    Source and target may have different dimensions when ``cost`` is a callable ``c(x, y)``.

    **Across spaces (Gromov-Wasserstein).** With ``coupling=SubsamplePlanCoupling(QuadraticCoupling(...))``, the
    entropic (fused) GW plan ``P`` of a subsample is solved once with ott-jax. ``P`` is a fixed point: it is the
    entropic linear plan, same epsilon, of the cost ott linearises GW with at ``P``,
    ``C_lin(x, y) = sum_kl P_kl (cx(x, x_k) - cy(y, y_l))^2`` (+ ``(1 - alpha) / alpha`` times the shared-feature
    cost), the intra costs divided by their subsample means. EgNOT then learns the population plan of ``C_lin``
    extended out of sample, with the QuadraticCoupling's epsilon (absolute on these scaled costs; cost scale 1).
    Terms of ``x`` alone do not change ``pi(y | x)`` and are dropped; for squared-Euclidean intra costs the rest is
    a low-degree polynomial whose coefficients are moments of ``P`` (:mod:`nescot.solvers._gw_linearisation`),
    stored in the model's statistics, so a Langevin step costs ``O(d_x d_y + d_y^2)`` per chain. The chains, in
    training and sampling, start from draws of the subsample plan extended to each cell (the subsample's targets
    ``y_l`` with weights ``exp((g_l - C_lin(x, y_l)) / epsilon)``); from noise, they stay in the wrong cluster of a
    sharp plan. One task only.

    Parameters
    ----------
    cost
        ``"sqeuclidean"`` (``||x - y||^2``, ott's convention), ``"euclidean"``, ``"cosine"``, an ott ``CostFn``
        or a differentiable callable ``c(x, y) -> scalar`` on single cells (may map across spaces).
    epsilon
        Entropic regularisation, for the cost divided by ``scale_cost``.
    scale_cost
        A number ``s``, or ``"mean"``, ``"median"``, ``"max_cost"`` of the cost over random (source, target) pairs
        of the training data (fixed at ``fit``).
    tau_a, tau_b
        Must be 1: EgNOT is balanced (accepted so that ``tl`` functions can pass them).
    coupling
        ``None`` (the problem given by ``cost``, ``epsilon``, ``scale_cost``, ``tau_*``), a
        :class:`~nescot.solvers.LinearCoupling`, whose ``cost``, ``epsilon``, ``scale_cost`` and ``tau_*``
        override those arguments (its ``scale_cost`` is fixed for the population: a number, ``"mean"``,
        ``"median"`` or ``"max_cost"``; ``"mean"`` is what the mini-batch coupling estimates per batch; its
        ``sinkhorn_kwargs`` are unused), or a :class:`~nescot.solvers.SubsamplePlanCoupling` of a balanced
        :class:`~nescot.solvers.QuadraticCoupling` with ``"sqeuclidean"`` intra costs (see above); its epsilon
        then overrides ``epsilon``.
    hidden_dims
        Widths of the potential network.
    learning_rate
        Adam learning rate (gradients clipped to global norm 1).
    n_langevin_steps
        Langevin steps per training chain.
    langevin_step
        Step size ``eta``; ``None`` picks ``0.1 * min(s * epsilon / 2, per-feature target variance)``, below the
        stability limit of the cost term.
    init_std
        ``sigma0`` of the chains' starting noise; ``None`` uses the target's per-feature standard deviation.
    n_sample_steps
        Langevin steps when sampling a fitted model; ``None`` uses ``2 * n_langevin_steps``.
    step_anneal
        Ratio of the last to the first step size of a chain (geometric decay); 1 keeps ``eta`` constant.
    replay_fraction
        Fraction of each training batch's chains restarted from a replay buffer of earlier chains (with their
        source cells) instead of noise; persistent chains need fewer ``n_langevin_steps``. 0 disables the buffer.
    buffer_size
        Capacity of the replay buffer.
    chunk_size
        Training steps compiled into one call.
    """

    name = "egnot"
    coupling_kinds: ClassVar[frozenset[str]] = frozenset({"linear", "plan"})
    supports_unbalanced: ClassVar[bool] = False

    def __init__(
        self,
        *,
        cost: CostLike = "sqeuclidean",
        epsilon: float | None = 0.1,
        scale_cost: float | str = 1.0,
        tau_a: float = 1.0,
        tau_b: float = 1.0,
        coupling: LinearCoupling | Any | None = None,
        hidden_dims: Sequence[int] = (128, 128, 128),
        learning_rate: float = 1e-3,
        n_langevin_steps: int = 100,
        langevin_step: float | None = None,
        init_std: float | None = None,
        n_sample_steps: int | None = None,
        step_anneal: float = 1.0,
        replay_fraction: float = 0.0,
        buffer_size: int = 10_000,
        chunk_size: int = 50,
    ) -> None:
        self.config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.gw = None  # the QuadraticCoupling whose plan is linearised, across spaces
        if coupling is not None:  # a ready coupling object overrides cost, epsilon, scale_cost and tau_*
            kind = type(self).check_coupling(coupling)
            if kind == "linear":
                cost, epsilon, scale_cost = coupling.cost, coupling.epsilon, coupling.scale_cost
                tau_a, tau_b = coupling.tau_a, coupling.tau_b
                if isinstance(scale_cost, str) and scale_cost not in ("mean", "median", "max_cost"):
                    raise ValueError(
                        f"EgNOT fixes the cost scale for the whole population: the coupling's scale_cost must be a "
                        f"number, 'mean', 'median' or 'max_cost', got {scale_cost!r} (a per-batch ott scaling)."
                    )
            else:
                self.gw = check_gw_plan_coupling(coupling, "EgNOT")
                cost, epsilon, scale_cost = "sqeuclidean", self.gw.epsilon, 1.0  # C_lin is already scaled
        resolve_cost(cost)
        if epsilon is None or check_epsilon(epsilon) is None:
            raise ValueError("EgNOT needs an explicit `epsilon` > 0.")
        if check_tau("tau_a", tau_a) != 1.0 or check_tau("tau_b", tau_b) != 1.0:
            raise ValueError(f"EgNOT is balanced: tau_a and tau_b must be 1, got {tau_a} and {tau_b}; use GENOT.")
        check_population_scale_cost(scale_cost)
        self.epsilon, self.scale_cost = float(epsilon), scale_cost  # the problem solved (after any coupling)
        if not 0.0 < float(step_anneal) <= 1.0:
            raise ValueError(f"`step_anneal` must be in (0, 1], got {step_anneal}.")
        if not 0.0 <= float(replay_fraction) < 1.0:
            raise ValueError(f"`replay_fraction` must be in [0, 1), got {replay_fraction}.")
        for name in ("n_langevin_steps", "n_sample_steps", "chunk_size", "buffer_size"):
            if self.config[name] is not None and int(self.config[name]) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {self.config[name]}.")
        for name in ("langevin_step", "init_std", "learning_rate"):
            if self.config[name] is not None and not float(self.config[name]) > 0:
                raise ValueError(f"`{name}` must be > 0, got {self.config[name]}.")
        self.cost_fn = resolve_cost(cost)
        self.potential = Potential(tuple(hidden_dims), self.epsilon)
        self.optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate))
        self.loss_history: dict[str, np.ndarray] = {}

    # -- energy and sampler ----------------------------------------------------------------------
    # The data's statistics `stats` are arguments (traced in compiled functions shared by models of one
    # configuration); divisions by them are products with their reciprocal, which is what XLA made of the
    # divisions by the constants they replace (results equal earlier ones up to the last float32 bits).
    def _log_density(self, params, y: jax.Array, x: jax.Array, cond: jax.Array, stats: dict) -> jax.Array:
        """Unnormalised log pi(y | x) for each row: (f(y) - c(x, y) / s) / epsilon."""
        if self.gw is None:
            cost = jax.vmap(self.cost_fn)(x, y) * (1.0 / stats["cost_scale"])
        else:  # the GW plan's linearised cost, from its moments (traced statistics)
            cost = jax.vmap(partial(linearised_cost, self.gw, stats["gw"]))(x, y)
        return (self._potential(params, y, cond, stats) - cost) / self.epsilon

    def _potential(self, params, y: jax.Array, cond: jax.Array, stats: dict) -> jax.Array:
        """``f(y)`` of target-space cells (the network sees them standardised)."""
        return self.potential.apply(params, (y - stats["y_mean"]) * (1.0 / stats["y_scale"]), cond)

    def _chain_start(self, key: jax.Array, x: jax.Array, stats: dict, normal: Callable) -> jax.Array:
        """Chains' first states: noise around the target mean or, across spaces, draws of the subsample plan.

        Across spaces, ``y0`` is a subsample target cell ``y_l`` drawn with probability proportional to
        ``exp((g_l - C_lin(x, y_l)) / epsilon)``, the GW plan's entropic extension to ``x``. Chains started from noise
        stay in the cluster they first fall into, and a sharp plan between separate clusters is then learned and
        sampled wrongly (``translation.isometric``); Langevin steps only refine these draws. ``key`` is one key, or
        one per cell as in :meth:`_langevin`.
        """
        if "start" not in stats:
            return stats["y_mean"] + stats["init_std"] * normal(key, (x.shape[0], self.dims[1]))
        start = stats["start"]

        def logits(cells: jax.Array) -> jax.Array:
            z = (start["g"] - linearised_cost_matrix(self.gw, stats["gw"], cells, start["y"])) / self.epsilon
            return z - jnp.max(z, axis=-1, keepdims=True)

        if key.ndim:  # per-cell keys: a cell's rows are copies of it, so one row of logits serves all its chains
            per_cell = x.shape[0] // key.shape[0]
            cells = x.reshape(key.shape[0], per_cell, -1)[:, 0]
            idx = jax.vmap(lambda k, z: jax.random.categorical(k, z, shape=(per_cell,)))(key, logits(cells))
        else:
            idx = jax.random.categorical(key, logits(x))
        return start["y"][idx.reshape(-1)]

    def _langevin(
        self,
        params,
        key: jax.Array,
        x: jax.Array,
        cond: jax.Array,
        n_steps: int,
        stats: dict,
        y0: jax.Array | None = None,
    ) -> jax.Array:
        """Run one chain per row of ``x`` (a ``lax.scan``) from ``y0`` or fresh noise; return the final states.

        ``key`` is one key for all rows, or one key per cell (c,) whose rows (copies of the cell) are ``x``'s
        consecutive groups of ``len(x) // c`` rows: each cell's noise then comes from its own key, whatever else is
        in the batch.
        """
        d_y = self.dims[1]
        if key.ndim:  # per-cell keys: split and draw per cell, the cell axis last so the scan runs over steps
            split = jax.vmap(jax.random.split, in_axes=(0, None), out_axes=1)
            per_cell = (x.shape[0] // key.shape[0], d_y)

            def normal(keys, shape):
                return jax.vmap(lambda k: jax.random.normal(k, per_cell))(keys).reshape(shape)
        else:
            split, normal = jax.random.split, jax.random.normal
        k0, k_steps = split(key, 2)
        if y0 is None:
            y0 = self._chain_start(k0, x, stats, normal)
        grad_log_p = jax.grad(lambda y: jnp.sum(self._log_density(params, y, x, cond, stats)))
        # Geometric decay from eta to eta * step_anneal over the chain.
        etas = stats["step"] * float(self.config["step_anneal"]) ** (jnp.arange(n_steps) / max(n_steps - 1, 1))

        def step(y, inputs):
            k, eta = inputs
            y = y + 0.5 * eta * grad_log_p(y) + jnp.sqrt(eta) * normal(k, y.shape)
            return y, None

        y, _ = jax.lax.scan(step, y0, (split(k_steps, n_steps), etas))
        return y

    def _step(self, carry, data: TaskData, key: jax.Array, stats: dict | None = None, *, batch_size: int):
        params, opt_state, buffer = carry
        stats = self.stats if stats is None else stats  # the model's own unless passed (traced)
        k_batch, k_chain, k_noise, k_pick, k_put = jax.random.split(key, 5)
        batch = sample_batch(data, k_batch, batch_size)
        x, cond = batch.x, batch.condition
        y0 = self._chain_start(k_noise, x, stats, jax.random.normal)
        n_replay = int(round(self.config["replay_fraction"] * batch_size))
        if n_replay:  # restart some chains where earlier ones stopped, with their own source cells
            pick = jax.random.randint(k_pick, (n_replay,), 0, buffer["y"].shape[0])
            x, cond, y0 = (
                jnp.concatenate([buffer[k][pick], v[n_replay:]]) for k, v in zip("xcy", (x, cond, y0), strict=True)
            )
        y_model = jax.lax.stop_gradient(
            self._langevin(params, k_chain, x, cond, int(self.config["n_langevin_steps"]), stats, y0=y0)
        )
        if n_replay:
            put = jax.random.randint(k_put, (batch_size,), 0, buffer["y"].shape[0])
            buffer = {k: buffer[k].at[put].set(v) for k, v in zip("xcy", (x, cond, y_model), strict=True)}

        def loss_fn(params):
            return jnp.mean(self._potential(params, y_model, cond, stats)) - jnp.mean(
                self._potential(params, batch.y, batch.condition, stats)
            )

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        chain_norm = jnp.max(jnp.abs(y_model - stats["y_mean"])) * (1.0 / stats["init_std"])
        return (optax.apply_updates(params, updates), opt_state, buffer), {"loss": loss, "chain_spread": chain_norm}

    def _init_buffer(self, data: TaskData, key: jax.Array) -> dict[str, jax.Array]:
        """Replay buffer of (source cell, condition, chain state), started from data cells and the chains' starts."""
        if not self.config["replay_fraction"]:
            return {}
        size = int(self.config["buffer_size"])
        batch = sample_batch(data, key, size)
        y = self._chain_start(jax.random.fold_in(key, 1), batch.x, self.stats, jax.random.normal)
        return {"x": batch.x, "c": batch.condition, "y": y}

    # -- fitting ---------------------------------------------------------------------------------
    def _check_cost_dims(self, data: TaskData, n_tasks: int) -> None:
        """Raise unless the cost can be evaluated between a source and a target cell of these dimensions."""
        if self.gw is not None:
            if n_tasks > 1:
                raise NotImplementedError(
                    "EgNOT with a Gromov-Wasserstein coupling learns one (source, target) pair; fit one model per "
                    "condition, or use GENOT with conditions."
                )
            s = int(self.gw.n_shared)
            if min(self.dims[:2]) <= s:
                raise ValueError(
                    f"The QuadraticCoupling has n_shared={s} shared features, so source and target need more than "
                    f"{s} features each, got {self.dims[0]} and {self.dims[1]}."
                )
            return
        try:
            jax.eval_shape(self.cost_fn, data.x_raw[0], data.y_raw[0])
        except Exception as err:  # noqa: BLE001 - any failure means the cost cannot take these cells
            raise ValueError(
                f"The cost cannot be evaluated between a source cell ({self.dims[0]} features) and a target cell "
                f"({self.dims[1]} features): {err}. Across spaces, pass a callable cost c(x, y) or a "
                "Gromov-Wasserstein coupling."
            ) from err

    def _gw_curvature(self, gw_stats: dict, data: TaskData, key: jax.Array, n_pairs: int = 256) -> float:
        """Mean over random (source, target) pairs of the largest eigenvalue of the linearised cost's Hessian in y.

        The Langevin step is ``0.1 epsilon / curvature``: for the squared-Euclidean cost divided by ``s`` (curvature
        ``2 / s``) this is the default step of linear problems.
        """
        k1, k2 = jax.random.split(key)
        i = jax.random.randint(k1, (n_pairs,), 0, data.x_raw.shape[0])
        j = jax.random.randint(k2, (n_pairs,), 0, data.y_raw.shape[0])
        hessian = jax.vmap(jax.hessian(partial(linearised_cost, self.gw, gw_stats), argnums=1))
        top = jnp.linalg.eigvalsh(hessian(jnp.asarray(data.x_raw)[i], jnp.asarray(data.y_raw)[j]))[:, -1]
        curvature = float(jnp.mean(jnp.maximum(top, 0.0)))
        if not (np.isfinite(curvature) and curvature > 0):
            raise FloatingPointError("The linearised Gromov-Wasserstein cost has no positive curvature: check data.")
        return curvature

    def _cost_scale(self, data: TaskData, key: jax.Array) -> float:
        return population_cost_scale(self.cost_fn, data.x_raw, data.y_raw, self.scale_cost, key)

    def fit(
        self,
        source: np.ndarray | Sequence[np.ndarray],
        target: np.ndarray | Sequence[np.ndarray],
        *,
        condition: np.ndarray | None = None,
        n_iters: int = 2000,
        batch_size: int = 256,
        seed: int = 0,
        callback: Callable[[int, Any], None] | None = None,
    ) -> EgNOT:
        """Train the potential on source and target samples.

        Parameters
        ----------
        source, target
            Arrays (n, d_x) and (m, d_y), or equal-length lists of them (one pair per condition).
        condition
            (n_pairs, d_c) condition vector of each pair; required with several pairs.
        n_iters
            Training steps.
        batch_size
            Source and target cells per step (capped at the smallest population).
        seed
            Seed of initialisation and of every random draw.
        callback
            ``callback(iteration, (params, opt_state))`` after each chunk of steps.

        Returns
        -------
        The fitted model.
        """
        check_training_args(seed=seed, n_iters=n_iters, batch_size=batch_size)
        sources, targets, cond = as_tasks(source, target, condition)
        if int(n_iters) < 1 or int(batch_size) < 2:
            raise ValueError(f"Need n_iters >= 1 and batch_size >= 2, got {n_iters} and {batch_size}.")
        batch_size = int(min(batch_size, *(len(a) for a in sources + targets)))
        data = TaskData.from_tasks(sources, targets, cond)
        self.dims = (data.x_raw.shape[1], data.y_raw.shape[1], cond.shape[1])
        self._check_cost_dims(data, len(sources))
        key_scale, key_init, key_train = jax.random.split(jax.random.key(seed), 3)
        y_np = np.asarray(data.y_raw, np.float64)
        y_var = float(np.mean(y_np.var(0)))
        if self.gw is None:
            cost_scale = self._cost_scale(data, key_scale)
            step = self.config["langevin_step"] or 0.1 * min(cost_scale * self.epsilon / 2, y_var)
            gw_stats = {}
        else:  # solve the subsample's GW plan once; EgNOT learns the population plan of its linearised cost
            plan_state = jax.tree.map(lambda a: a[0], self.config["coupling"].fit(sources, targets, cond, seed))
            gw_stats = {"gw": linearisation_stats(self.gw, plan_state["x"], plan_state["y"], plan_state["plan"])}
            g = plan_target_potential(self.gw, gw_stats["gw"], plan_state["x"], plan_state["y"], plan_state["plan"])
            gw_stats["start"] = {"y": jnp.asarray(plan_state["y"], jnp.float32), "g": g}
            cost_scale = 1.0
            curvature = self._gw_curvature(gw_stats["gw"], data, key_scale)
            step = self.config["langevin_step"] or 0.1 * min(self.epsilon / curvature, y_var)
        self.stats = {
            "y_mean": jnp.asarray(y_np.mean(0), jnp.float32),
            "init_std": jnp.float32(self.config["init_std"] or np.sqrt(y_var)),
            "y_scale": jnp.float32(max(np.sqrt(y_var), 1e-8)),
            "step": jnp.float32(step),
            "cost_scale": jnp.float32(cost_scale),
            **gw_stats,
        }
        params = self.potential.init(key_init, jnp.zeros((1, self.dims[1])), jnp.zeros((1, self.dims[2])))
        chunk = int(self.config["chunk_size"])  # not capped at n_iters: fits of any length share one executable
        runner = compiled(  # shared by the models of this configuration and shapes; statistics are traced
            self,
            ("train", batch_size, chunk),
            lambda: make_chunk_runner(partial(self._template()._step, batch_size=batch_size), chunk),
        )
        (params, _, _), history = run_training(
            partial(runner, consts=(self.stats,)),
            (params, self.optimizer.init(params), self._init_buffer(data, key_scale)),
            data,
            n_iters=int(n_iters),
            chunk_size=chunk,
            seed=key_train,
            desc="EgNOT",
            callback=callback,
            hint="Langevin chains or energies became non-finite: try a smaller langevin_step or a larger epsilon.",
        )
        self.params, self.loss_history, self._fitted = params, history, True
        return self

    # -- inference -------------------------------------------------------------------------------
    def _sample_chunk(self, params, stats, x, cond, keys, n_samples, n_steps):
        """``n_samples`` chains' final states (c, n_samples, d_y) for each cell of a chunk (not jitted)."""
        xs, cs = jnp.repeat(x, n_samples, 0), jnp.repeat(cond, n_samples, 0)
        return self._langevin(params, keys, xs, cs, n_steps, stats).reshape(x.shape[0], n_samples, -1)

    def transport(
        self,
        x: np.ndarray,
        condition: np.ndarray | None = None,
        *,
        n_samples: int = 1,
        seed: int = 0,
        n_steps: int | None = None,
        chunk_cells: int = 1024,
    ) -> np.ndarray:
        """Sample ``y | x`` from the fitted energy model by Langevin dynamics.

        Parameters
        ----------
        x
            Source cells (n, d_x).
        condition
            Condition vector (d_c,) or (n, d_c), when fitted with conditions.
        n_samples
            Draws per cell.
        seed
            Seed of the chains; cell ``i`` uses ``fold_in(key, i)`` (as in GENOT), so results do not depend on
            chunking.
        n_steps
            Langevin steps (default: the model's ``n_sample_steps``).
        chunk_cells
            Cells sampled per compiled call.

        Returns
        -------
        Array (n, n_samples, d_y).
        """
        self._check_fitted()
        x, cond = self._validate_inputs(x, condition)
        steps = int(n_steps or self.config["n_sample_steps"] or 2 * self.config["n_langevin_steps"])
        sample_chunk = compiled(
            self, ("transport",), lambda: jax.jit(self._template()._sample_chunk, static_argnums=(5, 6))
        )  # shared by the models of this configuration; parameters and statistics are traced
        return sample_in_chunks(
            lambda xs, cs, ks: sample_chunk(self.params, self.stats, xs, cs, ks, int(n_samples), steps),
            x,
            cond,
            seed=seed,
            chunk_cells=chunk_cells,
            solver="EgNOT",
            hint="the Langevin chains diverged; use a smaller langevin_step or more steps.",
        )

    # -- persistence -----------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {"params": self.params, "dims": np.asarray(self.dims), "stats": self.stats}

    def _state_template(self) -> dict[str, Any]:
        dummy_y, dummy_c = jnp.zeros((1, self.dims[1])), jnp.zeros((1, self.dims[2]))
        stats = dict.fromkeys(("y_mean", "init_std", "y_scale", "step", "cost_scale"))
        if self.gw is not None:
            stats["gw"] = dict.fromkeys(STAT_KEYS)
            stats["start"] = dict.fromkeys(("y", "g"))
        return {"params": jax.eval_shape(self.potential.init, jax.random.key(0), dummy_y, dummy_c), "stats": stats}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.params = jax.tree.map(jnp.asarray, state["params"])
        self.dims = tuple(int(d) for d in state["dims"])
        self.stats = jax.tree.map(jnp.asarray, dict(state["stats"]))
