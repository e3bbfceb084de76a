"""sparse_displacement and translate_modalities on AnnData whose matrices stay on disk give the in-memory results."""

import warnings

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import nescot as ns


def _write(adata, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata's note about zarr v2
        adata.write_zarr(path) if str(path).endswith(".zarr") else adata.write_h5ad(path)
    return path


def test_sparse_displacement_reads_only_its_groups_from_a_backed_file(tmp_path):
    adata = ns.datasets.simulate_sparse_perturbation(150, 20, 3, seed=0)
    adata.X = sp.csr_matrix(np.asarray(adata.X))
    kwargs = {"n_iters": 20, "batch_size": 64, "seed": 1}
    ns.tl.sparse_displacement(adata, "condition", "control", "treated", **kwargs)
    backed = ad.read_h5ad(_write(adata.copy(), tmp_path / "s.h5ad"), backed="r")
    del backed.layers["sparse_displacement"]  # the in-memory run's outputs went into the file too
    ns.tl.sparse_displacement(backed, "condition", "control", "treated", displacement_layer=True, **kwargs)
    assert backed.isbacked and isinstance(backed.X, ad.abc.CSRDataset)
    np.testing.assert_array_equal(backed.layers["sparse_displacement"], adata.layers["sparse_displacement"])
    # By default a dense n_obs x n_vars layer is not written when the genes are on disk; the summaries are.
    on_disk = ad.read_h5ad(tmp_path / "s.h5ad", backed="r")
    ns.tl.sparse_displacement(on_disk, "condition", "control", "treated", key_added="sd", **kwargs)
    assert "sd" not in on_disk.layers and on_disk.uns["sd"]["params"]["displacement_layer"] is False
    np.testing.assert_array_equal(on_disk.var["sd_frequency"], adata.var["sparse_displacement_frequency"])
    np.testing.assert_array_equal(on_disk.obs["sd_n_displaced"], adata.obs["sparse_displacement_n_displaced"])
    with pytest.raises(KeyError, match="displacement_layer=True"):
        ns.pl.displacement(on_disk, "sd", genes=2, show=False)
    with pytest.raises(TypeError, match="displacement_layer"):  # before any training, nothing written
        ns.tl.sparse_displacement(on_disk, "condition", "control", "treated", key_added="x", displacement_layer="yes")
    assert "x" not in on_disk.uns


def test_translate_modalities_from_an_on_disk_store(tmp_path):
    rna, atac = ns.datasets.simulate_multiome(120, seed=3)
    kwargs = {"n_iters": 5, "batch_size": 32, "n_samples": 2, "solver_kwargs": {"hidden_dims": (16,)}}
    on_disk = ns.io.read_on_disk(_write(atac.copy(), tmp_path / "atac.zarr"))
    ns.tl.translate_modalities(atac, rna, "X", "X_pca", **kwargs)
    ns.tl.translate_modalities(on_disk, rna, "X", "X_pca", **kwargs)
    assert not isinstance(on_disk.X, np.ndarray)  # read from the store, not loaded by read_on_disk
    np.testing.assert_array_equal(on_disk.obsm["translate_modalities"], atac.obsm["translate_modalities"])
