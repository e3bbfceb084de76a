"""Row access to on-disk AnnData representations (backed h5ad, h5ad / zarr stores)."""

import warnings

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import nescot as ns
from nescot.io._lazy import column_mean, take_rows


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(120, 7)).astype(np.float32)
    adata = ad.AnnData(
        X=sp.csr_matrix(np.where(dense > 0.5, dense, 0)), layers={"dense": dense}, obsm={"X_pca": dense[:, :3]}
    )
    adata.obs["group"] = np.repeat(["a", "b", "c"], 40)
    path = tmp_path_factory.mktemp("stores")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata's note about zarr v2
        adata.write_h5ad(path / "a.h5ad")
        adata.write_zarr(path / "a.zarr")
    return adata, path


def _cases(adata, path):
    backed = ad.read_h5ad(path / "a.h5ad", backed="r")
    lazy_h5, lazy_zarr = ns.io.read_on_disk(path / "a.h5ad"), ns.io.read_on_disk(path / "a.zarr")
    x, layer = adata.X.toarray(), adata.layers["dense"]
    return [
        ("backed X (CSR, h5)", ns.io.rep_source(backed, "X"), x),
        ("lazy layer (h5)", ns.io.rep_source(lazy_h5, "dense"), layer),
        ("lazy X (CSR, zarr)", ns.io.rep_source(lazy_zarr, "X"), x),
        ("lazy layer (zarr)", ns.io.rep_source(lazy_zarr, "dense"), layer),
        ("zarr path, layer", ns.io.rep_source(path / "a.zarr", "dense"), layer),
        ("h5ad path, obsm", ns.io.rep_source(path / "a.h5ad", "X_pca"), adata.obsm["X_pca"]),
        ("in memory", ns.io.rep_source(adata, "X"), x),
    ]


def test_rows_read_from_every_store_equal_the_matrix(stores):
    adata, path = stores
    lazy = ns.io.read_on_disk(path / "a.zarr")
    assert (
        not isinstance(lazy.layers["dense"], np.ndarray) and lazy.obs["group"].tolist() == adata.obs["group"].tolist()
    )
    rows = np.array([0, 3, 4, 57, 119])
    mask = np.zeros(120, bool)
    mask[40:80] = True
    for name, src, ref in _cases(adata, path):
        assert src.shape == ref.shape and len(src) == 120, name
        np.testing.assert_array_equal(src[rows], ref[rows], err_msg=name)
        np.testing.assert_array_equal(src[np.arange(10, 30)], ref[10:30], err_msg=name)  # contiguous slice read
        view = src.subset(mask)  # lazy view of group "b"; positions are relative to the view
        np.testing.assert_array_equal(view[np.array([1, 39])], ref[[41, 79]], err_msg=name)
        np.testing.assert_array_equal(take_rows(src, np.array([5, 6]))[np.array([1])], ref[[6]], err_msg=name)
        np.testing.assert_allclose(view.mean(), ref[40:80].mean(0), rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(view.to_memory(), ref[40:80], err_msg=name)
        assert src[rows].dtype == np.float32
    backed = ad.read_h5ad(path / "a.h5ad", backed="r")
    np.testing.assert_allclose(column_mean(backed.X), adata.X.toarray().mean(0), rtol=1e-5, atol=1e-6)


def test_bad_requests_name_the_culprit(stores):
    adata, path = stores
    with pytest.raises(KeyError, match="'nope' is neither"):
        ns.io.rep_source(path / "a.zarr", "nope")
    with pytest.raises(KeyError, match="Representation 'nope' not found"):
        ns.io.rep_source(adata, "nope")
    with pytest.raises(ValueError, match="CSC"):
        ns.io.LazyRows(sp.csc_matrix(adata.X), name="X")
    with pytest.raises(ValueError, match="sorted, distinct"):
        ns.io.rep_source(adata, "X", rows=np.array([3, 1]))
    with pytest.raises(FileNotFoundError):
        ns.io.read_on_disk(path / "missing.h5ad")


def test_read_lazy_is_a_deprecated_alias_of_read_on_disk(stores):
    adata, path = stores
    with pytest.warns(FutureWarning, match="read_on_disk"):
        lazy = ns.io.read_lazy(path / "a.zarr")
    assert lazy.obs["group"].tolist() == adata.obs["group"].tolist()
    np.testing.assert_array_equal(ns.io.rep_source(lazy, "dense")[np.arange(5)], adata.layers["dense"][:5])
