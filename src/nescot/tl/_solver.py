"""The one path from a ``tl`` function to a solver: look it up in the registry, hand it the coupling, build it.

Every tool builds the coupling it needs from its own arguments (a linear problem for ``map_perturbation``, a
(fused) Gromov-Wasserstein one for ``translate_modalities``, none for ``sparse_displacement``'s map solvers) and
calls :func:`build_solver`, which checks, before any training, that the solver can learn from that coupling.
"""

from __future__ import annotations

from typing import Any

from ..solvers import ConditionalSolver, get_solver


def solver_class(solver: str, tool: str, *, map_only: bool = False) -> type[ConditionalSolver]:
    """Return the registered class of ``solver``; ``ValueError`` naming the tool if it cannot serve it."""
    from ..solvers import MapSolver, registered_solvers

    cls = get_solver(solver)
    if map_only and not issubclass(cls, MapSolver):
        maps = sorted(n for n, c in registered_solvers().items() if issubclass(c, MapSolver))
        raise ValueError(f"{tool} needs a map solver (a MapSolver): {solver!r} is not one; choose from {maps}.")
    return cls


def build_solver(
    cls: type[ConditionalSolver], coupling: Any | None, solver_kwargs: dict[str, Any] | None, *, tool: str
) -> ConditionalSolver:
    """Instantiate ``cls(coupling=coupling, **solver_kwargs)`` (no ``coupling`` for solvers that take none).

    Raises
    ------
    ValueError
        If ``solver_kwargs`` holds ``coupling`` (the tool builds it), or the solver cannot learn from
        ``coupling`` (its kind, or an unbalanced one for a balanced solver); the message names the tool.
    """
    kwargs = dict(solver_kwargs or {})
    if "coupling" in kwargs:
        raise ValueError(
            f"{tool} builds the coupling from its own arguments: pass `coupling=` to {tool}, not in `solver_kwargs`."
        )
    if coupling is None:
        return cls(**kwargs)
    try:
        cls.check_coupling(coupling)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{tool}(solver={cls.name!r}): {err}") from None
    return cls(coupling=coupling, **kwargs)


def coupling_label(model: ConditionalSolver) -> str:
    """Name the coupling a model was trained on, for ``.uns`` (``"none"`` for solvers without one)."""
    coupling = getattr(model, "coupling", None)
    return "none" if coupling is None else type(coupling).__name__
