"""``nescot.tl.sparse_displacement``: which genes does a perturbation move? A sparse neural OT map in gene space."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .._memory import release_freed_memory
from .._settings import logger
from ..io._lazy import row_chunks
from ..io._rep import get_rep
from ..metrics import energy_distance, sliced_wasserstein
from ..solvers import MapSolver
from ..solvers._base import check_training_args
from ._solver import build_solver, solver_class
from ._utils import (
    check_groupby,
    check_key_added,
    check_no_overwrite,
    check_seed,
    dense_layer_wanted,
    get_group_masks,
    write_results,
)

# the penalty's arguments, handed to map solvers whose constructor takes them (SparseICNN, EntropicElasticMap)
_PENALTY_ARGS = ("penalty", "lam", "sigma", "gamma")


def _split_kwargs(cls: type[MapSolver], given: dict[str, Any], solver_kwargs: dict | None) -> tuple[dict, dict]:
    """Route the penalty's arguments and ``solver_kwargs`` to the solver's constructor or its ``fit``.

    ``given`` holds the penalty's arguments the user set (others keep the solver's defaults); a set argument the
    solver takes nowhere is an error naming it.
    """
    init_args = set(inspect.signature(cls).parameters)
    fit_args = set(inspect.signature(cls.fit).parameters) - {"self", "source", "target", "condition"}
    init, fit = {}, {}
    for key, value in {**given, **(solver_kwargs or {})}.items():
        if key in init_args:
            init[key] = value
        elif key in fit_args and key not in ("n_iters", "batch_size", "seed"):
            fit[key] = value
        else:
            raise ValueError(
                f"Solver {cls.name!r} takes no `{key}` (its arguments: {sorted(init_args | fit_args - {'self'})})."
            )
    return init, fit


DISPLACEMENT_CHUNK = 4096  # source cells displaced per call: one chunk's displacement is held, not all of them


def _displace_in_chunks(
    model: MapSolver, x: np.ndarray, threshold: float, rows: np.ndarray, layer: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Displace source cells ``x`` chunk by chunk and summarise: no (n, G) displacement array besides the outputs.

    Returns the displaced genes per cell (n,), each gene's fraction of displacing cells and mean displacement
    (G,), and the mapped cells ``T(x)`` (n, G, for the metrics); writes the displacement into the rows
    ``rows`` of ``layer`` when given.
    """
    n, n_genes = x.shape
    n_displaced, mapped = np.zeros(n, np.int64), np.empty_like(x, dtype=np.float32)
    moved, total = np.zeros(n_genes, np.int64), np.zeros(n_genes, np.float64)
    for start, cells in row_chunks(x, DISPLACEMENT_CHUNK):
        chunk = slice(start, start + len(cells))
        displacement = model.displacement(cells)
        is_moved = np.abs(displacement) > threshold
        n_displaced[chunk], moved = is_moved.sum(1), moved + is_moved.sum(0)
        total += displacement.sum(0, dtype=np.float64)
        mapped[chunk] = cells + displacement
        if layer is not None:
            layer[rows[chunk]] = displacement
    return n_displaced, moved / max(n, 1), total / max(n, 1), mapped


def sparse_displacement(
    adata: AnnData,
    groupby: str,
    source: str,
    target: str,
    *,
    layer: str | None = None,
    penalty: str | None = None,
    lam: float | None = None,
    target_dim: float | None = None,
    threshold: float = 1.0,
    n_iters: int = 2000,
    batch_size: int = 256,
    solver: str = "sparse-icnn",
    sigma: float | None = None,
    gamma: float | None = None,
    seed: int = 0,
    key_added: str = "sparse_displacement",
    displacement_layer: bool | None = None,
    solver_kwargs: dict | None = None,
) -> MapSolver:
    """Learn an OT map from ``source`` to ``target`` cells in gene space whose displacement is sparse.

    Parameters
    ----------
    adata
        Annotated data matrix (genes in ``.X`` or ``layer``, dense or sparse).
    groupby
        Column of ``adata.obs`` holding the groups.
    source, target
        Groups to map from and to.
    layer
        Layer to use instead of ``.X``.
    penalty
        ``"l1"``, ``"smoothed_l0"`` or ``"stvs"`` (``None``: the solver's default, SparseICNN's ``"smoothed_l0"``,
        EntropicElasticMap's ``"l1"``).
    lam
        Penalty strength (``None``: the solver's default, 1.0). With ``target_dim``, the starting value of the
        adaptive search.
    target_dim
        Target mean number of displaced genes per cell: ``lam`` is then adapted (growth, then simulated annealing).
    threshold
        A gene is displaced in a cell when ``|T(x) - x| > threshold``.
    n_iters, batch_size
        Training steps (before any adaptation) and cells per batch.
    solver
        A registered map solver (:class:`~nescot.solvers.MapSolver`): ``"sparse-icnn"`` (alias ``"icnn"``, neural,
        :class:`~nescot.solvers.SparseICNN`) or ``"entropic-map"`` (alias ``"entropic"``): the non-neural entropic
        map of the elastic cost (:class:`~nescot.solvers.EntropicElasticMap`, ott ``RegTICost``, ``l1`` or ``stvs``
        only, small data only; ``lam`` is the elastic weight).
    sigma, gamma
        Width of the smoothed l0 penalty and scale of the STVS penalty (``None``: the solver's default, 1). Both
        solvers give ``lam``, ``gamma`` the same meaning; an argument set for a solver that does not take it is an
        error.
    seed
        Seed of initialisation and training.
    key_added
        Prefix of the keys written.
    displacement_layer
        Write the displacements as ``.layers[key_added]`` (a dense n_obs x n_vars array). ``None`` writes it when the
        genes (``.X`` or ``layer``) are in memory and not when they are on disk (backed h5ad,
        :func:`nescot.io.read_on_disk`), where the layer may not fit in memory; the per-cell and per-gene summaries
        below are written either way.
    solver_kwargs
        Further arguments of the solver (for SparseICNN ``hidden_dims``, ``n_inner``, ...) or of its ``fit``
        (with ``target_dim``: ``block_iters``, ``t_min``, ...): keys of ``fit`` are routed there.

    Returns
    -------
    The fitted map solver. Writes:

    - ``adata.layers[key_added]``: displacement ``T(x) - x`` of source cells, 0 elsewhere (see
      ``displacement_layer``);
    - ``adata.obs[key_added + '_n_displaced']``: displaced genes per source cell (NaN elsewhere);
    - ``adata.var[key_added + '_frequency']``: fraction of source cells displacing each gene;
    - ``adata.var[key_added + '_mean']``: mean displacement of each gene;
    - ``adata.uns[key_added]``: ``params``, ``ranked_genes`` (by frequency, then mean absolute displacement),
      ``trajectory`` (lam, dimensionality and fidelity per block), ``loss_history`` and ``metrics``
      (mean / Q3 dimensionality, sliced Wasserstein and energy distance of the mapped cells to the target).
    """
    key_added = check_key_added(key_added)
    check_groupby(groupby)
    seed = check_seed(seed)
    solver_cls = solver_class(solver, "sparse_displacement", map_only=True)
    if not threshold > 0:
        raise ValueError(f"`threshold` must be > 0, got {threshold}.")
    check_training_args(seed=seed, n_iters=n_iters, batch_size=batch_size)
    check_no_overwrite(
        adata, key_added, {"layers": [key_added], "obs": [f"{key_added}_n_displaced"]},
        {"layers": [layer], "obs": [groupby]},
    )  # fmt: skip
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"Layer {layer!r} not found in adata.layers ({sorted(adata.layers)}).")
    genes = adata.X if layer is None else adata.layers[layer]
    write_layer = dense_layer_wanted("displacement_layer", displacement_layer, genes)
    if displacement_layer is None and not write_layer:
        logger.info("The genes are on disk: no .layers[%r] (pass displacement_layer=True to write it).", key_added)
    # arguments left at None keep the solver's defaults; set ones go where the solver takes them, or fail
    given = {"penalty": penalty, "lam": lam, "sigma": sigma, "gamma": gamma, "target_dim": target_dim}
    given = {k: v for k, v in given.items() if v is not None}
    if "threshold" in inspect.signature(solver_cls.fit).parameters:  # the adaptive search counts genes with it
        given["threshold"] = threshold
    init_kwargs, fit_kwargs = _split_kwargs(solver_cls, given, solver_kwargs)
    masks = get_group_masks(adata, groupby, [source, target])
    rep = "X" if layer is None else layer
    x, y = get_rep(adata, rep, masks[str(source)]), get_rep(adata, rep, masks[str(target)])
    model = build_solver(solver_cls, None, init_kwargs, tool="sparse_displacement")
    model.fit(x, y, n_iters=n_iters, batch_size=batch_size, seed=seed, **fit_kwargs)
    release_freed_memory()  # the outputs come next: allocate them on top of what is in use, not of the peak
    src = masks[str(source)]
    layers = {key_added: np.zeros(adata.shape, np.float32)} if write_layer else {}
    summary = _displace_in_chunks(model, x, threshold, np.flatnonzero(src), layers.get(key_added))
    n_displaced, frequency, mean, mapped = summary
    order = np.lexsort((-np.abs(mean), -frequency))
    counts = np.full(adata.n_obs, np.nan, np.float32)
    counts[src] = n_displaced
    metrics = {
        "mean_dim": float(n_displaced.mean()),
        "q3_dim": float(np.quantile(n_displaced, 0.75)),
        "sliced_wasserstein": sliced_wasserstein(mapped, y, seed=seed),
        "energy_distance": energy_distance(mapped[:2000], y[:2000]),
    }
    config = model.config  # the values the solver used, defaults included
    params = {
        "groupby": groupby, "source": str(source), "target": str(target), "layer": layer,
        "penalty": config.get("penalty", penalty), "lam": config.get("lam", lam),
        "final_lam": getattr(model, "lam", lam), "target_dim": target_dim, "threshold": threshold,
        "n_iters": n_iters, "batch_size": batch_size, "solver": solver_cls.name,
        "sigma": config.get("sigma", sigma), "gamma": config.get("gamma", gamma), "seed": seed,
        "displacement_layer": write_layer, "solver_kwargs": solver_kwargs or {},
    }  # fmt: skip
    traj = pd.DataFrame(getattr(model, "trajectory", []))
    uns = {
        key_added: {
            "params": params,
            "ranked_genes": np.asarray(adata.var_names[order][frequency[order] > 0], dtype=object),
            "trajectory": {c: traj[c].to_numpy() for c in traj.columns} if len(traj) else {},
            "loss_history": model.loss_history,
            "metrics": metrics,
        }
    }
    write_results(
        adata,
        layers=layers,
        obs={f"{key_added}_n_displaced": counts},
        var={f"{key_added}_frequency": frequency.astype(np.float32), f"{key_added}_mean": mean.astype(np.float32)},
        uns=uns,
    )
    return model
