"""The solver contract: the interface shared by every solver, its save / load, and the shared input checks.

Every solver is a :class:`ConditionalSolver`: a model of the conditional law ``y | x`` of a transport plan,
fitted by ``fit(source, target, *, condition, n_iters, batch_size, seed)`` and sampled by
``transport(x, condition, *, n_samples, seed) -> (n, n_samples, d_target)``. Solvers that learn from a
coupling take it as the constructor argument ``coupling`` and say which kinds they accept in
``coupling_kinds``; the ``tl`` functions build the coupling from the user's cost, epsilon and marginals and hand it
over. A :class:`MapSolver` is the deterministic case (``y = T(x)``). docs/adding_a_solver.md walks through it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import jax
import numpy as np

from ._model_file import ModelFileError, check_state_like, config_to_json, read_model_file, write_model_file

_MAX_ABS = 1e15  # squared differences of larger values overflow float32 costs (max ~3.4e38)


class CouplingConvergenceWarning(UserWarning):
    """The mini-batch couplings of a training rarely or never met their tolerance."""


def check_seed(seed: Any, name: str = "seed") -> int:
    """Return ``seed`` as an int; ``TypeError`` naming the parameter unless it is an integer."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"`{name}` must be an integer, got {seed!r} ({type(seed).__name__}).")
    return int(seed)


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum``; ``TypeError`` / ``ValueError`` naming the parameter otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return int(value)


def check_training_args(
    *, seed: Any, n_iters: Any, batch_size: Any, resume: bool = False, checkpoint_dir: Any = None
) -> None:
    """Validate the common ``fit`` arguments before any set-up or training."""
    check_seed(seed)
    check_positive_int(n_iters, "n_iters")
    check_positive_int(batch_size, "batch_size", 2)
    if resume and checkpoint_dir is None:
        raise ValueError("`resume=True` needs a `checkpoint_dir` to resume from.")


def as_float_array(a: Any, what: str) -> np.ndarray:
    """``np.asarray(a, float32)`` with an error naming ``what`` (e.g. strings in an object array)."""
    try:
        return np.asarray(a, dtype=np.float32)
    except (TypeError, ValueError) as err:
        kind = getattr(getattr(a, "dtype", None), "name", type(a).__name__)
        raise TypeError(f"{what} must hold numbers, but it cannot be converted to float ({kind}: {err}).") from None


def check_magnitude(a: np.ndarray, what: str) -> None:
    """Raise if values are so large that costs between cells overflow float32."""
    if a.size and float(np.max(np.abs(a))) > _MAX_ABS:
        raise ValueError(
            f"{what} has values up to {float(np.max(np.abs(a))):.3g}: costs between cells would overflow float32 "
            "and the couplings could not converge. Rescale the data (e.g. log1p, standardise or a PCA)."
        )


def warn_if_not_converged(history: dict[str, np.ndarray], desc: str, minimum: float = 0.1) -> None:
    """Warn (:class:`CouplingConvergenceWarning`) if fewer than ``minimum`` of the steps' couplings converged."""
    converged = history.get("coupling_converged")
    if converged is None or not len(converged):
        return
    fraction = float(np.mean(converged))
    if fraction < minimum:
        import warnings

        warnings.warn(
            f"{desc}: the mini-batch couplings converged on {fraction:.0%} of the training steps, so the model learned "
            "from approximate plans. Check the data's scale (standardise or use a PCA), raise `epsilon`, use "
            "scale_cost='mean', or relax the marginals (tau_a, tau_b < 1).",
            CouplingConvergenceWarning,
            stacklevel=3,
        )


def as_tasks(
    source: np.ndarray | Sequence[np.ndarray],
    target: np.ndarray | Sequence[np.ndarray],
    condition: np.ndarray | None,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Normalise ``fit`` inputs to lists of (source, target) arrays and a (n_tasks, d_cond) array."""
    sources = [source] if isinstance(source, np.ndarray | jax.Array) else list(source)
    targets = [target] if isinstance(target, np.ndarray | jax.Array) else list(target)
    sources = [as_float_array(s, f"source[{k}]") for k, s in enumerate(sources)]
    targets = [as_float_array(t, f"target[{k}]") for k, t in enumerate(targets)]
    if len(sources) != len(targets):
        raise ValueError(f"Got {len(sources)} source arrays but {len(targets)} target arrays.")
    for name, arrays in (("source", sources), ("target", targets)):
        for k, a in enumerate(arrays):
            if a.ndim != 2:
                raise ValueError(f"{name}[{k}] must be 2-D (cells x features), got shape {a.shape}.")
            if a.shape[0] < 2:
                raise ValueError(f"{name}[{k}] has {a.shape[0]} cell(s); at least 2 are needed.")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name}[{k}] contains NaN or infinite values.")
            check_magnitude(a, f"{name}[{k}]")
        if len({a.shape[1] for a in arrays}) != 1:
            shapes = [a.shape for a in arrays]
            raise ValueError(f"All {name} arrays must have the same number of features, got {shapes}.")
    if condition is None:
        if len(sources) > 1:
            raise ValueError("Several (source, target) pairs need a `condition` array with one row per pair.")
        condition = np.zeros((1, 0), np.float32)
    condition = np.atleast_2d(as_float_array(condition, "`condition`"))
    if condition.shape[0] != len(sources):
        raise ValueError(f"`condition` has {condition.shape[0]} rows for {len(sources)} (source, target) pairs.")
    if not np.all(np.isfinite(condition)):
        raise ValueError("`condition` contains NaN or infinite values.")
    return sources, targets, condition


class ConditionalSolver(abc.ABC):
    """A fitted model of a conditional law y | x (an entropic OT plan), sampled by ``transport``.

    Subclasses implement ``fit``, ``transport``, ``_get_state`` / ``_set_state`` and keep every
    constructor argument in ``self.config`` so a saved model can be rebuilt. Their class attributes tell the
    ``tl`` functions what they can do:

    - ``name``: the name they are registered and saved under (:func:`~nescot.solvers.register_solver`);
    - ``coupling_kinds``: the kinds of ``coupling`` the constructor accepts (see
      :func:`~nescot.solvers.coupling_kind`): ``"linear"`` (an entropic problem between cells of one space),
      ``"quadratic"`` (Gromov-Wasserstein / fused, across spaces), ``"plan"`` (one plan solved before training on a
      subsample), ``"global"`` (another model of the population plan fitted before training), ``"custom"`` (any
      other callable mini-batch coupling); empty for solvers with their own objective, which take no coupling;
    - ``supports_unbalanced``: whether unbalanced couplings (``tau_a`` or ``tau_b`` < 1) are learned, with
      per-cell masses (:meth:`mass`);
    - ``supports_conditions``: whether several (source, target) pairs with a ``condition`` are learned jointly;
    - ``solves_batch_plans``: whether linear and quadratic couplings are solved on each training batch (GENOT's
      mini-batch plans, whose bias ``tl.map_perturbation`` diagnoses), rather than describing the problem whose
      population plan the solver learns (EgNOT).
    """

    name: ClassVar[str]
    coupling_kinds: ClassVar[frozenset[str]] = frozenset()
    supports_unbalanced: ClassVar[bool] = False
    supports_conditions: ClassVar[bool] = True
    solves_batch_plans: ClassVar[bool] = False
    dims: tuple[int, int, int]  # (d_x, d_y, d_c), set by fit
    config: dict[str, Any]
    loss_history: dict[str, np.ndarray]

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` has run (or a fitted model was loaded)."""
        return getattr(self, "_fitted", False)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"This {type(self).__name__} is not fitted yet; call `fit` first.")

    @classmethod
    def check_coupling(cls, coupling: Any) -> str:
        """Return the kind of ``coupling``; ``TypeError`` / ``ValueError`` naming the solver if it cannot use it."""
        from ._global_couplings import coupling_kind

        kind = coupling_kind(coupling)
        if kind not in cls.coupling_kinds:
            takes = sorted(cls.coupling_kinds) or ["none (it has its own objective)"]
            raise TypeError(
                f"{cls.__name__} cannot learn from a {kind} coupling ({type(coupling).__name__}); it takes: "
                f"{', '.join(takes)}."
            )
        if not getattr(coupling, "is_balanced", True) and not cls.supports_unbalanced:
            raise ValueError(
                f"{cls.__name__} is balanced: the coupling's tau_a and tau_b must be 1, got "
                f"{getattr(coupling, 'tau_a', '?')} and {getattr(coupling, 'tau_b', '?')}; use GENOT for unbalanced "
                "problems."
            )
        return kind

    @abc.abstractmethod
    def fit(self, source, target, *, condition=None, **kwargs) -> ConditionalSolver:
        """Fit the model on samples of the source and target populations."""

    @abc.abstractmethod
    def transport(self, x, condition=None, *, n_samples: int = 1, seed: int = 0) -> np.ndarray:
        """Draw ``n_samples`` target samples per source cell: array (n, n_samples, d_target)."""

    def _build(self, dim_x: int, dim_y: int, dim_c: int) -> None:
        """Set up what depends on the data's dimensions (networks, optimiser); here only ``dims``."""
        self.dims = (dim_x, dim_y, dim_c)

    def _template(self) -> ConditionalSolver:
        """Return a model of this configuration and dimensions without data, parameters or statistics.

        Compiled functions are traced from it, not from ``self``, and shared by every model of the same
        configuration (see :mod:`nescot.solvers._compile_cache`): whatever depends on the data is a traced argument.
        """
        template = type(self)(**self.config)
        template._build(*self.dims)
        return template

    def _validate_inputs(self, x, condition) -> tuple[np.ndarray, np.ndarray]:
        """Check cells (n, d_x) and conditions against ``self.dims``; return float32 arrays (n, d_x), (n, d_c)."""
        dim_x, _, dim_c = self.dims
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != dim_x:
            raise ValueError(f"`x` must have shape (n, {dim_x}), got {x.shape}.")
        if not np.all(np.isfinite(x)):
            raise ValueError("`x` contains NaN or infinite values.")
        if dim_c and condition is None:
            raise ValueError(f"This model was fitted with conditions; pass `condition` of length {dim_c}.")
        cond = np.zeros((0,), np.float32) if condition is None else np.asarray(condition, np.float32)
        cond = np.broadcast_to(cond, (len(x), cond.shape[-1]) if cond.ndim < 2 else cond.shape)
        if cond.shape != (len(x), dim_c):
            raise ValueError(f"`condition` must have shape ({dim_c},) or ({len(x)}, {dim_c}), got {cond.shape}.")
        return x, np.ascontiguousarray(cond)

    def predict(self, x, condition=None, *, n_samples: int = 32, seed: int = 0) -> np.ndarray:
        """Conditional mean E[y | x] (barycentric projection), estimated from ``n_samples`` draws.

        Parameters
        ----------
        x
            Source cells, (n, d_source).
        condition
            Condition vector (d_cond,) for all cells or (n, d_cond), if the model was fitted with conditions.
        n_samples
            Number of conditional draws averaged per cell.
        seed
            Seed of the draws.

        Returns
        -------
        Array (n, d_target).
        """
        return self.transport(x, condition, n_samples=n_samples, seed=seed).mean(axis=1)

    def mass(self, x, condition=None) -> np.ndarray | None:
        """Learned relative mass of source cells (mean 1 over the training source), ``None`` if balanced."""
        return None

    # -- persistence -------------------------------------------------------------------------------
    @abc.abstractmethod
    def _get_state(self) -> dict[str, Any]:
        """Pytree of arrays needed for inference (parameters and data statistics)."""

    @abc.abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None:
        """Restore the state returned by ``_get_state`` (after ``__init__(**config)``)."""

    def save(self, path: str | Path) -> Path:
        """Save the fitted model to one file: a JSON configuration and msgpack arrays (data only).

        The format is described in :mod:`nescot.solvers._model_file` and the docs ("Model files"):
        reading a file never runs code from it. Parameters are stored bit for bit.

        Raises
        ------
        TypeError
            If the configuration holds something that is not data (a function, a lambda, an unknown object).
        """
        self._check_fitted()
        config = config_to_json(self.config, type(self).__name__)
        return write_model_file(
            path, self.name, config, self._get_state(), history=self.loss_history, extra=self._get_extra()
        )

    @classmethod
    def load(cls, path: str | Path) -> ConditionalSolver:
        """Load a model written by :meth:`save`; its predictions equal the saved model's.

        On the base class, the solver class is taken from the file. Reading never runs code from the file.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ModelFileError
            A ``ValueError`` naming the file, if it is not a complete model file of this format version or
            holds another model type.
        """
        from ._registry import registered_solvers

        path = Path(path)
        content = read_model_file(path)
        name, solvers = content["solver"], registered_solvers()
        if name not in solvers:
            raise ModelFileError(f"{path} holds a {name!r} model, which is not a registered solver {sorted(solvers)}.")
        solver_cls = solvers[name]
        if cls is not ConditionalSolver and not issubclass(solver_cls, cls):
            raise ModelFileError(f"{path} holds a {name!r} model, not a {cls.__name__} ({cls.name!r}).")
        try:
            model = solver_cls(**content["config"])
        except (TypeError, ValueError) as err:
            raise ModelFileError(
                f"{path}: the stored configuration is not valid for {solver_cls.__name__} ({err})."
            ) from None
        state = content["state"]
        try:
            model._set_state(state)
            template = model._state_template()
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise ModelFileError(
                f"{path}: the stored state is incomplete or malformed ({type(err).__name__}: {err})."
            ) from None
        if template is not None:
            check_state_like(model._get_state(), template, path)
        model.loss_history = {k: np.asarray(v) for k, v in content["history"].items()}
        model._set_extra(content["extra"])
        model._fitted = True
        return model

    def _get_extra(self) -> dict[str, Any]:
        """Further JSON data saved with the model (e.g. a training trajectory); none by default."""
        return {}

    def _set_extra(self, extra: dict[str, Any]) -> None:
        """Restore what :meth:`_get_extra` returned."""
        del extra  # nothing to restore by default

    def _state_template(self) -> dict[str, Any] | None:
        """Shapes of the state expected after ``_set_state`` (to validate loaded files); ``None`` skips the check."""
        init = getattr(self, "_init_params", None)
        if init is None or not hasattr(self, "params"):
            return None
        params = jax.eval_shape(init, jax.random.key(0))
        return {"params": params}


class MapSolver(ConditionalSolver):
    """A solver whose conditional law is a point mass: each source cell goes to one target point ``T(x)``.

    Subclasses implement :meth:`push` (the map) besides ``fit`` and the state methods; ``transport`` repeats
    ``T(x)`` ``n_samples`` times, so map solvers run through every tool that samples conditional laws.
    """

    supports_conditions: ClassVar[bool] = False

    @abc.abstractmethod
    def push(self, x: np.ndarray) -> np.ndarray:
        """Return the map ``T(x)``: array (n, d_target) in the target's units."""

    def _refuse_condition(self, condition: Any) -> None:
        """Raise a ``ValueError`` naming the solver unless ``condition`` is ``None`` (a map takes none)."""
        if condition is not None:
            raise ValueError(
                f"{type(self).__name__} learns one map between two populations and takes no `condition`; fit one "
                "model per condition."
            )

    def transport(self, x, condition=None, *, n_samples: int = 1, seed: int = 0) -> np.ndarray:
        """``T(x)`` repeated ``n_samples`` times: array (n, n_samples, d_target) (``seed`` is unused)."""
        self._refuse_condition(condition)
        t = self.push(x)
        return np.repeat(t[:, None], check_positive_int(n_samples, "n_samples"), axis=1)

    def predict(self, x, condition=None, *, n_samples: int = 32, seed: int = 0) -> np.ndarray:
        """``T(x)`` (the conditional mean of a point mass): array (n, d_target)."""
        self._refuse_condition(condition)
        return self.push(x)

    def displacement(self, x: np.ndarray) -> np.ndarray:
        """``T(x) - x`` (n, d), for maps within one space."""
        return self.push(x) - np.asarray(x, np.float32)
