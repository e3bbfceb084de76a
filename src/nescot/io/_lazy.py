"""Row access to AnnData representations that stay on disk (backed h5ad, h5ad / zarr stores).

:class:`LazyRows` is the AnnData-side adapter of the solvers' row-source protocol
(:class:`nescot.solvers.RowSource`): ``shape``, ``len`` and ``rows[sorted_index] -> dense float32``.
Dense matrices are read with one sorted fancy read (h5py) or orthogonal selection (zarr), CSR
matrices through anndata's sparse datasets and densified per read, so nothing but the requested
rows is ever in memory.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
import zarr
from anndata import AnnData

try:
    from anndata.abc import CSCDataset, CSRDataset
    from anndata.io import read_elem, sparse_dataset
except ImportError:  # pragma: no cover - anndata < 0.11
    from anndata.experimental import CSCDataset, CSRDataset, read_elem, sparse_dataset

_LAZY = (h5py.Dataset, zarr.Array, CSRDataset, CSCDataset)
_BLOCK_BYTES = 64 * 2**20


def is_lazy(arr: Any) -> bool:
    """Whether ``arr`` is an on-disk matrix (h5py / zarr dense array, anndata sparse dataset)."""
    return isinstance(arr, _LAZY)


class LazyRows:
    """Rows of a (possibly on-disk) cells x features matrix, read on demand as dense float32.

    Parameters
    ----------
    store
        An h5py / zarr dense array, an anndata CSR dataset (``adata.X`` of a backed AnnData), or an
        in-memory numpy / scipy sparse array.
    rows
        Sorted positions of the rows exposed (default all), e.g. the cells of one group.
    name
        Used in error messages.
    """

    def __init__(self, store: Any, rows: np.ndarray | None = None, *, name: str = "matrix") -> None:
        if isinstance(store, CSCDataset) or sp.isspmatrix_csc(store):
            raise ValueError(
                f"{name} is stored column-wise (CSC); rows cannot be read efficiently. Convert it to CSR, "
                "e.g. `adata.X = adata.X.tocsr()` before writing."
            )
        if isinstance(store, pd.DataFrame):
            store = store.to_numpy()
        if len(store.shape) != 2:
            raise ValueError(f"{name} must be 2-D (cells x features), got shape {tuple(store.shape)}.")
        self.store, self.name = store, name
        n = store.shape[0]
        self.rows = np.arange(n) if rows is None else np.asarray(rows, np.int64)
        if len(self.rows) and (np.any(np.diff(self.rows) <= 0) or self.rows[0] < 0 or self.rows[-1] >= n):
            raise ValueError(f"`rows` of {name} must be sorted, distinct and in [0, {n}).")
        self.shape = (len(self.rows), int(store.shape[1]))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyRows({self.name}, shape={self.shape}, store={type(self.store).__name__})"

    def _positions(self, index: Any) -> np.ndarray:
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"Boolean mask of length {len(index)} for {len(self)} rows of {self.name}.")
            index = np.flatnonzero(index)
        return self.rows[index]

    def subset(self, index: Any) -> LazyRows:
        """Return a lazy view on some of these rows (sorted positions or a boolean mask)."""
        return LazyRows(self.store, self._positions(index), name=self.name)

    def __getitem__(self, index: Any) -> np.ndarray:
        """Dense float32 rows at sorted, distinct positions ``index`` (or a boolean mask)."""
        rows = self._positions(index)
        if len(rows) == 0:
            return np.zeros((0, self.shape[1]), np.float32)
        if rows[-1] - rows[0] + 1 == len(rows):  # contiguous: a slice is much faster than a point list
            block = self.store[int(rows[0]) : int(rows[-1]) + 1]
        elif isinstance(self.store, zarr.Array):
            block = self.store.get_orthogonal_selection((rows, slice(None)))
        else:
            block = self.store[rows]
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        return block.astype(np.float32, copy=False)

    @property
    def block_rows(self) -> int:
        """Rows in a block of about 64 MB."""
        return max(1, _BLOCK_BYTES // (4 * max(1, self.shape[1])))

    def blocks(self):
        """Iterate over consecutive blocks of rows (about 64 MB each)."""
        for _, block in row_chunks(self, self.block_rows):
            yield block

    def to_memory(self) -> np.ndarray:
        """All rows as one dense float32 array."""
        return np.concatenate(list(self.blocks())) if len(self) else self[np.arange(0)]

    def mean(self) -> np.ndarray:
        """Per-feature mean, computed block by block (float64)."""
        total = np.zeros(self.shape[1])
        for block in self.blocks():
            total += block.sum(0, dtype=np.float64)
        return total / max(1, len(self))


def row_chunks(data: np.ndarray | LazyRows, size: int):
    """Yield ``(start, rows)`` for consecutive chunks of ``size`` rows, read from disk one chunk at a time."""
    for start in range(0, len(data), size):
        stop = min(start + size, len(data))
        yield start, data[np.arange(start, stop)] if isinstance(data, LazyRows) else data[start:stop]


def take_rows(data: np.ndarray | LazyRows, rows: np.ndarray) -> np.ndarray | LazyRows:
    """``data[rows]``, kept on disk (a lazy view) when ``data`` is a :class:`LazyRows`."""
    return data.subset(rows) if isinstance(data, LazyRows) else data[rows]


def column_mean(arr: Any) -> np.ndarray:
    """Per-feature mean of a cells x features matrix in memory or on disk (read block by block)."""
    if is_lazy(arr):
        return LazyRows(arr, name="matrix").mean()
    return np.asarray(arr.mean(0)).ravel()


def _open_group(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such AnnData store: {path}")
    try:
        if path.is_dir():  # zarr stores are directories
            return zarr.open_group(str(path), mode="r")
        return h5py.File(path, "r")
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(
            f"{path} is neither an HDF5 .h5ad file nor a zarr store written by anndata ({type(err).__name__}: {err})."
        ) from None


def _lazy_element(elem: Any) -> Any:
    """Wrap an h5py / zarr element as an on-disk matrix (sparse groups become anndata sparse datasets)."""
    if isinstance(elem, h5py.Group | zarr.Group):
        return sparse_dataset(elem)
    return elem


def rep_source(data: AnnData | str | Path, rep: str = "X", rows: np.ndarray | None = None) -> LazyRows:
    """Row source of a representation, for :meth:`nescot.solvers.GENOT.fit` and other solvers.

    Parameters
    ----------
    data
        An AnnData (backed with ``read_h5ad(path, backed='r')``, from :func:`read_on_disk`, or in memory), or
        the path of an ``.h5ad`` file or ``.zarr`` store (nothing is loaded).
    rep
        ``"X"``, a layer or an ``.obsm`` key.
    rows
        Sorted cell positions to expose (e.g. ``np.flatnonzero(adata.obs['group'] == 'ctrl')``).

    Returns
    -------
    A :class:`LazyRows` reading the requested rows on demand.
    """
    if isinstance(data, AnnData):
        from ._rep import rep_element

        return LazyRows(rep_element(data, rep), rows, name=f"representation {rep!r}")
    group = _open_group(data)
    key = "X" if rep == "X" else next((f"{k}/{rep}" for k in ("layers", "obsm") if f"{k}/{rep}" in group), None)
    if key is None or key not in group:
        raise KeyError(f"Representation {rep!r} is neither 'X' nor a layer or .obsm key of {data}.")
    return LazyRows(_lazy_element(group[key]), rows, name=f"representation {rep!r} of {Path(data).name}")


def read_on_disk(path: str | Path) -> AnnData:
    """Open an ``.h5ad`` file or ``.zarr`` store as an AnnData with ``X`` and every layer left on disk.

    ``obs``, ``var``, ``obsm``, ``varm`` and ``uns`` (small) are loaded. Unlike
    ``read_h5ad(path, backed='r')``, layers stay on disk too, and zarr stores are supported. Unlike
    ``anndata.experimental.read_lazy``, the result is a plain :class:`~anndata.AnnData` (not backed in
    anndata's sense) whose matrices are h5py / zarr arrays or anndata sparse datasets.
    The file stays open as long as the AnnData refers to it; results written by ``nescot.tl``
    functions go to memory (save them with ``write_h5ad`` to another path).

    Parameters
    ----------
    path
        ``.h5ad`` file or ``.zarr`` directory written by anndata.

    Returns
    -------
    An AnnData whose ``X`` and ``layers`` are h5py / zarr arrays or anndata sparse datasets.
    """
    group = _open_group(path)
    loaded = {k: read_elem(group[k]) for k in ("obs", "var", "obsm", "varm", "uns") if k in group}
    layers = {k: _lazy_element(group["layers"][k]) for k in group["layers"].keys()} if "layers" in group else {}
    x = _lazy_element(group["X"]) if "X" in group else None
    return AnnData(X=x, layers=layers, **loaded)


def read_lazy(path: str | Path) -> AnnData:
    """Open a store like :func:`read_on_disk` (deprecated alias; warns).

    Renamed because ``anndata.experimental.read_lazy`` shares the name but returns another type. ``path`` and
    the returned AnnData are those of :func:`read_on_disk`.
    """
    warnings.warn(
        "`nescot.io.read_lazy` is deprecated and will be removed; use `nescot.io.read_on_disk` (same arguments "
        "and result).",
        FutureWarning,
        stacklevel=2,
    )
    return read_on_disk(path)
