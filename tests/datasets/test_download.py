"""Downloaders against a local HTTP server (loopback only): caching, checksums, env overrides, loaders."""

from __future__ import annotations

import gzip
import hashlib
import io
import warnings
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import nescot as ns
from nescot.datasets import _download as dl

BMMC = dl.REGISTRY["neurips2021_multiome_bmmc"]
CELLOT = dl.REGISTRY["cellot_processed_datasets"]


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _h5ad_bytes(adata: ad.AnnData, tmp_path: Path, name: str) -> bytes:
    path = tmp_path / name
    adata.write_h5ad(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def multiome() -> ad.AnnData:
    """A tiny stand-in with the GEO file's layout: one AnnData, GEX and ATAC columns, prefixed obsm keys."""
    rng = np.random.default_rng(0)
    n_obs, n_gex, n_atac = 30, 5, 7
    counts = sp.csr_matrix(rng.poisson(1.0, size=(n_obs, n_gex + n_atac)).astype(np.float32))
    var = pd.DataFrame(
        {"feature_types": pd.Categorical(["GEX"] * n_gex + ["ATAC"] * n_atac), "gene_id": "x"},
        index=[f"g{i}" for i in range(n_gex)] + [f"chr1-{i}-{i + 9}" for i in range(n_atac)],
    )
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(rng.choice(["B", "T", "NK"], n_obs)),
            "batch": pd.Categorical(np.repeat(["s1d1", "s1d2", "s2d1"], 10)),
        },
        index=[f"cell{i}" for i in range(n_obs)],
    )
    adata = ad.AnnData(X=counts.copy(), obs=obs, var=var, layers={"counts": counts})
    adata.obsm["GEX_X_pca"] = rng.normal(size=(n_obs, 3))
    adata.obsm["ATAC_lsi_full"] = rng.normal(size=(n_obs, 4))
    adata.uns["dataset_id"] = "tiny"
    return adata


@pytest.fixture(scope="module")
def multiome_gz(multiome, tmp_path_factory) -> bytes:
    raw = _h5ad_bytes(multiome, tmp_path_factory.mktemp("src"), "m.h5ad")
    return gzip.compress(raw, compresslevel=1)


@pytest.fixture(scope="module")
def four_i() -> ad.AnnData:
    rng = np.random.default_rng(1)
    drugs = np.repeat(["control", "cisplatin", "dasatinib"], [12, 8, 8])
    var_names = [f"feat{i}" for i in range(6)]
    return ad.AnnData(
        X=rng.normal(size=(len(drugs), 6)).astype(np.float32),
        obs=pd.DataFrame({"drug": pd.Categorical(drugs)}, index=[f"c{i}" for i in range(len(drugs))]),
        var=pd.DataFrame(index=var_names),
    )


@pytest.fixture(scope="module")
def cellot_zip(four_i, tmp_path_factory) -> bytes:
    raw = _h5ad_bytes(four_i, tmp_path_factory.mktemp("src4i"), "8h.h5ad")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("datasets/4i/8h.h5ad", raw)
        zf.writestr("datasets/4i/features.txt", "feat0\nfeat2\nfeat5\n")
        zf.writestr("datasets/4i/sub/ignored.txt", "not extracted")
        zf.writestr("datasets/scrna-lupuspatients/kang-hvg.h5ad", b"other data set, not extracted")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- download
def test_download_then_cache_hit(server, tmp_path):
    payload = b"some bytes" * 100
    server.files[BMMC.fname] = payload
    kw = {"data_dir": tmp_path, "base_url": server.url, "known_hash": _sha(payload)}
    path = dl.fetch("neurips2021_multiome_bmmc", **kw)
    assert path == tmp_path / BMMC.fname
    assert path.read_bytes() == payload
    assert server.requests == [f"/{BMMC.fname}"]
    # Second call: served from the cache after the checksum matched, no request.
    assert dl.fetch("neurips2021_multiome_bmmc", **kw) == path
    assert len(server.requests) == 1


def test_first_use_records_hash_then_verifies(server, tmp_path):
    payload = b"first version"
    server.files[BMMC.fname] = payload
    kw = {"data_dir": tmp_path, "base_url": server.url}
    with pytest.warns(UserWarning, match="No published checksum"):
        path = dl.fetch("neurips2021_multiome_bmmc", **kw)
    sidecar = tmp_path / (BMMC.fname + ".sha256")
    assert sidecar.read_text().strip() == _sha(payload)

    # A cache hit is checked against the recorded hash, needs no request and no longer warns.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dl.fetch("neurips2021_multiome_bmmc", **kw)
    assert len(server.requests) == 1

    # A cached file damaged on disk is not used: it is re-downloaded and verified.
    path.write_bytes(b"damaged")
    dl.fetch("neurips2021_multiome_bmmc", **kw)
    assert path.read_bytes() == payload
    assert len(server.requests) == 2

    # The provider now serves something else: the recorded hash catches it, nothing is kept.
    path.unlink()
    server.files[BMMC.fname] = b"tampered or truncated"
    with pytest.raises(dl.CorruptedDownloadError, match="sha256") as err:
        dl.fetch("neurips2021_multiome_bmmc", **kw)
    assert BMMC.fname in str(err.value) and str(sidecar) in str(err.value)
    assert not path.exists()


def test_corrupted_download_raises_and_keeps_nothing(server, tmp_path):
    good = b"the real file" * 50
    server.files[BMMC.fname] = good[:-7]  # truncated transfer
    kw = {"data_dir": tmp_path, "base_url": server.url, "known_hash": _sha(good)}
    with pytest.raises(dl.CorruptedDownloadError) as err:
        dl.fetch("neurips2021_multiome_bmmc", **kw)
    msg = str(err.value)
    assert BMMC.fname in msg and "Delete" in msg and "re-download" in msg
    assert list(tmp_path.iterdir()) == []  # no file, no temporary left behind
    # Re-downloading once the server is fixed works.
    server.files[BMMC.fname] = good
    assert dl.fetch("neurips2021_multiome_bmmc", **kw).read_bytes() == good


def test_wrong_user_hash_does_not_cost_a_verified_file(server, tmp_path):
    payload = b"trusted content"
    server.files[BMMC.fname] = payload
    with pytest.warns(UserWarning):
        path = dl.fetch("neurips2021_multiome_bmmc", data_dir=tmp_path, base_url=server.url)
    with pytest.raises(dl.CorruptedDownloadError):
        dl.fetch("neurips2021_multiome_bmmc", data_dir=tmp_path, base_url=server.url, known_hash=_sha(b"typo"))
    assert path.read_bytes() == payload  # still matches the recorded hash, so it stays


def test_corrupted_cached_file_is_dropped_when_redownload_fails(server, tmp_path):
    good = b"good content"
    (tmp_path / BMMC.fname).write_bytes(b"stale and damaged")
    server.files[BMMC.fname] = b"also wrong"
    with pytest.raises(dl.CorruptedDownloadError):
        dl.fetch("neurips2021_multiome_bmmc", data_dir=tmp_path, base_url=server.url, known_hash=_sha(good))
    assert not (tmp_path / BMMC.fname).exists()


def test_unreadable_first_download_is_discarded(server, tmp_path):
    # No checksum known: an error page instead of the gzip must not be trusted or recorded.
    server.files[BMMC.fname] = b"<html>Service unavailable</html>"
    with pytest.raises(dl.CorruptedDownloadError, match="could not be read"):
        ns.datasets.bone_marrow_multiome(data_dir=tmp_path, base_url=server.url)
    assert not (tmp_path / BMMC.fname).exists()
    assert not (tmp_path / (BMMC.fname + ".sha256")).exists()


def test_env_vars_override_and_arguments_win(server, tmp_path, monkeypatch, multiome_gz):
    server.files[BMMC.fname] = multiome_gz
    env_dir = tmp_path / "env_cache"
    monkeypatch.setenv(dl.ENV_DATA_DIR, str(env_dir))
    monkeypatch.setenv(dl.ENV_DATA_URL, server.url + "/")
    assert dl.resolve_data_dir() == env_dir
    assert dl.resolve_url(BMMC) == f"{server.url}/{BMMC.fname}"

    ns.datasets.bone_marrow_multiome(known_hash=_sha(multiome_gz))
    assert (env_dir / BMMC.fname).exists() and (env_dir / BMMC.fname.removesuffix(".gz")).exists()
    assert server.requests == [f"/{BMMC.fname}"]

    arg_dir = tmp_path / "arg_cache"
    assert dl.resolve_data_dir(arg_dir) == arg_dir
    assert dl.resolve_url(BMMC, "http://mirror.invalid") == f"http://mirror.invalid/{BMMC.fname}"
    ns.datasets.bone_marrow_multiome(data_dir=arg_dir, known_hash=_sha(multiome_gz))
    assert (arg_dir / BMMC.fname).exists()


def test_defaults_without_overrides(monkeypatch):
    for var in (dl.ENV_DATA_DIR, dl.ENV_DATA_URL):
        monkeypatch.delenv(var, raising=False)
    assert dl.resolve_data_dir().parts[-1] == "nescot"
    assert dl.resolve_url(BMMC) == BMMC.url and BMMC.url.startswith("https://ftp.ncbi.nlm.nih.gov/geo/")


def test_progress_bar_follows_settings(server, tmp_path, capfd):
    payload = b"x" * 4096
    server.files[BMMC.fname] = payload
    kw = {"base_url": server.url, "known_hash": _sha(payload)}
    ns.settings.progress_bar = False
    dl.fetch("neurips2021_multiome_bmmc", data_dir=tmp_path / "a", **kw)
    assert "%|" not in capfd.readouterr().err
    ns.settings.progress_bar = True
    dl.fetch("neurips2021_multiome_bmmc", data_dir=tmp_path / "b", **kw)
    assert "%|" in capfd.readouterr().err


def test_bad_arguments(tmp_path):
    with pytest.raises(KeyError, match="Unknown data set 'nope'"):
        dl.fetch("nope", data_dir=tmp_path)
    with pytest.raises(ValueError, match="known_hash"):
        dl.fetch("neurips2021_multiome_bmmc", data_dir=tmp_path, known_hash="  ")
    with pytest.raises(ValueError, match="return_as"):
        ns.datasets.bone_marrow_multiome(return_as="dict", path=tmp_path / "x.h5ad")
    with pytest.raises(FileNotFoundError, match="x.h5ad"):
        ns.datasets.bone_marrow_multiome(path=tmp_path / "x.h5ad")


# ----------------------------------------------------------------------------------------------- loaders
def test_bone_marrow_multiome_structure(server, tmp_path, multiome, multiome_gz):
    server.files[BMMC.fname] = multiome_gz
    kw = {"data_dir": tmp_path, "base_url": server.url, "known_hash": _sha(multiome_gz)}
    rna, atac = ns.datasets.bone_marrow_multiome(**kw)
    assert (rna.n_obs, rna.n_vars, atac.n_vars) == (30, 5, 7)
    assert list(rna.obs_names) == list(atac.obs_names) == list(multiome.obs_names)  # paired barcodes
    assert set(rna.var["feature_types"]) == {"GEX"} and set(atac.var["feature_types"]) == {"ATAC"}
    assert list(rna.obsm) == ["X_pca"] and list(atac.obsm) == ["lsi_full"]
    np.testing.assert_array_equal(rna.obsm["X_pca"], multiome.obsm["GEX_X_pca"])
    np.testing.assert_array_equal(atac.layers["counts"].toarray(), multiome.layers["counts"][:, 5:].toarray())
    assert list(rna.obs["cell_type"]) == list(multiome.obs["cell_type"])
    assert rna.uns["dataset_id"] == "tiny"

    joint = ns.datasets.bone_marrow_multiome(return_as="anndata", **kw)
    assert joint.shape == (30, 12) and "GEX_X_pca" in joint.obsm
    assert len(server.requests) == 1  # both calls after the first read the decompressed cache

    sub_rna, _ = ns.datasets.bone_marrow_multiome(samples=["s1d2", "s2d1"], **kw)
    assert sub_rna.n_obs == 20 and set(sub_rna.obs["batch"]) == {"s1d2", "s2d1"}
    with pytest.raises(ValueError, match=r"\['s9d9'\] not found"):
        ns.datasets.bone_marrow_multiome(samples="s9d9", **kw)
    with pytest.raises(KeyError, match="'donor'"):
        ns.datasets.bone_marrow_multiome(samples="s1d1", sample_key="donor", **kw)


def test_bone_marrow_multiome_mudata(tmp_path, multiome):
    mudata = pytest.importorskip("mudata")
    path = tmp_path / "local.h5ad"
    multiome.write_h5ad(path)
    mdata = ns.datasets.bone_marrow_multiome(return_as="mudata", path=path)
    assert isinstance(mdata, mudata.MuData)
    assert set(mdata.mod) == {"rna", "atac"} and mdata.mod["atac"].n_vars == 7
    assert mdata.n_obs == 30 and list(mdata.mod["rna"].obsm) == ["X_pca"]


def test_cellot_4i_structure(server, tmp_path, four_i, cellot_zip):
    server.files[CELLOT.fname] = cellot_zip
    kw = {"data_dir": tmp_path, "base_url": server.url, "known_hash": _sha(cellot_zip)}
    adata = ns.datasets.cellot_4i(**kw)
    assert adata.shape == four_i.shape
    np.testing.assert_array_equal(adata.X, four_i.X)
    assert list(adata.obs["drug"].value_counts().sort_index()) == [8, 12, 8]
    assert list(adata.var_names[adata.var["cellot_feature"]]) == ["feat0", "feat2", "feat5"]
    extracted = sorted(p.name for p in (tmp_path / "cellot_4i").iterdir())
    assert extracted == ["8h.h5ad", "features.txt"]  # only the 4i folder, no sub-folders

    pair = ns.datasets.cellot_4i(drugs=["control", "cisplatin"], **kw)
    assert pair.n_obs == 20 and set(pair.obs["drug"]) == {"control", "cisplatin"}
    assert len(server.requests) == 1
    with pytest.raises(ValueError, match=r"\['aspirin'\] not found"):
        ns.datasets.cellot_4i(drugs="aspirin", **kw)


def test_cellot_4i_missing_member_keeps_archive(server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("datasets/other/file.txt", "x")
    server.files[CELLOT.fname] = buf.getvalue()
    kw = {"data_dir": tmp_path, "base_url": server.url, "known_hash": _sha(buf.getvalue())}
    with pytest.raises(LookupError, match="4i/8h.h5ad"):
        ns.datasets.cellot_4i(**kw)
    assert (tmp_path / CELLOT.fname).exists()  # a valid archive is not thrown away
