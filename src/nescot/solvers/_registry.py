"""The solver registry: the one place where ``tl`` functions and :meth:`ConditionalSolver.load` find solver classes.

A solver is registered under its class attribute ``name``, which is also the name written into its model files.
Aliases are other names accepted by :func:`get_solver` (e.g. the short names ``sparse_displacement`` has always
taken).
"""

from __future__ import annotations

from ._base import ConditionalSolver

_SOLVERS: dict[str, type[ConditionalSolver]] = {}
_ALIASES: dict[str, str] = {}


def register_solver(name: str, cls: type[ConditionalSolver], *, aliases: tuple[str, ...] = ()) -> None:
    """Register a solver class so that ``tl`` functions accept ``solver=name`` and model files of it load.

    Parameters
    ----------
    name
        The class's ``name`` attribute (model files record it).
    cls
        A subclass of :class:`~nescot.solvers.ConditionalSolver` (or :class:`~nescot.solvers.MapSolver`).
    aliases
        Further names :func:`get_solver` accepts for it.

    Raises
    ------
    TypeError
        If ``cls`` is not a solver class.
    ValueError
        If ``name`` differs from ``cls.name``, or an alias is a registered solver's name.
    """
    if not (isinstance(cls, type) and issubclass(cls, ConditionalSolver)):
        raise TypeError(f"Only ConditionalSolver subclasses can be registered, got {cls!r}.")
    if getattr(cls, "name", None) != name:
        raise ValueError(
            f"{cls.__name__}.name is {getattr(cls, 'name', None)!r}: register it under that name (model files record "
            f"it), not {name!r}."
        )
    for alias in aliases:
        if alias in _SOLVERS:
            raise ValueError(f"Alias {alias!r} is the name of a registered solver.")
    _SOLVERS[name] = cls
    _ALIASES.update(dict.fromkeys(aliases, name))


def get_solver(name: str) -> type[ConditionalSolver]:
    """Return the solver class registered under ``name`` (or one of its aliases)."""
    if not isinstance(name, str):
        raise TypeError(f"`solver` must be the name of a registered solver, got {name!r}.")
    resolved = _ALIASES.get(name, name)
    if resolved not in _SOLVERS:
        raise ValueError(f"Unknown solver {name!r}; choose from {sorted(_SOLVERS)}.")
    return _SOLVERS[resolved]


def registered_solvers() -> dict[str, type[ConditionalSolver]]:
    """Return a copy of the registry: ``{name: class}``."""
    return dict(_SOLVERS)
