"""``nescot.tl.translate_modalities``: map cells of one modality into another with GW / fused GW couplings."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .._memory import release_freed_memory
from .._settings import logger
from ..io._rep import get_rep
from ..metrics import foscttm, knn_transfer, label_transfer_accuracy
from ..solvers import ConditionalSolver, QuadraticCoupling, SubsamplePlanCoupling
from ..solvers._base import check_training_args
from ._solver import build_solver, solver_class
from ._utils import check_key_added, check_no_overwrite, check_seed, fill_rows, relative_mass, write_results


def _resolve_objects(
    adata_src: Any, adata_tgt: Any, src_mod: str | None, tgt_mod: str | None
) -> tuple[AnnData, AnnData, tuple[str, str] | None]:
    """Accept two AnnData, or a MuData with the names of its source and target modalities."""
    if isinstance(adata_src, AnnData):
        if src_mod is not None or tgt_mod is not None:
            raise ValueError("`src_mod` and `tgt_mod` name modalities of a MuData; the first argument is an AnnData.")
        if not isinstance(adata_tgt, AnnData):
            raise TypeError(f"`adata_tgt` must be an AnnData when `adata_src` is one, got {type(adata_tgt).__name__}.")
        return adata_src, adata_tgt, None
    mods = getattr(adata_src, "mod", None)
    if mods is None:
        raise TypeError(f"Expected AnnData or MuData, got {type(adata_src).__name__}.")
    if isinstance(adata_tgt, Sequence) and not isinstance(adata_tgt, str) and len(adata_tgt) == 2:
        warnings.warn(
            "Passing the MuData's modality names as a tuple is deprecated; use `src_mod=` and `tgt_mod=`.",
            FutureWarning,
            stacklevel=3,
        )
        src_mod, tgt_mod = adata_tgt
    elif adata_tgt is not None:
        raise TypeError("With a MuData, name its modalities with `src_mod=` and `tgt_mod=`; leave `adata_tgt` out.")
    if src_mod is None or tgt_mod is None:
        raise ValueError(f"With a MuData, pass `src_mod` and `tgt_mod`: two of its modalities {list(mods)}.")
    for name in (src_mod, tgt_mod):
        if name not in mods:
            raise KeyError(f"Modality {name!r} not found in the MuData; modalities are {list(mods)}.")
    return mods[src_mod], mods[tgt_mod], (src_mod, tgt_mod)


def _coupling_name(cls: type[ConditionalSolver], coupling: str | None) -> str:
    """``coupling``, or for ``None`` the solver's own way of learning from a GW problem."""
    if coupling is None:
        coupling = "minibatch" if cls.solves_batch_plans else "global"
    if coupling not in ("minibatch", "global"):
        raise ValueError(f"`coupling` must be 'minibatch' or 'global', got {coupling!r}.")
    return coupling


def _coupling(coupling: str, pairing: QuadraticCoupling, n_global_cells: int) -> Any:
    """Return the quadratic coupling handed to the solver: per batch, or solved once on a subsample."""
    if coupling == "global" and not pairing.is_balanced:
        raise ValueError(
            f"coupling='global' solves a balanced plan; unbalanced problems (tau_a={pairing.tau_a}, "
            f"tau_b={pairing.tau_b}) need coupling='minibatch'."
        )
    return pairing if coupling == "minibatch" else SubsamplePlanCoupling(pairing, n_cells=int(n_global_cells))


def translate_modalities(
    adata_src: AnnData | Any,
    adata_tgt: AnnData | None = None,
    src_rep: str | None = None,
    tgt_rep: str | None = None,
    *,
    src_mod: str | None = None,
    tgt_mod: str | None = None,
    solver: str = "genot",
    fused_rep: str | None = None,
    alpha: float | None = None,
    epsilon: float = 0.01,
    tau_a: float = 1.0,
    tau_b: float = 1.0,
    intra_cost: str = "sqeuclidean",
    coupling: str | None = None,
    n_global_cells: int = 2048,
    n_samples: int = 16,
    n_iters: int = 2000,
    batch_size: int = 128,
    holdout: float = 0.2,
    transfer_labels: Sequence[str] | None = None,
    n_neighbors: int = 15,
    seed: int = 0,
    key_added: str = "translate_modalities",
    solver_kwargs: dict[str, Any] | None = None,
) -> ConditionalSolver:
    """Translate cells of a source modality (e.g. ATAC) into a target modality (e.g. RNA) with GENOT or EgNOT.

    The two modalities live in different spaces, so cells are coupled by entropic Gromov-Wasserstein
    (comparing distances within each space): on each mini-batch, or once on a large subsample of the cells
    (``coupling="global"``); with ``fused_rep``, features measured in both (e.g. gene activity vs expression)
    add a linear term (fused GW). Cells need not be paired: pairing (shared ``obs_names``) is used only to
    evaluate on held-out cells, never to train.

    Parameters
    ----------
    adata_src
        Source modality, or a MuData holding both.
    adata_tgt
        Target modality (leave it out with a MuData).
    src_rep, tgt_rep
        Representations (``.obsm`` key, ``"X"`` or a layer) of the source and target cells.
    src_mod, tgt_mod
        With a MuData: the names of its source and target modalities (results go to the source modality).
    solver
        A registered solver that learns across spaces: ``"genot"`` (from mini-batch or subsample GW plans) or
        ``"egnot"`` (an energy model of the GW plan, linearised around a plan solved once on a subsample:
        ``coupling="global"``; its Langevin chains start from that plan's draws). On a benchmark with a known
        pairing (8 clusters, a sharp plan) both recover it; GENOT's FOSCTTM is 0.83 times EgNOT's, in about a
        third of the training time (docs/benchmarks.md).
    fused_rep
        Representation present in both objects with the same features, for fused GW.
    alpha
        Weight of the GW term in [0, 1] (1: pure GW; 0: linear on the fused features only). Default: 1 without
        ``fused_rep``, 0.5 with it.
    epsilon
        Entropic regularisation, relative to mean costs (each cost matrix is divided by its mean).
    tau_a, tau_b
        Marginal relaxations in (0, 1]; below 1 the source cells' relative mass is learned.
    intra_cost
        Cost within each space: ``"sqeuclidean"``, ``"euclidean"``, ``"cosine"`` or ``"geodesic"`` (kNN graph).
    coupling
        How the GW problem reaches the solver. ``"minibatch"``: the (fused) GW plan of each training batch
        (GENOT). ``"global"``: one plan solved before training on up to ``n_global_cells`` cells of each modality
        (:class:`~nescot.solvers.SubsamplePlanCoupling`), much closer to the plan of all cells than a batch's
        (benchmark ``translation.isometric``); balanced problems only (``tau_a = tau_b = 1``). ``None``:
        ``"minibatch"`` for solvers that solve batch plans (GENOT), ``"global"`` for the others (EgNOT).
    n_global_cells
        Cells per modality of the global plan (time and memory grow as its square); ignored for ``"minibatch"``.
    n_samples
        Conditional samples per source cell.
    n_iters, batch_size
        Training steps and cells per batch.
    holdout
        Fraction of paired cells (shared ``obs_names``) held out of training for the evaluation.
    transfer_labels
        Columns of ``adata_tgt.obs`` to transfer to the source cells by kNN in target space.
    n_neighbors
        Neighbours for label transfer.
    seed
        Seed of the split, the training and the sampling.
    key_added
        Prefix of the keys written.
    solver_kwargs
        Further arguments of the solver (e.g. ``hidden_dims``, ``learning_rate``).

    Returns
    -------
    The fitted solver. Writes into ``adata_src`` (the source modality of a MuData):

    - ``.obsm[key_added]``: (n_src, d_tgt) translated coordinates (conditional mean);
    - ``.obsm[key_added + '_samples']``: (n_src, n_samples, d_tgt);
    - ``.obs[key_added + '_mass']``: learned relative mass (unbalanced only; 1.0 is the average source cell,
      see :func:`nescot.tl.map_perturbation`);
    - ``.obs[key_added + '_' + label]`` and ``.obs[key_added + '_' + label + '_confidence']`` per transferred label;
    - ``.uns[key_added]``: ``params``, ``loss_history`` and, for paired data, ``metrics`` on held-out pairs
      (``foscttm`` and ``label_accuracy_<label>``).
    """
    src, tgt, mod_names = _resolve_objects(adata_src, adata_tgt, src_mod, tgt_mod)
    if src_rep is None or tgt_rep is None:
        raise TypeError("Pass `src_rep` and `tgt_rep`, the representations of the source and target cells.")
    solver_cls = solver_class(solver, "translate_modalities")
    coupling = _coupling_name(solver_cls, coupling)
    key_added = check_key_added(key_added)
    seed = check_seed(seed)
    check_training_args(seed=seed, n_iters=n_iters, batch_size=batch_size)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 1:
        raise ValueError(f"`n_samples` must be an integer >= 1, got {n_samples!r}.")
    for name, adata in (("source", src), ("target", tgt)):
        if adata.n_obs < 2:
            raise ValueError(f"The {name} object has {adata.n_obs} cell(s); at least 2 are needed.")
        if not adata.obs_names.is_unique:
            dup = adata.obs_names[adata.obs_names.duplicated()][:3].tolist()
            raise ValueError(
                f"The {name} object has duplicate obs_names (e.g. {dup}); pairing by barcode needs unique names: "
                "call `.obs_names_make_unique()` first."
            )
    if alpha is None:
        alpha = 1.0 if fused_rep is None else 0.5
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha}.")
    if fused_rep is None and alpha < 1.0:
        raise ValueError(f"alpha={alpha} < 1 weights a fused term: pass `fused_rep`.")
    if isinstance(n_global_cells, bool) or not isinstance(n_global_cells, int | np.integer) or n_global_cells < 2:
        raise ValueError(f"`n_global_cells` must be an integer >= 2, got {n_global_cells!r}.")
    if not 0.0 <= float(holdout) < 1.0:
        raise ValueError(f"`holdout` must be in [0, 1), got {holdout}.")
    labels = [transfer_labels] if isinstance(transfer_labels, str) else list(transfer_labels or [])
    for label in labels:
        if label not in tgt.obs:
            raise KeyError(f"Label {label!r} not found in the target's .obs; columns are {list(tgt.obs.columns)}.")
    written_obs = [f"{key_added}_mass"] + [f"{key_added}_{lab}{s}" for lab in labels for s in ("", "_confidence")]
    check_no_overwrite(
        src, key_added, {"obsm": [key_added, f"{key_added}_samples"], "obs": written_obs, "layers": []},
        {"obsm": [src_rep, fused_rep]},
    )  # fmt: skip
    x, y = get_rep(src, src_rep), get_rep(tgt, tgt_rep)
    d_tgt = y.shape[1]
    n_shared = 0
    if fused_rep is not None:
        fx, fy = get_rep(src, fused_rep), get_rep(tgt, fused_rep)
        if fx.shape[1] != fy.shape[1]:
            raise ValueError(
                f"`fused_rep` {fused_rep!r} has {fx.shape[1]} features in the source but {fy.shape[1]} in the target."
            )
        x, y, n_shared = np.hstack([x, fx]), np.hstack([y, fy]), fx.shape[1]
    pairing = QuadraticCoupling(
        epsilon=epsilon, alpha=float(alpha), n_shared=n_shared, cost_x=intra_cost, cost_y=intra_cost,
        tau_a=tau_a, tau_b=tau_b, n_neighbors=n_neighbors,
    )  # fmt: skip
    model = build_solver(
        solver_cls, _coupling(coupling, pairing, n_global_cells), solver_kwargs, tool="translate_modalities"
    )

    # Paired cells (same barcodes) are split once; held-out ones are left out of training on both sides.
    rng = np.random.default_rng(seed)
    paired = src.obs_names.intersection(tgt.obs_names)
    n_test = int(np.floor(holdout * len(paired))) if len(paired) >= 10 else 0
    test = pd.Index(rng.choice(paired, n_test, replace=False)) if n_test else pd.Index([])
    src_train = ~src.obs_names.isin(test)
    tgt_train = ~tgt.obs_names.isin(test)
    model.fit(x[src_train], y[tgt_train], n_iters=n_iters, batch_size=batch_size, seed=seed)

    release_freed_memory()  # the outputs come next: allocate them on top of what is in use, not of the peak
    samples = model.transport(x, n_samples=n_samples, seed=seed)[..., :d_tgt]
    mean = samples.mean(1)
    everyone = np.ones(src.n_obs, bool)
    obsm = {key_added: fill_rows(src.n_obs, everyone, mean), f"{key_added}_samples": samples.astype(np.float32)}
    obs: dict[str, Any] = {}
    mass = relative_mass(model, x, None)
    if mass is not None:
        obs[f"{key_added}_mass"] = mass
    for label in labels:
        predicted, confidence = knn_transfer(mean, y[:, :d_tgt], tgt.obs[label].to_numpy(), n_neighbors)
        obs[f"{key_added}_{label}"] = pd.Categorical(predicted.astype(str))
        obs[f"{key_added}_{label}_confidence"] = confidence.astype(np.float32)

    metrics: dict[str, float] = {}
    if n_test >= 2:
        src_pos, tgt_pos = src.obs_names.get_indexer(test), tgt.obs_names.get_indexer(test)
        metrics["foscttm"] = foscttm(mean[src_pos], y[tgt_pos, :d_tgt])
        for label in labels:
            metrics[f"label_accuracy_{label}"] = label_transfer_accuracy(
                mean[src_pos], y[tgt_train, :d_tgt], tgt.obs[label].to_numpy()[tgt_train],
                tgt.obs[label].to_numpy()[tgt_pos], n_neighbors,
            )  # fmt: skip
    elif len(paired):
        logger.warning("Only %d paired cells: too few for a held-out evaluation.", len(paired))
    params = {
        "src_rep": src_rep, "tgt_rep": tgt_rep, "fused_rep": fused_rep, "alpha": alpha, "epsilon": epsilon,
        "tau_a": tau_a, "tau_b": tau_b, "intra_cost": intra_cost, "solver": solver, "coupling": coupling,
        "n_global_cells": int(n_global_cells), "n_samples": n_samples, "n_iters": n_iters,
        "batch_size": batch_size, "holdout": holdout, "transfer_labels": labels, "n_neighbors": n_neighbors,
        "seed": seed, "solver_kwargs": solver_kwargs or {}, "modalities": list(mod_names or []),
        "n_test_pairs": int(n_test),
    }  # fmt: skip
    uns = {key_added: {"params": params, "loss_history": model.loss_history, "metrics": metrics}}
    write_results(src, obsm=obsm, obs=obs, uns=uns)
    return model
