"""Plots of ``nescot.tl.sparse_displacement`` results."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from anndata import AnnData
from matplotlib.axes import Axes

from ._utils import finish, get_uns, new_axes


def _reference_genes(adata: AnnData, reference) -> tuple[set[str], str]:
    """Return a reference gene set from a boolean ``.var`` column, a gene list or ``(rgg_key, group, n)``."""
    if isinstance(reference, str):
        if reference not in adata.var:
            raise KeyError(f"Reference column {reference!r} not found in adata.var ({list(adata.var.columns)}).")
        return set(adata.var_names[adata.var[reference].to_numpy().astype(bool)]), reference
    if isinstance(reference, tuple) and len(reference) == 3:
        key, group, n = reference
        if key not in adata.uns or "names" not in adata.uns[key]:
            raise KeyError(f"adata.uns[{key!r}] holds no sc.tl.rank_genes_groups result.")
        names = adata.uns[key]["names"]
        if group not in names.dtype.names:
            raise KeyError(f"Group {group!r} not in adata.uns[{key!r}]['names'] ({list(names.dtype.names)}).")
        return set(np.asarray(names[group][: int(n)]).astype(str)), f"{key}: {group} top {n}"
    return {str(g) for g in reference}, "gene list"


def _displaced(adata: AnnData, key: str, min_frequency: float) -> set[str]:
    get_uns(adata, key, "sparse_displacement")
    return set(adata.var_names[adata.var[f"{key}_frequency"].to_numpy() > min_frequency])


def gene_overlap(
    adata: AnnData,
    keys: str | Sequence[str],
    *,
    reference: str | Sequence[str] | tuple[str, str, int],
    min_frequency: float = 0.5,
    kind: str = "bars",
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Axes | None:
    """Overlap of displaced-gene sets of one or more runs with a reference set.

    A gene counts as displaced by a run when more than ``min_frequency`` of its source cells displace it.

    Parameters
    ----------
    adata
        Data holding the runs of :func:`nescot.tl.sparse_displacement`.
    keys
        Their ``key_added`` values (penalties, drugs, lambdas...).
    reference
        A boolean ``.var`` column, a list of genes, or ``(rank_genes_groups_key, group, n_top)``.
    min_frequency
        Frequency above which a gene is displaced.
    kind
        ``"bars"``: precision, recall and Jaccard index per run; ``"heatmap"``: Jaccard index between all runs
        and the reference.
    ax, show, save, return_fig
        As in scanpy.

    Returns
    -------
    The axes, unless shown.
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    if kind not in ("bars", "heatmap"):
        raise ValueError(f"`kind` must be 'bars' or 'heatmap', got {kind!r}.")
    ref, ref_name = _reference_genes(adata, reference)
    sets = {k: _displaced(adata, k, min_frequency) for k in keys}
    fig, ax = new_axes(ax, (1.5 + 1.2 * len(keys), 4.0))
    if kind == "bars":
        width = 0.8 / 3
        for j, (name, fn) in enumerate(
            (
                ("precision", lambda s: len(s & ref) / max(len(s), 1)),
                ("recall", lambda s: len(s & ref) / max(len(ref), 1)),
                ("Jaccard", lambda s: len(s & ref) / max(len(s | ref), 1)),
            )
        ):
            ax.bar(np.arange(len(keys)) + (j - 1) * width, [fn(sets[k]) for k in keys], width, label=name)
        ax.set_xticks(np.arange(len(keys)), keys, rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(f"overlap with {ref_name}")
        ax.legend(frameon=False)
    else:
        names = [*keys, "reference"]
        all_sets = [*(sets[k] for k in keys), ref]
        jac = np.array([[len(a & b) / max(len(a | b), 1) for b in all_sets] for a in all_sets])
        image = ax.imshow(jac, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_yticks(range(len(names)), names)
        fig.colorbar(image, ax=ax, label="Jaccard index")
    return finish(fig, ax, show=show, save=save, return_fig=return_fig)


def sparsity_path(
    adata: AnnData,
    key: str = "sparse_displacement",
    *,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
    ax: Sequence[Axes] | None = None,
) -> list[Axes] | None:
    """Lambda, mean displacement dimensionality and fidelity (sliced Wasserstein) over the training blocks.

    Parameters
    ----------
    adata
        Data on which :func:`nescot.tl.sparse_displacement` ran (with ``target_dim`` for a real path).
    key
        Its ``key_added``.
    show, save, return_fig
        As in scanpy.
    ax
        Three axes to draw into.

    Returns
    -------
    The three axes, unless shown.
    """
    result = get_uns(adata, key, "sparse_displacement")
    traj = result["trajectory"]
    if not len(traj):
        raise ValueError(f"adata.uns[{key!r}] has no trajectory (solver='entropic').")
    if ax is None:
        fig, axes = plt.subplots(3, 1, figsize=(5, 6), sharex=True)
    else:
        axes = list(ax)
        fig = axes[0].figure
    blocks = np.arange(len(traj["lam"]))
    accepted = np.asarray(traj["accepted"]).astype(bool)
    for a, name, label in zip(
        axes, ("lam", "mean_dim", "sliced_wasserstein"), ("lambda", "mean dim.", "sliced W2"), strict=True
    ):
        values = np.asarray(traj[name], float)
        a.plot(blocks, values, color="0.6", lw=1)
        a.scatter(blocks[accepted], values[accepted], c="tab:green", s=15, label="feasible")
        a.scatter(blocks[~accepted], values[~accepted], c="tab:red", s=15, label="infeasible")
        a.set_ylabel(label)
    target_dim = result["params"].get("target_dim")
    if isinstance(target_dim, int | float) and not isinstance(target_dim, bool):
        axes[1].axhline(target_dim, ls="--", color="k", lw=1, label="target")
    axes[0].legend(frameon=False, fontsize="small")
    axes[-1].set_xlabel("training block")
    return finish(fig, list(axes), show=show, save=save, return_fig=return_fig)


def displacement(
    adata: AnnData,
    key: str = "sparse_displacement",
    *,
    genes: Sequence[str] | int = 10,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Axes | None:
    """Distributions of per-cell displacements of some genes (box plots over source cells).

    Parameters
    ----------
    adata
        Data on which :func:`nescot.tl.sparse_displacement` ran.
    key
        Its ``key_added``.
    genes
        Genes to show, or a number of top-ranked displaced genes.
    ax, show, save, return_fig
        As in scanpy.

    Returns
    -------
    The axes, unless shown.
    """
    result = get_uns(adata, key, "sparse_displacement")
    if isinstance(genes, int):
        genes = list(np.asarray(result["ranked_genes"])[:genes])
    missing = [g for g in genes if g not in adata.var_names]
    if missing:
        raise KeyError(f"Genes not in adata.var_names: {missing}.")
    labels = adata.obs[result["params"]["groupby"]].astype(str).to_numpy()
    src = labels == result["params"]["source"]
    if key not in adata.layers:
        raise KeyError(
            f"No .layers[{key!r}]: sparse_displacement does not write it when the genes are on disk; run it with "
            "displacement_layer=True to plot the displacements."
        )
    values = adata[src, list(genes)].layers[key]
    fig, ax = new_axes(ax, (1.5 + 0.5 * len(genes), 4.0))
    ax.boxplot(np.asarray(values), tick_labels=list(genes), showfliers=False)
    ax.axhline(0, color="0.5", lw=1)
    threshold = result["params"]["threshold"]
    for sign in (-1, 1):
        ax.axhline(sign * threshold, color="tab:red", lw=1, ls="--")
    ax.set_ylabel("displacement T(x) - x")
    ax.tick_params(axis="x", rotation=45)
    return finish(fig, ax, show=show, save=save, return_fig=return_fig)
