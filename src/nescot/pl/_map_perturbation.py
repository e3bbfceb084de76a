"""Plots of ``nescot.tl.map_perturbation`` results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anndata import AnnData
from matplotlib.axes import Axes

from ..io._rep import get_rep
from ._utils import finish, get_uns, new_axes


def pushforward(
    adata: AnnData,
    key: str = "map_perturbation",
    *,
    target: str | None = None,
    components: tuple[int, int] = (0, 1),
    predicted: str = "sample",
    weighted: bool = True,
    seed: int = 0,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Axes | None:
    """Scatter source, target and predicted (pushed-forward) cells in two components of the mapped representation.

    The predicted population is one conditional sample per source cell: that is how the plan spreads a source
    population over the target. Conditional means (``predicted="mean"``) are a per-cell summary; as a population
    they are narrower than the target and average distinct fates into cells between them.

    Parameters
    ----------
    adata
        Data on which :func:`nescot.tl.map_perturbation` ran.
    key
        Its ``key_added``.
    target
        Target group to show, when several were mapped (default: the first).
    components
        Two columns of the representation to plot.
    predicted
        ``"sample"``: the first conditional sample of each source cell (``.obsm[key + '_samples']``); ``"mean"``:
        the conditional means (``.obsm[key]``).
    weighted
        For unbalanced models, draw the predicted cells in proportion to their learned mass
        (``.obs[key + '_mass']``; as many draws as source cells, with replacement), so that the plotted population
        is the one the plan predicts. ``False`` shows every source cell once.
    seed
        Seed of the mass-proportional draw.
    ax, show, save, return_fig
        As in scanpy: draw into ``ax``, show the figure, save it to a path, return the figure.

    Returns
    -------
    The axes, unless shown.
    """
    params = get_uns(adata, key, "map_perturbation")["params"]
    targets = [str(t) for t in np.atleast_1d(params["target"])]
    target = targets[0] if target is None else str(target)
    if target not in targets:
        raise KeyError(f"Target {target!r} was not mapped under {key!r}; mapped targets are {targets}.")
    obsm_key = key if len(targets) == 1 else f"{key}_{target}"
    rep = get_rep(adata, params["rep"])
    labels = adata.obs[params["groupby"]].astype(str).to_numpy()
    if predicted not in ("sample", "mean"):
        raise ValueError(f"`predicted` must be 'sample' or 'mean', got {predicted!r}.")
    i, j = components
    fig, ax = new_axes(ax)
    src, tgt = labels == params["source"], labels == target
    if predicted == "sample":
        pred = np.asarray(adata.obsm[f"{obsm_key}_samples"])[src][:, 0]
    else:
        pred = np.asarray(adata.obsm[obsm_key])[src]
    what = "one sample per cell" if predicted == "sample" else "conditional means"
    mass_key = f"{obsm_key}_mass"
    if weighted and mass_key in adata.obs:
        mass = adata.obs[mass_key].to_numpy(float)[src]
        pred = pred[np.random.default_rng(seed).choice(len(pred), len(pred), p=mass / mass.sum())]
        what += ", mass-weighted"
    ax.scatter(rep[src, i], rep[src, j], s=6, alpha=0.5, c="tab:blue", label=f"{params['source']} (source)")
    ax.scatter(rep[tgt, i], rep[tgt, j], s=6, alpha=0.5, c="tab:orange", label=f"{target} (observed)")
    ax.scatter(pred[:, i], pred[:, j], s=6, alpha=0.5, c="tab:green", label=f"{target} (predicted: {what})")
    ax.set_xlabel(f"{params['rep']} {i + 1}")
    ax.set_ylabel(f"{params['rep']} {j + 1}")
    ax.set_title(f"{key}: {params['source']} -> {target}")
    ax.legend(markerscale=2, frameon=False, fontsize="small")
    return finish(fig, ax, show=show, save=save, return_fig=return_fig)


def loss_history(
    adata: AnnData,
    key: str = "map_perturbation",
    *,
    smooth: int = 20,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Axes | None:
    """Training losses stored in ``adata.uns[key]['loss_history']``, smoothed by a moving average.

    Parameters
    ----------
    adata
        Data on which a ``nescot.tl`` function ran.
    key
        Its ``key_added``.
    smooth
        Window of the moving average (1: raw).
    ax, show, save, return_fig
        As in scanpy.

    Returns
    -------
    The axes, unless shown.
    """
    history = get_uns(adata, key, "map_perturbation").get("loss_history", {})
    fig, ax = new_axes(ax)
    for name, values in history.items():
        if not name.startswith("loss"):
            continue
        values = np.asarray(values, float)
        window = max(1, min(int(smooth), len(values)))
        ax.plot(np.convolve(values, np.ones(window) / window, mode="valid"), label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend(frameon=False)
    return finish(fig, ax, show=show, save=save, return_fig=return_fig)
