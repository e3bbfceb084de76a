"""GENOT: generative entropic neural OT by conditional flow matching on mini-batch couplings."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._base import ConditionalSolver, as_tasks, check_training_args, warn_if_not_converged
from ._checkpoint import checkpoint_chunk_size, describe_config, train_with_checkpoints
from ._compile_cache import compiled
from ._costs import CostLike
from ._couplings import Coupling, LinearCoupling, relative_marginals, sample_conditional_indices
from ._data import HostFeed, has_sources, make_fed_runner
from ._global_couplings import GlobalCoupling, make_coupling
from ._networks import ConditionalVelocityField, MassNetwork, default_embed_dim
from ._ode import check_ode_solver, integrate
from ._sharding import constrain_batch, data_mesh, feed_placement, replicate
from ._tasks import Batch, Standardizer, TaskData, sample_batch
from ._training import make_chunk_runner
from ._transport import sample_in_chunks

# cells per population a global coupling is fitted to when the data are read from disk (random rows)
_GLOBAL_FIT_CELLS = 100_000
# what `_sample_chunk` reads of the configuration (with the dimensions): models that differ only in their coupling,
# cost, marginals or training settings share one compiled sampler
_VELOCITY_FIELD_SETTINGS = ("hidden_dims", "embed_dim", "n_frequencies")


class GENOT(ConditionalSolver):
    """Generative entropic neural optimal transport (Klein et al., 2023).

    Learns the conditional law ``pi_eps(y | x)`` of an entropic OT plan with conditional flow
    matching: each training step draws ``n_samples_per_source`` targets per source cell from a coupling and
    regresses the straight-path velocity from Gaussian noise to those targets. With the paper's mini-batch
    coupling (``coupling="minibatch"``) each step solves an entropic problem on the batch with ott-jax and draws
    from the plan's rows; unbalanced plans also train two re-weighting networks on the plan's relative
    marginals. A global coupling (``"global"``, ``"mixture"``, ``"egnot"``) is instead fitted once to the whole
    data set before training, and removes the mini-batch plan's bias at small epsilon in many dimensions
    (docs/methods.md explains which to use).

    Parameters
    ----------
    cost
        Cost of the linear coupling: ``"sqeuclidean"`` (``||x - y||^2``), ``"euclidean"``,
        ``"cosine"``, an ott ``CostFn`` or a callable ``c(x, y)``.
    epsilon
        Entropic regularisation, for the cost divided by ``scale_cost``.
    scale_cost
        ``1.0`` (absolute ``epsilon``) or an ott scaling such as ``"mean"`` (relative ``epsilon``).
    tau_a, tau_b
        Marginal relaxations in (0, 1]; below 1 the source / target masses are learned.
    coupling
        Where training pairs come from. ``"minibatch"``: the entropic plan of each training batch (Klein et al.,
        2023). ``"mixture"``: a Gaussian-mixture model of the population plan's potential, fitted once
        (:class:`~nescot.solvers.MixturePotentialCoupling`, quadratic cost only). ``"egnot"``: draws of a fitted
        EgNOT model (:class:`~nescot.solvers.EgNOTCoupling`, any cost). ``"global"``: the global coupling chosen
        by the benchmarks (currently ``"mixture"``). The global ones are balanced: unbalanced problems need
        ``"minibatch"``. Or a ready coupling object (a quadratic one, a configured global one), which overrides
        ``cost``, ``epsilon``, ``scale_cost``, ``tau_*``.
    n_samples_per_source
        Conditional draws ``k`` per source cell and step.
    repair_noise
        Re-pair the ``k`` noise draws of a source with its ``k`` targets by a small OT problem.
    hidden_dims, embed_dim, n_frequencies
        Velocity network: MLP widths, embedding width, time-encoding frequencies. ``embed_dim=None`` takes
        ``max(128, 2 * d)``, ``d`` the larger of the source and target dimensions: each input is embedded by one
        layer, and one as narrow as the data loses what the flow needs (at d = 128, widening it from 128 to 256
        took GENOT from 8.1 to 6.0% cBW2-UVP on the paper-epsilon-0.1 mixture pair, docs/benchmarks.md).
    mass_hidden_dims
        Widths of the re-weighting networks.
    learning_rate
        Adam learning rate (gradients clipped to global norm 1).
    ode_solver, ode_steps
        Default integrator for :meth:`transport`: fixed-step ``"euler"``, ``"heun"``, ``"midpoint"``,
        ``"tsit5"`` with ``ode_steps`` steps, or adaptive ``"dopri5"``.
    chunk_size
        Training steps compiled into one call (progress bar refresh interval).
    """

    name = "genot"
    coupling_kinds = frozenset({"linear", "quadratic", "global", "plan", "custom"})
    supports_unbalanced = True
    solves_batch_plans = True

    def __init__(
        self,
        *,
        cost: CostLike = "sqeuclidean",
        epsilon: float | None = 0.1,
        scale_cost: float | str = "mean",
        tau_a: float = 1.0,
        tau_b: float = 1.0,
        coupling: str | Coupling | GlobalCoupling = "minibatch",
        n_samples_per_source: int = 4,
        repair_noise: bool = False,
        hidden_dims: Sequence[int] = (256, 256, 256),
        embed_dim: int | None = None,
        n_frequencies: int = 16,
        mass_hidden_dims: Sequence[int] = (64, 64),
        learning_rate: float = 1e-3,
        ode_solver: str = "heun",
        ode_steps: int = 16,
        chunk_size: int = 100,
    ) -> None:
        self.config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        if coupling is None:  # earlier releases' way of asking for the default
            coupling = "minibatch"
        self.coupling = make_coupling(
            coupling, cost=cost, epsilon=epsilon, scale_cost=scale_cost, tau_a=tau_a, tau_b=tau_b
        )
        self.is_global = type(self).check_coupling(self.coupling) in ("global", "plan")
        if int(n_samples_per_source) < 1:
            raise ValueError(f"`n_samples_per_source` must be >= 1, got {n_samples_per_source}.")
        if not float(learning_rate) > 0:
            raise ValueError(f"`learning_rate` must be > 0, got {learning_rate}.")
        check_ode_solver(ode_solver, ode_steps)
        self.n_samples_per_source = int(n_samples_per_source)
        self.unbalanced = not getattr(self.coupling, "is_balanced", True)
        self.loss_history: dict[str, np.ndarray] = {}
        self._runner: Callable | None = None

    # -- networks --------------------------------------------------------------------------------
    def _build(self, dim_x: int, dim_y: int, dim_c: int) -> None:
        cfg = self.config
        self.dims = (dim_x, dim_y, dim_c)
        embed_dim = cfg["embed_dim"] or default_embed_dim(dim_x, dim_y)
        self.vf = ConditionalVelocityField(dim_y, tuple(cfg["hidden_dims"]), embed_dim, cfg["n_frequencies"])
        # relative masses of source and target cells (eta and xi in the paper; the model file keeps those keys)
        self.source_mass_net = MassNetwork(tuple(cfg["mass_hidden_dims"]))
        self.target_mass_net = MassNetwork(tuple(cfg["mass_hidden_dims"]))
        self.optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(cfg["learning_rate"]))

    def _scalers(self, scalers: tuple[Standardizer, Standardizer] | None) -> tuple[Standardizer, Standardizer]:
        # the model's own statistics when none are passed (steps traced from the model itself, as benchmarks do)
        return (self.x_scaler, self.y_scaler) if scalers is None else scalers

    def _init_params(self, key: jax.Array) -> dict[str, Any]:
        dim_x, dim_y, dim_c = self.dims
        k_vf, k_eta, k_xi = jax.random.split(key, 3)
        one = jnp.zeros((1, 1))
        params = {"vf": self.vf.init(k_vf, one, jnp.zeros((1, dim_y)), jnp.zeros((1, dim_x)), jnp.zeros((1, dim_c)))}
        if self.unbalanced:
            params["eta"] = self.source_mass_net.init(k_eta, jnp.zeros((1, dim_x)), jnp.zeros((1, dim_c)))
            params["xi"] = self.target_mass_net.init(k_xi, jnp.zeros((1, dim_y)), jnp.zeros((1, dim_c)))
        return params

    # -- training --------------------------------------------------------------------------------
    def _pair_noise_with_targets(self, key: jax.Array, z: jax.Array, y: jax.Array) -> jax.Array:
        """Re-pair each source's k noises with its k targets by a small entropic OT (straighter paths)."""
        small = LinearCoupling("sqeuclidean", epsilon=0.01, scale_cost="mean")

        def one(key, z_i, y_i):
            plan = small(y_i, z_i).plan  # rows: targets, columns: noises
            return z_i[sample_conditional_indices(key, plan, 1)[:, 0]]

        return jax.vmap(one)(jax.random.split(key, z.shape[0]), z, y)

    def _pairs(self, coupling_state, batch: Batch, key: jax.Array, scalers: tuple[Standardizer, Standardizer]):
        """Standardised sources (B, d_x), k targets per source (B, k, d_y), and the batch plan (or ``None``)."""
        x_scaler, y_scaler = scalers
        if self.is_global:
            x, y1 = self.coupling.draw(coupling_state, key, batch, self.n_samples_per_source)
            return x_scaler.in_trace(x), y_scaler.in_trace(y1), None
        coupled = self.coupling(batch.x, batch.y)
        picks = sample_conditional_indices(key, coupled.plan, self.n_samples_per_source)  # (B, k)
        return x_scaler.in_trace(batch.x), y_scaler.in_trace(batch.y)[picks], coupled

    def _train_step(self, carry, batch: Batch, key: jax.Array, scalers: tuple[Standardizer, ...] | None = None):
        """One optimiser step on a batch: couple, draw k targets per source, regress the flow velocity.

        ``scalers`` are the (source, target) standardisers, traced; ``None`` uses the model's own.
        """
        params, opt_state, coupling_state = carry
        scalers = self._scalers(scalers)
        keys = jax.random.split(key, 4)
        x, y1, coupled = self._pairs(coupling_state, batch, keys[0], scalers)
        z = jax.random.normal(keys[1], y1.shape)
        k = self.n_samples_per_source
        if self.config["repair_noise"] and k > 1:
            z = self._pair_noise_with_targets(keys[2], z, y1)
        t = jax.random.uniform(keys[3], y1.shape[:2] + (1,))
        x_t, u = (1.0 - t) * z + t * y1, y1 - z
        d_y = y1.shape[-1]
        src, cond = jnp.repeat(x, k, axis=0), jnp.repeat(batch.condition, k, axis=0)

        def loss_fn(params):
            v = self.vf.apply(params["vf"], t.reshape(-1, 1), x_t.reshape(-1, d_y), src, cond)
            losses = {"loss": jnp.mean(jnp.sum((v - u.reshape(-1, d_y)) ** 2, axis=-1))}
            if self.unbalanced:
                mass_a, mass_b = relative_marginals(coupled.plan)
                source_mass = self.source_mass_net.apply(params["eta"], x, batch.condition)
                losses["loss_source_mass"] = jnp.mean((source_mass - mass_a) ** 2)
                y = scalers[1].in_trace(batch.y)
                target_mass = self.target_mass_net.apply(params["xi"], y, batch.condition)
                losses["loss_target_mass"] = jnp.mean((target_mass - mass_b) ** 2)
            return sum(losses.values()), losses

        grads, losses = jax.grad(loss_fn, has_aux=True)(params)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        converged = jnp.float32(1.0) if coupled is None else coupled.converged.astype(jnp.float32)
        return (params, opt_state, coupling_state), {**losses, "coupling_converged": converged}

    def _step(self, carry, data: TaskData, key: jax.Array, scalers=None, *, batch_size: int, mesh=None):
        k_batch, k_train = jax.random.split(key)
        batch = constrain_batch(sample_batch(data, k_batch, batch_size), mesh)
        return self._train_step(carry, batch, k_train, scalers)

    def _fed_step(self, carry, batch: tuple, key: jax.Array, scalers=None, *, mesh=None):
        # same key split as `_step`, so fed and in-memory steps draw the same noise for the same batch
        task = batch[3][0] if len(batch) > 3 else 0  # one task per step: every cell carries its index
        batch = constrain_batch(Batch(*batch[:3], task), mesh)
        return self._train_step(carry, batch, jax.random.split(key)[1], scalers)

    def _fit_coupling(self, sources: list, targets: list, cond: np.ndarray, seed: int) -> Any:
        """Fit a global coupling to the training populations (nothing to fit for a mini-batch one)."""
        if not self.is_global:
            return ()
        as_float = [np.asarray(a, np.float32) for a in sources], [np.asarray(a, np.float32) for a in targets]
        return self.coupling.fit(*as_float, cond, seed)

    def _fingerprint(self, seed: int, batch_size: int, fed: bool) -> dict[str, Any]:
        """Describe what a checkpoint must share with this run to be resumed (data: through its statistics)."""
        return {
            "solver": self.name, "config": describe_config(self.config), "seed": int(seed),
            "batch_size": int(batch_size), "dims": list(self.dims), "fed": fed,
            "x_scaler": np.append(self.x_scaler.mean, self.x_scaler.scale),
            "y_scaler": np.append(self.y_scaler.mean, self.y_scaler.scale),
        }  # fmt: skip

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
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        devices: int | Sequence[jax.Device] | None = None,
    ) -> GENOT:
        """Train on source and target samples.

        Parameters
        ----------
        source, target
            Arrays (n, d_x) and (m, d_y), or equal-length lists of them: one (source, target) pair per
            condition, trained jointly (each step draws one pair). Any of them may instead be a row source
            (e.g. :func:`nescot.io.rep_source` of a backed AnnData): batches are then read on the host,
            prefetched on a background thread, and nothing else is loaded into memory.
        condition
            (n_pairs, d_c) condition vector of each pair; required with several pairs.
        n_iters
            Training steps.
        batch_size
            Source and target cells per step (capped at the smallest population).
        seed
            Seed of initialisation and of every random draw; the same seed gives the same model.
        callback
            ``callback(iteration, (params, opt_state))`` after each chunk of steps.
        checkpoint_dir, checkpoint_every
            Write the training state every ``checkpoint_every`` steps (default: every chunk) and at the end,
            atomically, into ``checkpoint_dir`` (the two newest are kept).
        resume
            Continue from the newest checkpoint in ``checkpoint_dir``: the result equals an uninterrupted run.
        devices
            Data-parallel training: ``None`` uses all devices (``jax.devices()``, every process's after
            ``jax.distributed.initialize``) when ``batch_size`` divides among them, an int the first that
            many, or a list of devices. Batches are split over devices, parameters replicated, and each
            step's coupling is solved on the whole batch (the result does not depend on the device count).

        Returns
        -------
        The fitted model.
        """
        check_training_args(
            seed=seed, n_iters=n_iters, batch_size=batch_size, resume=resume, checkpoint_dir=checkpoint_dir
        )  # before any set-up
        feed = HostFeed.from_inputs(source, target, condition, seed=seed) if has_sources(source, target) else None
        if feed is None:
            sources, targets, cond = as_tasks(source, target, condition)
            dim_x, dim_y, max_batch = sources[0].shape[1], targets[0].shape[1], min(map(len, sources + targets))
        else:  # out-of-core: batches read on the host, prefetched on a thread
            cond, (dim_x, dim_y, _), max_batch = feed.condition, feed.dims, feed.max_batch_size()
        if isinstance(self.coupling, LinearCoupling) and dim_x != dim_y:
            raise ValueError(
                f"A linear coupling needs source and target in the same space, got {dim_x} and "
                f"{dim_y} features; use a quadratic (Gromov-Wasserstein) coupling across spaces."
            )
        if int(n_iters) < 1 or int(batch_size) < 2:
            raise ValueError(f"Need n_iters >= 1 and batch_size >= 2, got {n_iters} and {batch_size}.")
        batch_size = int(min(batch_size, max_batch))
        mesh = data_mesh(devices, batch_size)
        # Not capped at n_iters: the steps a call runs are traced, so fits of any length share one executable.
        chunk = int(min(self.config["chunk_size"], feed.max_chunk(batch_size) if feed else np.inf))
        chunk = checkpoint_chunk_size(chunk, checkpoint_every)
        if feed is None:
            data = TaskData.from_tasks(sources, targets, cond)
            self.x_scaler, self.y_scaler = Standardizer.fit(data.x_raw), Standardizer.fit(data.y_raw)
            data = replicate(data, mesh)
        else:
            data, (x_stats, y_stats) = feed, feed.standardizers()
            self.x_scaler, self.y_scaler = Standardizer(*x_stats), Standardizer(*y_stats)
            feed.configure(batch_size, chunk, int(n_iters), *feed_placement(mesh, batch_size))
        self._build(dim_x, dim_y, cond.shape[1])
        runner = self._training_runner(batch_size, chunk, mesh, fed=feed is not None)
        # the statistics are traced arguments, not constants: the runner is shared with other models
        runner = partial(runner, consts=(replicate((self.x_scaler, self.y_scaler), mesh),))
        key_init, key_train = jax.random.split(jax.random.key(seed))
        params = self._init_params(key_init)
        if self.is_global and feed is not None:  # read from disk: fit the coupling to random rows of each population
            sources, targets = feed.subsample(_GLOBAL_FIT_CELLS)
        coupling_state = self._fit_coupling(sources, targets, cond, seed) if self.is_global else ()
        carry = replicate((params, self.optimizer.init(params), coupling_state), mesh)
        with feed or contextlib.nullcontext():  # stops the reader thread however training ends
            (params, _, _), history = train_with_checkpoints(
                runner, carry, data, n_iters=int(n_iters), chunk_size=chunk, seed=key_train, desc="GENOT",
                callback=callback, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume,
                fingerprint=self._fingerprint(seed, batch_size, feed is not None),
                restore=partial(replicate, mesh=mesh),
            )  # fmt: skip
        params = jax.device_get(params) if mesh is not None else params
        warn_if_not_converged(history, "GENOT")
        self.params = params
        self.loss_history = history
        self.condition_dim = cond.shape[1]
        self._fitted = True
        return self

    def _training_runner(self, batch_size: int, chunk: int, mesh, *, fed: bool) -> Callable:
        """Return the compiled chunk of training steps, shared by the models of this configuration and shapes."""

        def build() -> Callable:
            template = self._template()  # not `self`: the cache must hold neither this model nor its data
            if fed:
                return make_fed_runner(partial(template._fed_step, mesh=mesh), chunk)
            return make_chunk_runner(partial(template._step, batch_size=batch_size, mesh=mesh), chunk)

        return compiled(self, ("train", int(batch_size), int(chunk), mesh, fed), build)

    # -- inference -------------------------------------------------------------------------------
    def _prepare(self, x, condition) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        x, cond = self._validate_inputs(x, condition)
        return self.x_scaler(x), cond

    def _sample_chunk(self, vf_params, x, cond, keys, n_samples, solver, n_steps):
        """``n_samples`` draws (c, n_samples, d_y) of each cell of a chunk, in standardised units (not jitted).

        Only the velocity field's parameters are passed: a model's mass networks play no part in sampling.
        """
        d_y = self.dims[1]
        z0 = jax.vmap(lambda k: jax.random.normal(k, (n_samples, d_y)))(keys).reshape(-1, d_y)
        src, c = jnp.repeat(x, n_samples, 0), jnp.repeat(cond, n_samples, 0)

        def velocity(t, z):
            return self.vf.apply(vf_params, jnp.full((z.shape[0], 1), t), z, src, c)

        return integrate(velocity, z0, solver=solver, n_steps=n_steps).reshape(x.shape[0], n_samples, d_y)

    def transport(
        self,
        x: np.ndarray,
        condition: np.ndarray | None = None,
        *,
        n_samples: int = 1,
        seed: int = 0,
        ode_solver: str | None = None,
        ode_steps: int | None = None,
        chunk_cells: int = 1024,
    ) -> np.ndarray:
        """Sample the learned conditional law ``y | x``.

        Parameters
        ----------
        x
            Source cells (n, d_x).
        condition
            Condition vector (d_c,) or (n, d_c), when fitted with conditions.
        n_samples
            Draws per cell.
        seed
            Seed of the latent noise; cell ``i`` uses ``fold_in(key, i)``, so results do not depend on chunking.
        ode_solver, ode_steps
            Override the model's integrator (e.g. ``"dopri5"`` for adaptive steps).
        chunk_cells
            Cells integrated per compiled call (memory bound).

        Returns
        -------
        Array (n, n_samples, d_y) in the target's units.
        """
        x_std, cond = self._prepare(x, condition)
        solver = ode_solver or self.config["ode_solver"]
        steps = int(ode_steps or self.config["ode_steps"])
        check_ode_solver(solver, steps)
        sample_chunk = compiled(
            self,
            ("transport",),
            lambda: jax.jit(self._template()._sample_chunk, static_argnums=(4, 5, 6)),
            settings=_VELOCITY_FIELD_SETTINGS,
        )  # shared by the models of this velocity field, whatever their coupling; parameters are traced
        samples = sample_in_chunks(
            lambda xs, cs, ks: sample_chunk(self.params["vf"], xs, cs, ks, int(n_samples), solver, steps),
            x_std,
            cond,
            seed=seed,
            chunk_cells=chunk_cells,
            solver="GENOT",
            hint="the model or the integrator diverged.",
        )
        return self.y_scaler.inverse(samples)

    def mass(self, x: np.ndarray, condition: np.ndarray | None = None) -> np.ndarray | None:
        """Learned relative mass of source cells (``eta(x)``), ``None`` for a balanced model."""
        if not self.unbalanced:
            return None
        x_std, cond = self._prepare(x, condition)
        apply = compiled(self, ("source_mass",), lambda: jax.jit(self._template().source_mass_net.apply))
        return np.asarray(apply(self.params["eta"], x_std, cond))

    def target_mass(self, y: np.ndarray, condition: np.ndarray | None = None) -> np.ndarray | None:
        """Learned relative mass of target cells (``xi(y)``), ``None`` for a balanced model."""
        if not self.unbalanced:
            return None
        self._check_fitted()
        y = self.y_scaler(np.asarray(y, np.float32))
        cond = np.zeros((len(y), self.dims[2]), np.float32) if condition is None else condition
        cond = np.broadcast_to(np.asarray(cond, np.float32), (len(y), self.dims[2]))
        apply = compiled(self, ("target_mass",), lambda: jax.jit(self._template().target_mass_net.apply))
        return np.asarray(apply(self.params["xi"], y, cond))

    # -- persistence -----------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "dims": np.asarray(self.dims),
            "x_scaler": self.x_scaler._asdict(),
            "y_scaler": self.y_scaler._asdict(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._build(*(int(d) for d in state["dims"]))
        self.params = jax.tree.map(jnp.asarray, state["params"])
        self.x_scaler = Standardizer(**{k: np.asarray(v) for k, v in state["x_scaler"].items()})
        self.y_scaler = Standardizer(**{k: np.asarray(v) for k, v in state["y_scaler"].items()})
        self.condition_dim = self.dims[2]
