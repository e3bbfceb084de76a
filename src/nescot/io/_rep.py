"""The one accessor of cell representations (``"X"``, a layer, an ``.obsm`` key) used by ``tl`` and ``pl``.

A representation may sit in memory (NumPy, SciPy sparse, a DataFrame in ``.obsm``) or on disk (backed ``X``,
layers of :func:`nescot.io.read_on_disk`); :func:`get_rep` reads only the rows asked for either way, and
``lazy=True`` hands an on-disk one over as :class:`~nescot.io.LazyRows` for solvers that read batches themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ._lazy import LazyRows, is_lazy, row_chunks


def rep_element(adata: AnnData, rep: str) -> Any:
    """Return the stored matrix of ``rep``: ``adata.X``, a layer or an ``.obsm`` entry (not converted).

    Raises
    ------
    KeyError
        If ``rep`` is none of them; the message lists what is available.
    """
    if rep == "X":
        return adata.X
    if rep in adata.obsm:
        return adata.obsm[rep]
    if rep in adata.layers:
        return adata.layers[rep]
    raise KeyError(
        f"Representation {rep!r} not found: it is neither 'X', a key of adata.obsm "
        f"({sorted(adata.obsm)}) nor of adata.layers ({sorted(adata.layers)})."
    )


def check_finite(arr: np.ndarray | LazyRows, what: str) -> None:
    """Raise a ``ValueError`` naming ``what`` and the first bad cell if ``arr`` has NaN / inf.

    On-disk rows (:class:`~nescot.io.LazyRows`) are read block by block, none kept.
    """
    n_bad, first = 0, None
    for start, block in row_chunks(arr, arr.block_rows if isinstance(arr, LazyRows) else max(1, len(arr))):
        bad = ~np.isfinite(block)
        if bad.any():
            n_bad += int(bad.sum())
            first = start + int(np.argwhere(bad)[0][0]) if first is None else first
    if n_bad:
        raise ValueError(f"{what} contains {n_bad} NaN or infinite value(s) (first in row {first}).")


def get_rep(adata: AnnData, rep: str, rows: np.ndarray | None = None, *, lazy: bool = False) -> np.ndarray | LazyRows:
    """Dense float32 (n, d) array of a representation, or of some of its rows.

    Parameters
    ----------
    adata
        In memory, backed (``read_h5ad(..., backed='r')``) or from :func:`nescot.io.read_on_disk`.
    rep
        ``"X"``, a layer or an ``.obsm`` key.
    rows
        A boolean mask over cells or sorted positions; only those rows are read (all by default).
    lazy
        Return an on-disk representation as a :class:`~nescot.io.LazyRows` (nothing read, values not checked)
        instead of reading it; in-memory ones are returned as arrays either way.

    Raises
    ------
    KeyError
        If ``rep`` is not in ``adata``.
    ValueError
        If it is empty or not 2-D, or the rows read hold NaN / infinite values (the message names ``rep``).
    TypeError
        If its values are not numbers.
    """
    arr = rep_element(adata, rep)
    if arr is None:
        raise ValueError(f"Representation {rep!r} is empty (adata.X is None).")
    name = f"representation {rep!r}"
    if is_lazy(arr):
        data = LazyRows(arr, name=name)
        if rows is not None:
            data = data.subset(rows)
        if lazy:
            return data
        arr = data.to_memory()
    else:
        if isinstance(arr, pd.DataFrame):
            arr = arr.to_numpy()
        if len(arr.shape) != 2:
            raise ValueError(f"Representation {rep!r} must be 2-D (cells x features), got shape {arr.shape}.")
        if rows is not None:
            arr = arr[rows]
        arr = arr.toarray() if sp.issparse(arr) else np.asarray(arr)
    try:
        arr = arr.astype(np.float32, copy=False)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"Representation {rep!r} must hold numbers, but its {arr.dtype} values cannot be converted to float "
            f"({err})."
        ) from None
    check_finite(arr, name)
    return arr
