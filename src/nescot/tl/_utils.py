"""AnnData access and validation shared by the ``tl`` functions.

Everything here raises before any training starts; results are written in one place
(:func:`write_results`) only after all computations succeeded, so a failed call leaves
``adata`` untouched.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .._settings import logger
from ..io._lazy import LazyRows, is_lazy, row_chunks


def as_group_list(groups: Any, name: str) -> list[Any]:
    """One group (a string or a number) or a list of groups, as a list."""
    if isinstance(groups, str) or not isinstance(groups, Iterable):
        return [groups]
    if isinstance(groups, Mapping):
        raise TypeError(f"`{name}` must be a group or a list of groups, got a {type(groups).__name__}.")
    return list(groups)


def check_groupby(groupby: Any) -> str:
    """``groupby`` must name one column of ``.obs``."""
    if not isinstance(groupby, str):
        raise TypeError(f"`groupby` must be the name of one column of adata.obs (a string), got {groupby!r}.")
    return groupby


def get_group_masks(
    adata: AnnData, groupby: str, groups: Sequence[Any], *, min_cells: int = 2
) -> dict[str, np.ndarray]:
    """Boolean masks of ``adata.obs[groupby] == g`` for each group, validated, keyed by ``str(g)``.

    Groups may be strings or numbers: a number also matches a numeric column by value (``0`` matches ``0.0``).

    Raises
    ------
    TypeError
        ``groupby`` is not a string.
    KeyError
        ``groupby`` is not a column of ``adata.obs``, or a group is not one of its values.
    ValueError
        A group has fewer than ``min_cells`` cells, or a group is named twice.
    """
    check_groupby(groupby)
    if groupby not in adata.obs:
        raise KeyError(f"`groupby` column {groupby!r} not found in adata.obs; columns are {list(adata.obs.columns)}.")
    if len({str(g) for g in groups}) != len(groups):
        raise ValueError(f"Groups must be distinct, got {list(groups)}.")
    column = adata.obs[groupby]
    labels = column.astype(str).to_numpy()
    available = pd.unique(labels)
    numeric = pd.to_numeric(pd.Series(np.asarray(column, dtype=object)), errors="coerce").to_numpy(np.float64)
    masks = {}
    for g in groups:
        mask = labels == str(g)
        if not mask.any() and isinstance(g, int | float | np.number) and not isinstance(g, bool):
            mask = numeric == float(g)
        if not mask.any():
            raise KeyError(
                f"Group {g!r} not found in adata.obs[{groupby!r}]; available groups are {sorted(available)}."
            )
        if mask.sum() < min_cells:
            raise ValueError(
                f"Group {g!r} of adata.obs[{groupby!r}] has {int(mask.sum())} cell(s); at least {min_cells} are needed."
            )
        masks[str(g)] = mask
    return masks


def split_holdout(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random train / held-out positions of ``n`` items; held-out is empty if it would leave < 2 on a side."""
    n_test = int(np.floor(fraction * n))
    if n_test < 2 or n - n_test < 2:
        return np.arange(n), np.arange(0)
    perm = rng.permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def dense_layer_wanted(name: str, value: Any, matrix: Any) -> bool:
    """Resolve a tool's ``name`` option for a dense n_obs x n_vars layer: whether to write it.

    ``None`` writes it unless ``matrix`` is on disk (the layer may not fit in memory there); any value but None, True
    or False raises a ``TypeError``, which tools call before they train.
    """
    if value not in (None, True, False):
        raise TypeError(f"`{name}` must be None, True or False, got {value!r}.")
    return not is_lazy(matrix) if value is None else bool(value)


def check_key_added(key_added: str) -> str:
    """Validate ``key_added``."""
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"`key_added` must be a non-empty string, got {key_added!r}.")
    return key_added


def check_no_overwrite(
    adata: AnnData, key_added: str, written: Mapping[str, Iterable[str]], inputs: Mapping[str, Iterable[str]]
) -> None:
    """Raise if a key to be written (``{"obsm": [...], ...}``) is one of the inputs of the call in ``adata``."""
    for slot, keys in written.items():
        present = getattr(adata, slot)
        used = {k for k in inputs.get(slot, ()) if k is not None and k in present}
        for key in keys:
            if key in used:
                raise ValueError(
                    f"`key_added`={key_added!r} would overwrite adata.{slot}[{key!r}], an input of this call; "
                    "choose another `key_added`."
                )


def check_seed(seed: Any) -> int:
    """``seed`` must be an integer (named in the error)."""
    from ..solvers._base import check_seed as _check

    return _check(seed)


def to_uns(value: Any) -> Any:
    """Make ``value`` storable in ``.uns`` and readable after ``write_h5ad`` (None and objects become strings)."""
    if isinstance(value, Mapping):
        return {str(k): to_uns(v) for k, v in value.items()}
    if value is None:
        return "None"
    if isinstance(value, bool | int | float | str | np.generic):
        return value
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, list | tuple):
        if all(isinstance(v, bool | int | float | np.generic) for v in value) and value:
            return np.asarray(value)
        if all(isinstance(v, str) for v in value) and value:
            return np.asarray(value, dtype=object)
        return {str(i): to_uns(v) for i, v in enumerate(value)}
    return repr(value)


def fill_rows(n_obs: int, mask: np.ndarray, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """(n_obs, ...) array holding ``values`` on the rows of ``mask`` and ``fill`` elsewhere."""
    out = np.full((n_obs, *values.shape[1:]), fill, dtype=np.float32)
    out[mask] = values
    return out


def write_results(
    adata: AnnData,
    *,
    obsm: Mapping[str, np.ndarray] | None = None,
    obs: Mapping[str, np.ndarray] | None = None,
    var: Mapping[str, np.ndarray] | None = None,
    layers: Mapping[str, np.ndarray] | None = None,
    uns: Mapping[str, Any] | None = None,
) -> None:
    """Write all results at once (shapes are checked first, so a bad one writes nothing)."""
    for name, items, n in (("obsm", obsm, adata.n_obs), ("obs", obs, adata.n_obs), ("var", var, adata.n_vars)):
        for key, arr in (items or {}).items():
            if len(arr) != n:
                raise ValueError(f"Internal error: .{name}[{key!r}] has {len(arr)} rows, expected {n}.")
    for key, arr in (layers or {}).items():
        if arr.shape != adata.shape:
            raise ValueError(f"Internal error: .layers[{key!r}] has shape {arr.shape}, expected {adata.shape}.")
    written = []
    for key, arr in (obsm or {}).items():
        adata.obsm[key] = arr
        written.append(f".obsm[{key!r}]")
    for key, arr in (obs or {}).items():
        adata.obs[key] = arr
        written.append(f".obs[{key!r}]")
    for key, arr in (var or {}).items():
        adata.var[key] = arr
        written.append(f".var[{key!r}]")
    for key, arr in (layers or {}).items():
        adata.layers[key] = arr
        written.append(f".layers[{key!r}]")
    for key, value in (uns or {}).items():
        adata.uns[key] = to_uns(value)
        written.append(f".uns[{key!r}]")
    logger.info("added %s", ", ".join(written))


_FIT_ARGS_SET_BY_TL = ("source", "target", "condition", "n_iters", "batch_size", "seed")


def check_fit_kwargs(solver_cls: type, fit_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Check that ``fit_kwargs`` names arguments of ``solver_cls.fit`` that the ``tl`` function does not set itself."""
    fit_kwargs = dict(fit_kwargs or {})
    accepted = set(inspect.signature(solver_cls.fit).parameters) - {"self", *_FIT_ARGS_SET_BY_TL}
    unknown = sorted(set(fit_kwargs) - accepted)
    if unknown:
        raise TypeError(
            f"`fit_kwargs` has {unknown}, which {solver_cls.__name__}.fit does not take here; "
            f"accepted: {sorted(accepted)}."
        )
    return fit_kwargs


def relative_mass(model: Any, x: np.ndarray | LazyRows, condition: np.ndarray | None) -> np.ndarray | None:
    """Return the model's learned mass of cells ``x``, divided by its mean over ``x``.

    1.0 is the average mass of a source cell in the unbalanced plan: a cell of mass 2 sends twice the average
    amount of mass to the target population (its kind is over-represented there: growth, or more similar
    targets), a cell of mass 0.5 half of it (loss, or few similar targets). ``None`` for balanced models.
    """
    if isinstance(x, LazyRows):  # on disk: one block of cells in memory at a time
        masses = (model.mass(block, condition) for _, block in row_chunks(x, x.block_rows))
        first = next(masses)
        if first is None:  # a balanced model: nothing more to read
            return None
        mass = np.concatenate([first, *masses])
    else:
        mass = model.mass(x, condition)
    if mass is None:
        return None
    return (np.asarray(mass, np.float64) / float(np.mean(mass))).astype(np.float32)
