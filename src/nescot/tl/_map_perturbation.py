"""``nescot.tl.map_perturbation``: learn how a control population maps onto perturbed ones."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
from anndata import AnnData

from .._memory import release_freed_memory
from .._settings import logger
from ..io._lazy import LazyRows, column_mean, row_chunks, take_rows
from ..io._rep import check_finite, get_rep
from ..metrics import compare_populations
from ..solvers import ConditionalSolver, batch_size_sensitivity, coupling_kind, make_coupling
from ..solvers._base import check_training_args
from ._solver import build_solver, coupling_label, solver_class
from ._utils import (
    as_group_list,
    check_fit_kwargs,
    check_groupby,
    check_key_added,
    check_no_overwrite,
    check_seed,
    dense_layer_wanted,
    fill_rows,
    get_group_masks,
    relative_mass,
    split_holdout,
    write_results,
)

# GENOT's coupling when `coupling=None` and the problem is balanced; chosen by the benchmarks (docs/methods.md)
DEFAULT_COUPLING = "global"
BATCH_SENSITIVITY_WARNING = 0.1  # measured: 0.008 at d=2, 0.13-0.40 where GENOT's samples follow the batch plan


def _pca_decoder(adata: AnnData, rep: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Return loadings, centre and gene mask to map ``rep`` back to expression, if ``rep`` is scanpy's PCA."""
    if rep != "X_pca" or "PCs" not in adata.varm or adata.X is None:
        return None
    loadings = np.asarray(adata.varm["PCs"], np.float64)
    if loadings.shape[1] != adata.obsm["X_pca"].shape[1]:
        return None
    zero_center = bool(adata.uns.get("pca", {}).get("params", {}).get("zero_center", True))
    centre = column_mean(adata.X) if zero_center else np.zeros(adata.n_vars)
    in_pca = np.any(loadings != 0, axis=1)
    return loadings, centre, in_pca


TRANSPORT_CHUNK = 16_384  # source cells pushed forward per call: the draws of one chunk are held, not of all


def _chunk_seed(seed: int, chunk: int) -> int:
    """Seed of chunk ``chunk``: ``seed`` for the first (so up to one chunk, one call), independent ones after."""
    return seed if chunk == 0 else int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0])


def _push_forward(
    model: ConditionalSolver,
    x: np.ndarray | LazyRows,
    cond: np.ndarray | None,
    rows: np.ndarray,
    n_obs: int,
    n_samples: int,
    seed: int,
    decoder: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    mass: np.ndarray | None,
    expression: bool,
) -> dict[str, np.ndarray]:
    """Transport source cells ``x`` (rows ``rows`` of the AnnData) chunk by chunk into the outputs' arrays.

    Returns the conditional means (n_obs, d) and samples (n_obs, n_samples, d), NaN outside ``rows``, and with a
    PCA ``decoder`` the predicted population's mean expression (cells weighted by ``mass`` when it was learned)
    and, if ``expression``, the decoded means (n_obs, n_vars), 0 outside ``rows`` and on genes outside the PCA.
    Only one chunk of cells (read from disk when ``x`` is on disk) and its draws exist besides the outputs.
    """
    out: dict[str, np.ndarray] = {}
    total, weight = 0.0, 0.0
    for k, (start, cells) in enumerate(row_chunks(x, TRANSPORT_CHUNK)):
        chunk = slice(start, start + len(cells))
        samples = model.transport(cells, cond, n_samples=n_samples, seed=_chunk_seed(seed, k))
        if not out:
            out["mean"] = np.full((n_obs, samples.shape[-1]), np.nan, np.float32)
            out["samples"] = np.full((n_obs, n_samples, samples.shape[-1]), np.nan, np.float32)
        mean = samples.mean(1)
        out["mean"][rows[chunk]], out["samples"][rows[chunk]] = mean, samples
        if decoder is not None:
            loadings, centre, in_pca = decoder
            expr = (mean @ loadings.T + centre) * in_pca
            if expression:
                out.setdefault("expression", np.zeros((n_obs, len(centre)), np.float32))[rows[chunk]] = expr
            w = np.ones(len(expr)) if mass is None else mass[chunk].astype(np.float64)
            total, weight = total + w @ expr, weight + w.sum()
    if decoder is not None:
        out["predicted_mean"] = (total / weight).astype(np.float32)
    return out


def _coupling_diagnostic(
    model: ConditionalSolver, x: np.ndarray | LazyRows, y: np.ndarray | LazyRows, batch_size: int, seed: int
) -> dict[str, float] | None:
    """Batch-size sensitivity of the model's mini-batch coupling on the user's cells (GENOT-like solvers)."""
    if not model.solves_batch_plans or coupling_kind(model.coupling) not in ("linear", "quadratic", "custom"):
        return None  # no mini-batch plans to vary
    if min(len(x), len(y)) <= batch_size:  # batches already hold all cells: no bias to measure
        return None
    # the diagnostic's largest batches hold 4 x batch_size cells: read only that many of each population
    rng = np.random.default_rng(seed)

    def subsample(cells: np.ndarray | LazyRows) -> np.ndarray:
        rows = rng.choice(len(cells), min(len(cells), 4 * int(batch_size)), replace=False)
        return np.asarray(cells[np.sort(rows)], np.float32)

    y_sub = subsample(y)  # targets first: a seed draws the same target cells as before sources were subsampled
    x_sub = subsample(x)
    out = batch_size_sensitivity(model.coupling, x_sub, y_sub, int(batch_size), seed=seed)
    if out["batch_sensitivity"] > BATCH_SENSITIVITY_WARNING:
        logger.warning(
            "The mini-batch coupling's conditionals change by %.2f of the target's variance when batches grow from "
            "%d to %d cells: predictions will reflect the batch size, not only the data (mini-batch bias). Use a "
            "larger `batch_size` or `epsilon`, or fewer dimensions in `rep`; see .uns[key_added]"
            "['coupling_diagnostic'].",
            out["batch_sensitivity"], out["batch_size"], out["reference_batch_size"],
        )  # fmt: skip
    return out


def _coupling(
    cls: type[ConditionalSolver],
    coupling: Any,
    *,
    cost: Any,
    epsilon: float | None,
    scale_cost: float | str,
    tau_a: float,
    tau_b: float,
) -> Any:
    """Return the coupling ``map_perturbation`` hands to the solver, built from the user's problem.

    ``None`` picks, for solvers that take global couplings, the benchmarks' choice (:data:`DEFAULT_COUPLING`) when
    the problem is balanced, else the linear problem itself; solvers with their own objective get none.
    """
    if not isinstance(coupling, str | None):
        return coupling  # a ready coupling object
    if not cls.coupling_kinds:
        if coupling is not None:
            raise ValueError(f"Solver {cls.name!r} has its own objective and takes no `coupling` (got {coupling!r}).")
        if tau_a != 1.0 or tau_b != 1.0:
            raise ValueError(f"Solver {cls.name!r} is balanced: tau_a and tau_b must be 1, got {tau_a} and {tau_b}.")
        defaults = inspect.signature(map_perturbation).parameters
        if (cost, epsilon, scale_cost) != tuple(defaults[k].default for k in ("cost", "epsilon", "scale_cost")):
            raise ValueError(
                f"Solver {cls.name!r} has its own objective: `cost`, `epsilon` and `scale_cost` do not apply to it "
                f"(got {cost!r}, {epsilon!r}, {scale_cost!r}); leave them at their defaults."
            )
        return None
    balanced = tau_a == 1.0 and tau_b == 1.0
    if coupling is None:
        coupling = DEFAULT_COUPLING if "global" in cls.coupling_kinds and balanced else "minibatch"
    return make_coupling(coupling, cost=cost, epsilon=epsilon, scale_cost=scale_cost, tau_a=tau_a, tau_b=tau_b)


def map_perturbation(
    adata: AnnData,
    groupby: str,
    source: str,
    target: str | Sequence[str],
    *,
    rep: str = "X_pca",
    solver: str = "genot",
    cost: Any = "sqeuclidean",
    epsilon: float | None = 0.05,
    scale_cost: float | str = "mean",
    tau_a: float = 1.0,
    tau_b: float = 1.0,
    coupling: str | None = None,
    n_samples: int = 16,
    n_iters: int = 2000,
    batch_size: int = 256,
    holdout: float = 0.1,
    seed: int = 0,
    key_added: str = "map_perturbation",
    expression_layer: bool | None = None,
    solver_kwargs: dict[str, Any] | None = None,
    fit_kwargs: dict[str, Any] | None = None,
) -> ConditionalSolver:
    """Map a source population (e.g. control cells) onto one or several perturbed populations.

    Fits a conditional solver (GENOT by default) of the entropic OT plan from ``source`` cells to
    ``target`` cells in the representation ``rep``, then pushes every source cell forward.

    Parameters
    ----------
    adata
        Annotated data matrix.
    groupby
        Column of ``adata.obs`` holding the groups.
    source
        Group of the source cells.
    target
        Group of the target cells, or a list of groups: one model is then trained for all, conditioned
        on a one-hot encoding of the target group.
    rep
        Representation to map: a key of ``adata.obsm``, ``"X"`` or a layer.
    solver
        ``"genot"``, ``"egnot"`` or another registered solver (:func:`nescot.solvers.registered_solvers`).
    cost, epsilon, scale_cost
        The entropic OT problem, handed to the solver as a :class:`~nescot.solvers.LinearCoupling`: ``epsilon``
        applies to the cost divided by ``scale_cost`` (``"mean"``: relative to the mean cost between source and
        target cells, ``1.0``: absolute), with the same meaning for every solver (GENOT's mini-batch plans
        estimate the mean on each batch, EgNOT and the global couplings on random pairs of the data).
    tau_a, tau_b
        Marginal relaxations in (0, 1]; below 1 the source cells' relative mass is learned (solvers with
        ``supports_unbalanced``: GENOT).
    coupling
        Where a GENOT-like solver draws its training pairs (see :class:`~nescot.solvers.GENOT`): ``"minibatch"``
        (the entropic plan of each training batch), ``"global"`` (a model of the whole data set's plan, fitted
        once: accurate at small ``epsilon`` in many dimensions, balanced only), ``"mixture"`` or ``"egnot"``, or a
        ready coupling object. ``None`` uses ``"global"`` for balanced problems with solvers that take global
        couplings (chosen by the benchmarks: docs/benchmarks.md), and the linear problem itself otherwise (EgNOT
        learns its population plan from it); solvers with their own objective take none.
    n_samples
        Conditional samples drawn per source cell for ``.obsm[key_added + '_samples']`` and the mean.
    n_iters, batch_size
        Training steps and cells per batch.
    holdout
        Fraction of source and target cells held out of training to compute the evaluation metrics
        (0 disables the evaluation).
    seed
        Seed of the split, the training and the sampling.
    key_added
        Prefix of every key written.
    expression_layer
        Write the predicted expression as ``.layers[key]`` (when ``rep`` is a PCA; a dense n_obs x n_vars array).
        ``None`` writes it when ``X`` is in memory and not when it is on disk (backed h5ad,
        :func:`nescot.io.read_on_disk`), where the layer may not fit in memory; the predicted population's mean
        expression, ``.var[key + '_predicted_mean']``, is written either way.
    solver_kwargs
        Further arguments of the solver (e.g. ``hidden_dims``, ``learning_rate``, ``n_samples_per_source``).
    fit_kwargs
        Further arguments of the solver's ``fit``, e.g. for GENOT ``checkpoint_dir``, ``checkpoint_every``,
        ``resume`` (periodic checkpoints of a long training) and ``devices`` (data-parallel training).

    Returns
    -------
    The fitted solver. Writes, with ``key = key_added`` for one target and ``key = key_added + '_' + target``
    for each target of a list:

    - ``adata.obsm[key]``: (n_obs, d) conditional mean E[y | x] of source cells, NaN elsewhere (a per-cell
      summary: the population of conditional means is narrower than the predicted population; use the samples
      to compare populations);
    - ``adata.obsm[key + '_samples']``: (n_obs, n_samples, d) conditional samples, NaN elsewhere;
    - ``adata.obs[key + '_mass']``: unbalanced only, the learned relative mass of source cells, NaN elsewhere:
      1.0 is the average; a cell of mass 2 sends twice the average mass to the target (its kind grows or is
      over-represented there), of mass 0.5 half (it is lost or under-represented). The predicted population is
      the samples weighted by this mass;
    - ``adata.layers[key]``: predicted expression (decoded conditional mean) of source cells (when
      ``rep='X_pca'`` comes from ``sc.pp.pca`` with ``.varm['PCs']``; see ``expression_layer``), 0 elsewhere and
      on genes outside the PCA; ``adata.var[key + '_predicted_mean']``: the predicted population's mean
      expression (mass-weighted);
    - ``adata.uns[key_added]``: ``params``, ``loss_history``; ``metrics`` per target on held-out cells,
      comparing ``n_samples`` draws per held-out source cell (weighted by mass when unbalanced; the unweighted
      values in ``metrics_unweighted``) with the held-out target cells, and ``metrics_identity``, the same
      metrics for unmapped source cells (a baseline); ``coupling_diagnostic`` (solvers trained on mini-batch
      couplings, when the source and the first target have more training cells than ``batch_size``): the
      batch-size sensitivity of the coupling between them (:func:`nescot.solvers.batch_size_sensitivity`),
      with a warning above 0.1.

    The diagnostic is computed before training. Held-out metrics follow
    :func:`nescot.metrics.compare_populations`'s conventions.
    """
    key_added = check_key_added(key_added)
    check_groupby(groupby)
    seed = check_seed(seed)
    targets = as_group_list(target, "target")
    if not targets:
        raise ValueError("`target` must name at least one group.")
    if str(source) in map(str, targets):
        raise ValueError(f"Source group {source!r} is also a target.")
    if not 0.0 <= float(holdout) < 1.0:
        raise ValueError(f"`holdout` must be in [0, 1), got {holdout}.")
    if int(n_samples) < 1:
        raise ValueError(f"`n_samples` must be >= 1, got {n_samples}.")
    write_expression = dense_layer_wanted("expression_layer", expression_layer, adata.X)
    solver_cls = solver_class(solver, "map_perturbation")
    fit_kwargs = check_fit_kwargs(solver_cls, fit_kwargs)
    check_training_args(  # all before the coupling diagnostic and the training
        seed=seed, n_iters=n_iters, batch_size=batch_size,
        resume=bool(fit_kwargs.get("resume")), checkpoint_dir=fit_kwargs.get("checkpoint_dir"),
    )  # fmt: skip
    out_keys = [key_added] if len(targets) == 1 else [f"{key_added}_{t}" for t in targets]
    check_no_overwrite(
        adata,
        key_added,
        {"obsm": out_keys + [f"{k}_samples" for k in out_keys], "obs": [f"{k}_mass" for k in out_keys],
         "layers": out_keys},
        {"obsm": [rep], "layers": [rep], "obs": [groupby]},
    )  # fmt: skip
    masks = get_group_masks(adata, groupby, [source, *targets])
    data = get_rep(adata, rep, lazy=True)  # on-disk X / layer: read by rows, never loaded whole
    pairing = _coupling(
        solver_cls, coupling, cost=cost, epsilon=epsilon, scale_cost=scale_cost, tau_a=tau_a, tau_b=tau_b
    )
    if len(targets) > 1 and not solver_cls.supports_conditions:
        raise ValueError(f"Solver {solver!r} takes no conditions: map one target at a time.")
    model = build_solver(solver_cls, pairing, solver_kwargs, tool="map_perturbation")

    rng = np.random.default_rng(seed)
    src_mask = masks[str(source)]
    src_rows = np.flatnonzero(src_mask)
    x_all = take_rows(data, src_rows)  # on disk: a view, read chunk by chunk for training and transport
    train_rows, test_rows = split_holdout(len(x_all), holdout, rng)
    x_train, x_test = take_rows(x_all, train_rows), np.asarray(x_all[test_rows])
    y_splits = {t: split_holdout(int(masks[str(t)].sum()), holdout, rng) for t in targets}
    y_train = [take_rows(data, np.flatnonzero(masks[str(t)])[y_splits[t][0]]) for t in targets]
    y_test = {t: np.asarray(data[np.flatnonzero(masks[str(t)])[y_splits[t][1]]]) for t in targets}
    if isinstance(data, LazyRows):  # in memory, get_rep has checked every value already
        check_finite(x_all, f"representation {rep!r}")  # before the coupling diagnostic reads any of them
        for t in targets:  # held-out cells are read now, so that a bad value stops the call before training
            check_finite(y_test[t], f"representation {rep!r} (held-out {t!r} cells)")
    conditions = np.eye(len(targets), dtype=np.float32) if len(targets) > 1 else None

    diagnostic = _coupling_diagnostic(model, x_train, y_train[0], batch_size, seed)
    one = len(targets) == 1  # one pair: plain arrays (every solver takes them), several: lists and conditions
    model.fit(
        x_train if one else [x_train] * len(targets),
        y_train[0] if one else y_train,
        condition=conditions,
        n_iters=n_iters,
        batch_size=batch_size,
        seed=seed,
        **fit_kwargs,
    )

    decoder = _pca_decoder(adata, rep)
    if decoder is not None and expression_layer is None and not write_expression:
        logger.info("X is on disk: no .layers[%r] (pass expression_layer=True to write it).", key_added)
    obsm, obs, layers, var, metrics, unweighted, identity = {}, {}, {}, {}, {}, {}, {}
    for k, t in enumerate(targets):
        key = key_added if len(targets) == 1 else f"{key_added}_{t}"
        cond = None if conditions is None else conditions[k]
        mass = relative_mass(model, x_all, cond)
        if mass is not None:
            obs[f"{key}_mass"] = fill_rows(adata.n_obs, src_mask, mass)
        if len(x_test) and len(y_test[t]):  # evaluated first: its transient memory precedes the outputs'
            # the predicted population: n_samples conditional draws per held-out source cell, each cell
            # weighted by its learned mass (unbalanced), as the plan transports it
            drawn = model.transport(x_test, cond, n_samples=n_samples, seed=seed + 1)
            pred = drawn.reshape(-1, drawn.shape[-1])
            weights = None if mass is None else np.repeat(mass[test_rows], n_samples)
            metrics[str(t)] = compare_populations(pred, y_test[t], pred_weights=weights, seed=seed)
            if weights is not None:
                unweighted[str(t)] = compare_populations(pred, y_test[t], seed=seed)
            identity[str(t)] = compare_populations(x_test, y_test[t], seed=seed)
        release_freed_memory()  # the outputs come next: allocate them on top of what is in use, not of the peak
        pushed = _push_forward(
            model, x_all, cond, src_rows, adata.n_obs, n_samples, seed, decoder, mass, write_expression
        )
        obsm[key], obsm[f"{key}_samples"] = pushed["mean"], pushed["samples"]
        if decoder is not None:
            if write_expression:
                layers[key] = pushed["expression"]
            var[f"{key_added}_reconstructed"] = decoder[2]
            var[f"{key}_predicted_mean"] = pushed["predicted_mean"]
    if holdout and not metrics:
        logger.warning("Groups too small for a held-out evaluation with holdout=%s; no metrics computed.", holdout)

    params = {
        "groupby": groupby,
        "source": str(source),
        "target": [str(t) for t in targets],
        "rep": rep,
        "solver": solver,
        "cost": cost if isinstance(cost, str) else repr(cost),
        "epsilon": epsilon,
        "scale_cost": scale_cost,
        "tau_a": tau_a,
        "tau_b": tau_b,
        "coupling": coupling_label(model),
        "n_samples": n_samples,
        "n_iters": n_iters,
        "batch_size": batch_size,
        "holdout": holdout,
        "seed": seed,
        "solver_kwargs": solver_kwargs or {},
        "n_train_source": len(x_train),
        "n_test_source": len(x_test),
    }
    uns = {key_added: {"params": params, "loss_history": model.loss_history, "metrics": metrics}}
    if identity:
        uns[key_added]["metrics_identity"] = identity
    if unweighted:
        uns[key_added]["metrics_unweighted"] = unweighted
    if diagnostic is not None:
        uns[key_added]["coupling_diagnostic"] = diagnostic
    write_results(adata, obsm=obsm, obs=obs, var=var or None, layers=layers, uns=uns)
    return model


__all__ = ["map_perturbation"]
