"""Displacement-sparse OT maps, both :class:`MapSolver` s.

:class:`SparseICNN`: ICNN maps whose displacement T(x) - x is penalised towards sparsity. :class:`EntropicElasticMap`:
the non-neural baseline, the entropic map of an elastic cost.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._settings import logger
from ..metrics import sliced_wasserstein
from ._base import (
    CouplingConvergenceWarning,
    MapSolver,
    as_float_array,
    check_positive_int,
    check_seed,
    check_training_args,
)
from ._compile_cache import compiled
from ._icnn import ICNN, gaussian_diagonal_init, negative_weight_penalty, project_nonnegative
from ._training import make_chunk_runner, run_training

PENALTIES = ("l1", "smoothed_l0", "stvs")
INITS = ("gaussian", "identity")


def sparsity_penalty(d: jax.Array, penalty: str, *, sigma: float = 1.0, gamma: float = 1.0) -> jax.Array:
    """Per-cell sparsity penalty of displacements ``d`` (n, G) -> (n,).

    ``"l1"``: ``sum |d_i|``; ``"smoothed_l0"``: ``sum 1 - exp(-d_i^2 / (2 sigma^2))``;
    ``"stvs"``: ``gamma^2 sum (s_i + 1/2 - exp(-2 s_i) / 2)``, ``s_i = asinh(|d_i| / (2 gamma))``.
    """
    if penalty == "l1":
        return jnp.sum(jnp.abs(d), axis=-1)
    if penalty == "smoothed_l0":
        return jnp.sum(1.0 - jnp.exp(-(d**2) / (2 * sigma**2)), axis=-1)
    if penalty == "stvs":
        s = jnp.arcsinh(jnp.abs(d) / (2 * gamma))
        return gamma**2 * jnp.sum(s + 0.5 - 0.5 * jnp.exp(-2 * s), axis=-1)
    raise ValueError(f"Unknown penalty {penalty!r}; choose from {PENALTIES}.")


class _Data(NamedTuple):
    x: jax.Array  # standardised source cells
    y: jax.Array  # standardised target cells


class _TrainState(NamedTuple):
    """Parameters and optimiser states of the two potentials (the optimiser states are ``None`` after ``load``)."""

    f_params: Any
    g_params: Any
    f_opt_state: Any
    g_opt_state: Any


def _gene_pairs(source: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    """Source and target cells as float32 (n, G) and (m, G) arrays of the same genes, >= 2 cells each, finite."""
    x, y = as_float_array(source, "source"), as_float_array(target, "target")
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"Source and target must be (n, G) with the same genes, got {x.shape} and {y.shape}.")
    for name, a in (("source", x), ("target", y)):
        if len(a) < 2 or not np.all(np.isfinite(a)):
            raise ValueError(f"The {name} needs >= 2 cells and finite values.")
    return x, y


class SparseICNN(MapSolver):
    """Neural OT map ``T = grad g`` (ICNN potentials, Makkuva et al. minimax) with a sparse displacement.

    ``g`` minimises ``mean[f(T(x)) - <x, T(x)>] + lam * mean S(T(x) - x)`` (``n_inner`` steps per ``f`` step);
    ``f`` minimises ``mean f(y) - mean f(T(x))``. Data are centred on the source mean and divided by one global
    scale; the penalty ``S`` is evaluated on displacements in the data's own units, so ``sigma``, ``gamma`` and
    ``threshold`` are in those units.

    Parameters
    ----------
    penalty
        ``"l1"``, ``"smoothed_l0"`` or ``"stvs"``.
    lam
        Penalty strength (per cell: the penalty is averaged over the batch).
    sigma
        Width of the smoothed l0 penalty.
    gamma
        Scale of the STVS penalty.
    hidden_dims
        ICNN widths.
    n_inner
        g steps per f step.
    learning_rate
        Adam learning rate of both networks.
    weight_penalty
        Strength of ``sum relu(-W)^2`` on g's non-negative weights.
    chunk_size
        Outer steps compiled into one call.
    init
        Starting map: ``"gaussian"``, the OT map between diagonal Gaussians fitted to source and target (per gene
        ``T(x) = sd_y / sd_x * (x - mean_x) + mean_y``; the inverse for ``f``); ``"identity"``, ``T(x) = x``.
        Either way both potentials carry a learned per-gene quadratic coefficient, so the map can expand or
        contract each gene.

    Notes
    -----
    A :class:`~nescot.solvers.MapSolver` with its own objective (it takes no coupling) and no conditions:
    :meth:`push` is the map, ``transport`` repeats it ``n_samples`` times.
    """

    name: ClassVar[str] = "sparse-icnn"  # the name its model files have always carried
    coupling_kinds: ClassVar[frozenset[str]] = frozenset()
    supports_conditions: ClassVar[bool] = False

    def __init__(
        self,
        *,
        penalty: str = "smoothed_l0",
        lam: float = 1.0,
        sigma: float = 1.0,
        gamma: float = 1.0,
        hidden_dims: tuple[int, ...] = (64, 64),
        n_inner: int = 5,
        learning_rate: float = 1e-3,
        weight_penalty: float = 1.0,
        chunk_size: int = 50,
        init: str = "gaussian",
    ) -> None:
        self.config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        if penalty not in PENALTIES:
            raise ValueError(f"Unknown penalty {penalty!r}; choose from {PENALTIES}.")
        if init not in INITS:
            raise ValueError(f"Unknown init {init!r}; choose from {INITS}.")
        for name, value in (("lam", lam), ("sigma", sigma), ("gamma", gamma)):
            if not (np.isfinite(value) and value >= (0 if name == "lam" else 1e-12)):
                raise ValueError(f"`{name}` must be {'>= 0' if name == 'lam' else '> 0'}, got {value}.")
        self.lam = float(lam)
        self.f, self.g = ICNN(tuple(hidden_dims)), ICNN(tuple(hidden_dims))
        self.optimizer = optax.adam(learning_rate)
        self.trajectory: list[dict[str, Any]] = []
        self.loss_history: dict[str, np.ndarray] = {}

    # -- maps ------------------------------------------------------------------------------------
    def _map(self, g_params, x: jax.Array) -> jax.Array:
        return jax.grad(lambda z: jnp.sum(self.g.apply(g_params, z)))(x)

    def _g_loss(self, g_params, f_params, x, lam, scale):
        t = self._map(g_params, x)
        d = (t - x) * scale  # displacement in data units
        pen = sparsity_penalty(d, self.config["penalty"], sigma=self.config["sigma"], gamma=self.config["gamma"])
        loss = jnp.mean(self.f.apply(f_params, t) - jnp.sum(x * t, axis=-1)) + lam * jnp.mean(pen)
        return loss + self.config["weight_penalty"] * negative_weight_penalty(g_params)

    def _step(self, carry, data: _Data, key: jax.Array, scale=None, *, batch_size: int):
        (f_params, g_params, f_opt, g_opt), lam = carry  # a _TrainState and lam
        scale = self.scale if scale is None else scale  # the data's scale, traced in shared compiled steps
        keys = jax.random.split(key, self.config["n_inner"] + 2)

        def g_step(i, state):
            g_params, g_opt = state
            x = data.x[jax.random.randint(keys[i], (batch_size,), 0, data.x.shape[0])]
            grads = jax.grad(self._g_loss)(g_params, f_params, x, lam, scale)
            updates, g_opt = self.optimizer.update(grads, g_opt, g_params)
            return optax.apply_updates(g_params, updates), g_opt

        g_params, g_opt = jax.lax.fori_loop(0, self.config["n_inner"], g_step, (g_params, g_opt))
        x = data.x[jax.random.randint(keys[-2], (batch_size,), 0, data.x.shape[0])]
        y = data.y[jax.random.randint(keys[-1], (batch_size,), 0, data.y.shape[0])]
        t = jax.lax.stop_gradient(self._map(g_params, x))

        def f_loss(f_params):
            return jnp.mean(self.f.apply(f_params, y)) - jnp.mean(self.f.apply(f_params, t))

        f_value, grads = jax.value_and_grad(f_loss)(f_params)
        updates, f_opt = self.optimizer.update(grads, f_opt, f_params)
        f_params = project_nonnegative(optax.apply_updates(f_params, updates))
        g_value = self._g_loss(g_params, f_params, x, lam, scale)
        # the carry keeps its pytree type (scan and fori_loop need the same structure in and out)
        return (_TrainState(f_params, g_params, f_opt, g_opt), lam), {"loss": g_value, "loss_f": f_value}

    # -- fitting ---------------------------------------------------------------------------------
    def _train(self, n_iters: int, seed_key: jax.Array, start: int, desc: str, callback=None) -> None:
        carry = (self._train_state, jnp.float32(self.lam))
        (self._train_state, _), history = run_training(
            self._runner, carry, self._data, n_iters=n_iters, chunk_size=self._chunk, seed=seed_key,
            desc=desc, start_iter=start, callback=callback,
            hint="Try a smaller learning_rate or lam, or fewer n_inner steps.",
        )  # fmt: skip
        for k, v in history.items():
            self.loss_history[k] = np.concatenate([self.loss_history.get(k, np.zeros(0)), v])

    def _evaluate(self, threshold: float) -> dict[str, float]:
        d = self.displacement(self._eval_x)
        dims = np.sum(np.abs(d) > threshold, axis=1)
        sw = sliced_wasserstein(self._eval_x + d, self._eval_y, seed=0)
        return {"mean_dim": float(dims.mean()), "q3_dim": float(np.quantile(dims, 0.75)), "sliced_wasserstein": sw}

    def fit(
        self,
        source: np.ndarray,
        target: np.ndarray,
        *,
        condition: np.ndarray | None = None,
        n_iters: int = 2000,
        batch_size: int = 256,
        seed: int = 0,
        target_dim: float | None = None,
        threshold: float = 1.0,
        block_iters: int | None = None,
        lam_growth: float = 1.5,
        max_growth_blocks: int = 20,
        t0: float = 1.0,
        t_min: float = 0.5,
        cooling: float = 0.95,
        callback: Callable[[int, Any], None] | None = None,
    ) -> SparseICNN:
        """Fit the map from ``source`` cells to ``target`` cells (both (n, G), same genes).

        With ``target_dim``, ``lam`` is adapted after an initial ``n_iters`` steps: grown by ``lam_growth`` per
        block of ``block_iters`` steps until the mean displacement dimensionality (genes moved by more than
        ``threshold``) is at most ``target_dim`` (should a growth block raise the dimensionality, as happens
        where the penalty destabilises the minimax, that block is undone and ``lam`` shrinks by ``lam_growth``
        per block instead), then annealed: temperature ``T`` from ``t0`` down to
        ``t_min`` (times ``cooling`` per block), proposals ``lam * (1 - U(0, r))`` with
        ``r = max(0.01, exp(-3 (1 - T)))``, accepted when feasible; the most faithful feasible state (lowest
        sliced Wasserstein distance to the target) is kept. Every block is recorded in ``self.trajectory``.
        ``callback(iteration, (state, lam))`` is called after each chunk of steps.

        Parameters
        ----------
        source, target
            Source and target cells, (n, G) and (m, G).
        condition
            Must be ``None``: the model takes no conditions (``ValueError`` otherwise).
        n_iters, batch_size, seed
            Training steps (before any adaptation of ``lam``), cells per batch and seed.
        target_dim, threshold
            Target mean number of genes per cell moved by more than ``threshold`` (adapts ``lam``; ``None``: keep
            ``lam``); the threshold, in the data's units, is also used for the trajectory's metrics.
        block_iters, lam_growth, max_growth_blocks, t0, t_min, cooling
            Settings of the adaptive search (see above); ``block_iters`` defaults to ``n_iters // 4``.
        callback
            Called after each chunk of training steps.

        Returns
        -------
        The fitted model.
        """
        self._refuse_condition(condition)
        check_training_args(seed=seed, n_iters=n_iters, batch_size=batch_size)
        x, y = _gene_pairs(source, target)
        if target_dim is not None and not target_dim >= 0:
            raise ValueError(f"`target_dim` must be >= 0, got {target_dim}.")
        if target_dim is not None and self.lam == 0:
            raise ValueError("Adaptive lam (`target_dim`) needs a starting `lam` > 0: lam = 0 cannot be scaled.")
        self._build(x.shape[1], y.shape[1], 0)  # dims key the shared compiled functions
        self.centre = x.mean(0)
        self.scale = float(np.sqrt(np.mean((np.concatenate([x, y]) - self.centre) ** 2)) + 1e-8)
        self._data = _Data(jnp.asarray((x - self.centre) / self.scale), jnp.asarray((y - self.centre) / self.scale))
        rng = np.random.default_rng(seed)
        self._eval_x = x[rng.choice(len(x), min(len(x), 512), replace=False)]
        self._eval_y = y[rng.choice(len(y), min(len(y), 512), replace=False)]
        key_init, key_train = jax.random.split(jax.random.key(seed))
        kf, kg = jax.random.split(key_init)
        dummy = jnp.zeros((1, x.shape[1]))
        f_params, g_params = project_nonnegative(self.f.init(kf, dummy)), self.g.init(kg, dummy)
        if self.config["init"] == "gaussian":
            g_params = gaussian_diagonal_init(g_params, np.asarray(self._data.x), np.asarray(self._data.y))
            f_params = gaussian_diagonal_init(f_params, np.asarray(self._data.y), np.asarray(self._data.x))
        self._train_state = _TrainState(
            f_params, g_params, self.optimizer.init(f_params), self.optimizer.init(g_params)
        )
        batch_size = int(min(batch_size, len(x), len(y)))
        self._chunk = int(self.config["chunk_size"])  # not capped at n_iters: fits of any length share one executable
        runner = compiled(  # shared by the models of this configuration, traced from one without data
            self,
            ("train", batch_size, self._chunk),
            lambda: make_chunk_runner(partial(self._template()._step, batch_size=batch_size), self._chunk),
        )
        self._runner = partial(runner, consts=(np.float32(self.scale),))
        self.loss_history, self.trajectory = {}, []
        self._fitted = True
        step = 0

        def record(phase: str, temperature: float | None = None) -> dict[str, Any]:
            metrics = self._evaluate(threshold)
            feasible = target_dim is None or metrics["mean_dim"] <= target_dim
            entry = {"phase": phase, "iteration": step, "lam": self.lam, "accepted": feasible, **metrics}
            entry["temperature"] = np.nan if temperature is None else temperature
            self.trajectory.append(entry)
            return entry

        self._train(int(n_iters), key_train, step, "SparseICNN", callback)
        step += int(n_iters)
        metrics = record("initial")
        if target_dim is None:
            return self
        block = int(block_iters or max(1, n_iters // 4))
        grown, factor = 0, lam_growth
        while metrics["mean_dim"] > target_dim:
            if grown == max_growth_blocks:
                raise RuntimeError(
                    f"lam changed {grown} times to {self.lam:.3g} without reaching a mean dimensionality <= "
                    f"{target_dim} (now {metrics['mean_dim']:.1f}); raise max_growth_blocks or target_dim, or start "
                    "from another lam."
                )
            before = (metrics, self._train_state, self.lam)
            self.lam *= factor
            self._train(block, key_train, step, f"SparseICNN lam={self.lam:.3g}", callback)
            step += block
            grown += 1
            metrics = record("grow" if factor > 1 else "shrink")
            if factor > 1 and metrics["mean_dim"] > before[0]["mean_dim"]:
                # A stronger penalty moved more genes: the minimax is unstable at these lam (measured for STVS:
                # 99 genes at lam 0.01, 446 at 0.1), so go back one block and weaken the penalty instead. Once:
                # a weaker penalty may first move more genes for a block or two (measured: 38 -> 52 -> 42 -> 34).
                metrics, self._train_state, self.lam = before
                factor = 1.0 / lam_growth
        best = (metrics["sliced_wasserstein"], self._train_state, self.lam)
        current = (self._train_state, self.lam)
        temperature = t0
        while temperature > t_min:
            r = max(0.01, float(np.exp(-3.0 * (1.0 - temperature))))
            self._train_state, self.lam = current[0], current[1] * (1.0 - rng.uniform(0.0, r))
            self._train(block, key_train, step, f"SparseICNN T={temperature:.2f}", callback)
            step += block
            metrics = record("anneal", temperature)
            if metrics["accepted"]:
                current = (self._train_state, self.lam)
                if metrics["sliced_wasserstein"] < best[0]:
                    best = (metrics["sliced_wasserstein"], self._train_state, self.lam)
            temperature *= cooling
        _, self._train_state, self.lam = best
        logger.info("Adaptive lam: kept lam=%.4g (sliced Wasserstein %.4g).", self.lam, best[0])
        return self

    # -- inference -------------------------------------------------------------------------------
    def _push_std(self, g_params, x):
        """``T(x)`` of standardised cells, compiled once per configuration (the map reads no data)."""
        fn = compiled(self, ("push",), lambda: jax.jit(self._template()._map))
        return fn(g_params, x)

    def push(self, x: np.ndarray) -> np.ndarray:
        """Map cells: ``T(x)`` (n, G) in the data's units.

        Raises
        ------
        FloatingPointError
            If the map gives non-finite values (a diverged training).
        """
        self._check_fitted()
        x, _ = self._validate_inputs(x, None)
        g_params = self._train_state.g_params
        out = [
            np.asarray(self._push_std(g_params, (x[i : i + 4096] - self.centre) / self.scale))
            for i in range(0, len(x), 4096)
        ]  # chunks bound the memory of the map's gradient
        t = np.concatenate(out) * self.scale + self.centre
        if not np.all(np.isfinite(t)):
            raise FloatingPointError("SparseICNN produced non-finite values; the training diverged.")
        return t

    # -- persistence -----------------------------------------------------------------------------
    # The file layout is that of the files SparseICNN wrote before it was a MapSolver, so those still load:
    # state {"params": {"f", "g"}, "centre", "scale", "lam"}, extra {"trajectory"}.
    def _get_state(self) -> dict[str, Any]:
        return {
            "params": {"f": self._train_state.f_params, "g": self._train_state.g_params},
            "centre": np.asarray(self.centre),
            "scale": np.float32(self.scale),
            "lam": np.float32(self.lam),  # the adapted lam
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        centre = np.asarray(state["centre"])
        if centre.ndim != 1:
            raise ValueError(f"'state/centre' has shape {centre.shape}, expected (n_genes,).")
        params = jax.tree.map(jnp.asarray, state["params"])
        self._train_state = _TrainState(params["f"], params["g"], None, None)  # optimiser states are not saved
        self.centre, self.scale, self.lam = centre, float(state["scale"]), float(state["lam"])
        self._build(centre.shape[0], centre.shape[0], 0)

    def _state_template(self) -> dict[str, Any]:
        n_genes = self.dims[0]
        params = jax.eval_shape(self.f.init, jax.random.key(0), jnp.zeros((1, n_genes)))
        scalar = jax.ShapeDtypeStruct((), jnp.float32)
        centre = jax.ShapeDtypeStruct((n_genes,), jnp.float32)
        return {"params": {"f": params, "g": params}, "centre": centre, "scale": scalar, "lam": scalar}

    def _get_extra(self) -> dict[str, Any]:
        return {"trajectory": self.trajectory}

    def _set_extra(self, extra: dict[str, Any]) -> None:
        trajectory = extra.get("trajectory", [])
        self.trajectory = trajectory if isinstance(trajectory, list) else []


ENTROPIC_PENALTIES = ("l1", "stvs")


def _elastic_cost(penalty: str, lam: float, gamma: float):
    """Build ott's elastic cost ``|z|^2 / 2 + lam * tau(z)``, ``tau`` the l1 norm or the STVS of scale ``gamma``."""
    from ott.geometry import costs, regularizers

    reg = regularizers.L1() if penalty == "l1" else regularizers.STVS(gamma=gamma)
    return costs.RegTICost(reg, lam=lam)


def _elastic_push(source, target, f, g, epsilon, z, *, cost):
    """Entropic map of ``z`` from dual vectors ``f``, ``g`` of a Sinkhorn solution between ``source`` and ``target``.

    Rebuilds what ott 0.6's ``SinkhornOutput.to_dual_potentials`` returns (the potential functions are
    c-transforms of the dual vectors over the cells, with uniform weights) from stored arrays, so a saved model
    needs no ott output object.
    """
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem, potentials

    geom = pointcloud.PointCloud(source, target, cost_fn=cost, epsilon=epsilon)
    prob = linear_problem.LinearProblem(geom)
    f_fn = prob.potential_fn_from_dual_vec(g, epsilon=epsilon, axis=1)
    g_fn = prob.potential_fn_from_dual_vec(f, epsilon=epsilon, axis=0)
    return potentials.DualPotentials(f_fn, g_fn, cost_fn=cost).transport(z)


class EntropicElasticMap(MapSolver):
    """Non-neural baseline: the entropic map of the elastic cost ``|z|^2 / 2 + lam * tau(z)`` (ott ``RegTICost``).

    ``tau`` is ott's ``L1`` or ``STVS`` regulariser (Cuturi, Klein and Ablin, 2023), so displacements shrink
    towards sparse ones. ``fit`` solves one Sinkhorn problem between all source and all target cells: small data
    only (memory grows with n_source x n_target x n_genes).

    Parameters
    ----------
    penalty
        ``"l1"`` or ``"stvs"``.
    lam
        Weight of ``tau`` in the cost (the elastic weight), as :class:`SparseICNN`'s ``lam`` weighs its penalty.
    gamma
        Scale of the STVS penalty, as in :class:`SparseICNN` (unused for ``"l1"``).
    epsilon
        Entropic regularisation; ``None``: ott's default (a fraction of the mean cost).
    max_iterations
        Sinkhorn iterations at most.

    Notes
    -----
    A :class:`~nescot.solvers.MapSolver` with its own objective (it takes no coupling) and no conditions. A model
    file stores the cells and Sinkhorn's dual vectors, from which :meth:`push` rebuilds the map exactly.
    """

    name: ClassVar[str] = "entropic-map"
    coupling_kinds: ClassVar[frozenset[str]] = frozenset()
    supports_conditions: ClassVar[bool] = False

    def __init__(
        self,
        *,
        penalty: str = "l1",
        lam: float = 1.0,
        gamma: float = 1.0,
        epsilon: float | None = None,
        max_iterations: int = 5000,
    ) -> None:
        self.config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        if penalty not in ENTROPIC_PENALTIES:
            raise ValueError(f"The entropic baseline supports the 'l1' and 'stvs' penalties, got {penalty!r}.")
        if not (np.isfinite(lam) and lam >= 0):
            raise ValueError(f"`lam` must be >= 0, got {lam}.")
        if not (np.isfinite(gamma) and gamma > 0):
            raise ValueError(f"`gamma` must be > 0, got {gamma}.")
        if epsilon is not None and not (np.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"`epsilon` must be > 0 or None, got {epsilon}.")
        check_positive_int(max_iterations, "max_iterations")
        self.lam = float(lam)
        self.cost = _elastic_cost(penalty, self.lam, float(gamma))
        self.trajectory: list[dict[str, Any]] = []  # nothing is adapted; kept for the interface SparseICNN has
        self.loss_history: dict[str, np.ndarray] = {}
        self.converged: bool | None = None

    def fit(
        self,
        source: np.ndarray,
        target: np.ndarray,
        *,
        condition: np.ndarray | None = None,
        n_iters: int | None = None,
        batch_size: int | None = None,
        seed: int = 0,
    ) -> EntropicElasticMap:
        """Solve the entropic problem between all ``source`` and ``target`` cells (both (n, G), same genes).

        Parameters
        ----------
        source, target
            Source and target cells, (n, G) and (m, G).
        condition
            Must be ``None``: the model takes no conditions (``ValueError`` otherwise).
        n_iters, batch_size
            Ignored (accepted so every solver is fitted alike): Sinkhorn runs on all cells, up to
            ``max_iterations`` iterations.
        seed
            Checked and ignored: the solution is deterministic.

        Returns
        -------
        The fitted model. A :class:`~nescot.solvers._base.CouplingConvergenceWarning` is emitted if Sinkhorn did not
        converge within ``max_iterations``.
        """
        from ott.geometry import pointcloud
        from ott.problems.linear import linear_problem
        from ott.solvers.linear import sinkhorn

        self._refuse_condition(condition)
        check_seed(seed)
        x, y = _gene_pairs(source, target)
        geom = pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y), cost_fn=self.cost, epsilon=self.config["epsilon"])
        out = sinkhorn.Sinkhorn(max_iterations=self.config["max_iterations"])(linear_problem.LinearProblem(geom))
        self.converged = bool(out.converged)
        if not self.converged:
            warnings.warn(
                f"EntropicElasticMap: Sinkhorn did not converge in {self.config['max_iterations']} iterations; raise "
                "`epsilon` or `max_iterations`, or rescale the data.",
                CouplingConvergenceWarning,
                stacklevel=2,
            )
        self._set_state(
            {"source": x, "target": y, "f": np.asarray(out.f), "g": np.asarray(out.g), "epsilon": geom.epsilon}
        )
        self._fitted = True
        return self

    def push(self, x: np.ndarray) -> np.ndarray:
        """Map cells: the entropic map ``T(x)`` (n, G), ``x - grad h*(grad f(x))`` for the elastic cost ``h``."""
        self._check_fitted()
        x, _ = self._validate_inputs(x, None)
        fn = compiled(self, ("push",), lambda: jax.jit(partial(_elastic_push, cost=self._template().cost)))
        n_target, n_genes = self._target.shape
        chunk = max(1, 2**24 // max(1, n_target * n_genes))  # the cost's gradients are (chunk, n_target, n_genes)
        args = (self._source, self._target, self._f, self._g, self._epsilon)
        out = [np.asarray(fn(*args, jnp.asarray(x[i : i + chunk]))) for i in range(0, len(x), chunk)]
        return np.concatenate(out) if out else np.zeros((0, n_genes), np.float32)

    # -- persistence -----------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {
            "source": np.asarray(self._source),
            "target": np.asarray(self._target),
            "f": np.asarray(self._f),
            "g": np.asarray(self._g),
            "epsilon": np.asarray(self._epsilon),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        source, target = np.asarray(state["source"]), np.asarray(state["target"])
        f, g, epsilon = np.asarray(state["f"]), np.asarray(state["g"]), np.asarray(state["epsilon"], np.float32)
        if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
            raise ValueError(f"'state/source' {source.shape} and 'state/target' {target.shape} are not (n, G), (m, G).")
        if f.shape != source.shape[:1] or g.shape != target.shape[:1] or epsilon.shape != ():
            raise ValueError(
                f"'state/f' {f.shape}, 'state/g' {g.shape} and 'state/epsilon' {epsilon.shape} do not match the cells."
            )
        self._source, self._target = jnp.asarray(source), jnp.asarray(target)
        self._f, self._g, self._epsilon = jnp.asarray(f), jnp.asarray(g), jnp.asarray(epsilon)
        self._build(source.shape[1], target.shape[1], 0)

    def _state_template(self) -> None:
        return None  # the shapes depend on the number of cells; _set_state checks they agree

    def _get_extra(self) -> dict[str, Any]:
        return {"converged": self.converged}

    def _set_extra(self, extra: dict[str, Any]) -> None:
        self.converged = extra.get("converged")


def entropic_elastic_map(
    x: np.ndarray, y: np.ndarray, *, penalty: str = "l1", gamma: float = 1.0, epsilon: float | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """Return the entropic map ``x -> T(x)`` of the elastic cost ``|z|^2 / 2 + gamma * tau(z)`` (deprecated).

    .. deprecated::
        Use :class:`EntropicElasticMap`: ``entropic_elastic_map(x, y, penalty=p, gamma=g, epsilon=e)`` is
        ``EntropicElasticMap(penalty=p, lam=g, epsilon=e).fit(x, y).push``. Here ``gamma`` is the elastic weight
        (the class's ``lam``) and the STVS scale is fixed at 1 (the class's ``gamma``).
    """
    warnings.warn(
        "`entropic_elastic_map` is deprecated and will be removed; use `EntropicElasticMap(penalty=..., lam=gamma)"
        ".fit(x, y).push` (its `lam` is this function's `gamma`, the elastic weight; its `gamma` is the STVS scale).",
        FutureWarning,
        stacklevel=2,
    )
    return EntropicElasticMap(penalty=penalty, lam=gamma, gamma=1.0, epsilon=epsilon).fit(x, y).push
