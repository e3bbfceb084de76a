"""``nescot.tl.sparse_displacement``: which genes does a perturbation move? A sparse neural OT map in gene space."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from ..metrics import energy_distance, sliced_wasserstein
from ..solvers import SparseICNN, entropic_elastic_map
from ..solvers._base import check_training_args
from ._utils import (
    check_groupby,
    check_key_added,
    check_no_overwrite,
    check_seed,
    get_group_masks,
    get_rep,
    write_results,
)

_SOLVERS = ("icnn", "entropic")


def sparse_displacement(
    adata: AnnData,
    groupby: str,
    source: str,
    target: str,
    *,
    layer: str | None = None,
    penalty: str = "smoothed_l0",
    lam: float | None = None,
    target_dim: float | None = None,
    threshold: float = 1.0,
    n_iters: int = 2000,
    batch_size: int = 256,
    solver: str = "icnn",
    sigma: float = 1.0,
    gamma: float = 1.0,
    seed: int = 0,
    key_added: str = "sparse_displacement",
    solver_kwargs: dict | None = None,
) -> SparseICNN | None:
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
        ``"l1"``, ``"smoothed_l0"`` or ``"stvs"``.
    lam
        Penalty strength (default 1.0). With ``target_dim``, the starting value of the adaptive search.
    target_dim
        Target mean number of displaced genes per cell: ``lam`` is then adapted (growth, then simulated annealing).
    threshold
        A gene is displaced in a cell when ``|T(x) - x| > threshold``.
    n_iters, batch_size
        Training steps (before any adaptation) and cells per batch.
    solver
        ``"icnn"`` (neural) or ``"entropic"``: the non-neural entropic map of the elastic cost (ott ``RegTICost``,
        ``l1`` or ``stvs`` only, small data only; ``lam`` is the elastic weight).
    sigma, gamma
        Parameters of the smoothed l0 and STVS penalties.
    seed
        Seed of initialisation and training.
    key_added
        Prefix of the keys written.
    solver_kwargs
        Further arguments of :class:`~nescot.solvers.SparseICNN` (``hidden_dims``, ``n_inner``, ...) or, with
        ``target_dim``, of its ``fit`` (``block_iters``, ``t_min``, ...): keys of ``fit`` are routed there.

    Returns
    -------
    The fitted :class:`~nescot.solvers.SparseICNN` (``None`` for ``solver="entropic"``). Writes:

    - ``adata.layers[key_added]``: displacement ``T(x) - x`` of source cells, 0 elsewhere;
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
    if solver not in _SOLVERS:
        raise ValueError(f"Unknown solver {solver!r}; choose from {_SOLVERS}.")
    if not threshold > 0:
        raise ValueError(f"`threshold` must be > 0, got {threshold}.")
    if solver == "icnn":  # the entropic baseline does not train
        check_training_args(seed=seed, n_iters=n_iters, batch_size=batch_size)
    check_no_overwrite(
        adata, key_added, {"layers": [key_added], "obs": [f"{key_added}_n_displaced"]},
        {"layers": [layer], "obs": [groupby]},
    )  # fmt: skip
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"Layer {layer!r} not found in adata.layers ({sorted(adata.layers)}).")
    if solver == "entropic" and target_dim is not None:
        raise ValueError("Adaptive lam (`target_dim`) needs solver='icnn'.")
    if solver == "entropic" and penalty not in ("l1", "stvs"):
        raise ValueError(f"The entropic baseline supports the 'l1' and 'stvs' penalties, got {penalty!r}.")
    masks = get_group_masks(adata, groupby, [source, target])
    data = get_rep(adata, "X" if layer is None else layer)
    x, y = data[masks[str(source)]], data[masks[str(target)]]
    lam = 1.0 if lam is None else float(lam)
    kwargs = dict(solver_kwargs or {})
    fit_keys = {"block_iters", "lam_growth", "max_growth_blocks", "t0", "t_min", "cooling"}
    fit_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in fit_keys}

    model, trajectory, losses = None, [], {}
    if solver == "icnn":
        model = SparseICNN(penalty=penalty, lam=lam, sigma=sigma, gamma=gamma, **kwargs)
        model.fit(
            x, y, n_iters=n_iters, batch_size=batch_size, seed=seed, target_dim=target_dim, threshold=threshold,
            **fit_kwargs,
        )  # fmt: skip
        displacement = model.displacement(x)
        trajectory, losses = model.trajectory, model.loss_history
    else:
        displacement = entropic_elastic_map(x, y, penalty=penalty, gamma=lam)(x) - x

    moved = np.abs(displacement) > threshold
    n_displaced = moved.sum(1)
    frequency = moved.mean(0)
    mean = displacement.mean(0)
    order = np.lexsort((-np.abs(mean), -frequency))
    src = masks[str(source)]
    layer_out = np.zeros(adata.shape, np.float32)
    layer_out[src] = displacement
    counts = np.full(adata.n_obs, np.nan, np.float32)
    counts[src] = n_displaced
    mapped = x + displacement
    metrics = {
        "mean_dim": float(n_displaced.mean()),
        "q3_dim": float(np.quantile(n_displaced, 0.75)),
        "sliced_wasserstein": sliced_wasserstein(mapped, y, seed=seed),
        "energy_distance": energy_distance(mapped[:2000], y[:2000]),
    }
    params = {
        "groupby": groupby, "source": str(source), "target": str(target), "layer": layer, "penalty": penalty,
        "lam": lam, "final_lam": model.lam if model is not None else lam, "target_dim": target_dim,
        "threshold": threshold, "n_iters": n_iters, "batch_size": batch_size, "solver": solver, "sigma": sigma,
        "gamma": gamma, "seed": seed, "solver_kwargs": solver_kwargs or {},
    }  # fmt: skip
    traj = pd.DataFrame(trajectory)
    uns = {
        key_added: {
            "params": params,
            "ranked_genes": np.asarray(adata.var_names[order][frequency[order] > 0], dtype=object),
            "trajectory": {c: traj[c].to_numpy() for c in traj.columns} if len(traj) else {},
            "loss_history": losses,
            "metrics": metrics,
        }
    }
    write_results(
        adata,
        layers={key_added: layer_out},
        obs={f"{key_added}_n_displaced": counts},
        var={f"{key_added}_frequency": frequency.astype(np.float32), f"{key_added}_mean": mean.astype(np.float32)},
        uns=uns,
    )
    return model
