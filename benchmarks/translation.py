"""Cross-modality translation: GENOT with Gromov-Wasserstein couplings.

``translation.multiome`` (ATAC -> RNA on the simulated multiome, GW vs fused GW) goes through
``nescot.tl.translate_modalities``, which holds out paired cells and reports FOSCTTM (fraction of samples closer
than the true match; 0 is perfect, 0.5 is chance) and kNN cell-type transfer accuracy on them.
``translation.isometric`` compares GENOT's mini-batch and global GW couplings with the discrete GW plan of all
cells on a problem whose answer is known (the source is an isometric image of the target).
"""

from __future__ import annotations

import time

import jax
import numpy as np

import nescot as ns
from nescot.metrics import foscttm, label_transfer_accuracy
from nescot.solvers import GENOT, EgNOT, QuadraticCoupling, SubsamplePlanCoupling

from . import register

CFG = {
    "smoke": {"n_cells": 200, "n_iters": 20, "batch": 64, "net": {"hidden_dims": (32, 32), "embed_dim": 16}},
    "quick": {"n_cells": 2000, "n_iters": 1000, "batch": 128, "net": {}},
    "full": {"n_cells": 10000, "n_iters": 5000, "batch": 256, "net": {}},
}


@register("translation.multiome", kind="accuracy")
def multiome(suite: str) -> dict:
    """FOSCTTM and kNN label transfer on the simulated multiome, GW vs fused GW."""
    cfg = CFG[suite]
    rows = []
    for coupling, fused in (("GW", None), ("fused GW (alpha 0.5)", "X_shared")):
        rna, atac = ns.datasets.simulate_multiome(cfg["n_cells"], seed=0)
        t0 = time.perf_counter()
        ns.tl.translate_modalities(atac, rna, "X_pca", "X_pca", fused_rep=fused, n_iters=cfg["n_iters"],
                                   batch_size=cfg["batch"], transfer_labels=["cell_type"], seed=0,
                                   solver_kwargs=cfg["net"])  # fmt: skip
        metrics = atac.uns["translate_modalities"]["metrics"]
        rows.append(
            {
                "coupling": coupling,
                "foscttm": metrics["foscttm"],
                "label_transfer_acc": metrics["label_accuracy_cell_type"],
                "train_s": round(time.perf_counter() - t0, 1),
            }
        )
    return {
        "rows": rows,
        "notes": [
            f"simulate_multiome({cfg['n_cells']}, seed=0): ATAC X_pca (10) -> RNA X_pca (15), fused runs add the "
            f"shared gene-activity features X_shared; {cfg['n_iters']} steps, batch {cfg['batch']}, eps 0.01 "
            "(relative), 20% of pairs held out",
        ],
    }


ISOMETRIC = {
    "smoke": {"n_cells": 200, "n_iters": 20, "batch": 64, "net": {"hidden_dims": (32, 32), "embed_dim": 16},
              "egnot_iters": 10, "egnot_net": {"hidden_dims": (32, 32), "n_langevin_steps": 10}},
    "quick": {"n_cells": 2000, "n_iters": 1000, "batch": 128, "net": {}, "egnot_iters": 500, "egnot_net": {}},
    "full": {"n_cells": 4000, "n_iters": 5000, "batch": 256, "net": {}, "egnot_iters": 2500, "egnot_net": {}},
}  # fmt: skip
ISO_DIMS, ISO_EMBED, ISO_CLUSTERS, ISO_NOISE, ISO_EPSILON = 10, 30, 8, 0.05, 0.01


def isometric_clusters(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source (n, 30), target (n, 10) and cluster labels; source ``i`` is target ``i`` embedded isometrically.

    Cluster centres in general position, random sizes and per-axis spreads: no isometry other than the identity
    maps the target cloud onto itself, so GW's solution is the embedding's inverse (up to the noise).
    """
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(ISO_CLUSTERS, ISO_DIMS))
    label = rng.choice(ISO_CLUSTERS, n, p=rng.dirichlet(np.full(ISO_CLUSTERS, 3.0)))
    spread = rng.uniform(0.3, 1.0, size=(ISO_CLUSTERS, ISO_DIMS))
    y = centres[label] + rng.normal(size=(n, ISO_DIMS)) * spread[label]
    embed, _ = np.linalg.qr(rng.normal(size=(ISO_EMBED, ISO_DIMS)))  # orthonormal columns
    x = y @ embed.T + ISO_NOISE * rng.normal(size=(n, ISO_EMBED))
    return x.astype(np.float32), y.astype(np.float32), label


@register("translation.isometric", kind="accuracy")
def isometric(suite: str) -> dict:
    """GW across dimensions with a known answer: discrete GW plan vs GENOT mini-batch / global coupling vs EgNOT."""
    cfg = ISOMETRIC[suite]
    x, y, label = isometric_clusters(cfg["n_cells"])
    perm = np.random.default_rng(1).permutation(len(y))  # unpaired training: targets shuffled
    y_train = y[perm]
    gw = QuadraticCoupling(epsilon=ISO_EPSILON)

    def scores(pred: np.ndarray) -> dict:
        return {
            "foscttm": foscttm(pred, y),
            "label_transfer_acc": label_transfer_accuracy(pred, y_train, label[perm], label),
        }

    t0 = time.perf_counter()
    out = jax.jit(lambda a, b: gw(a, b))(x, y_train)
    plan = np.asarray(out.plan, np.float64)
    seconds = time.perf_counter() - t0
    rows = [{"method": "discrete GW (ott, all cells)", **scores(plan @ y_train / plan.sum(1, keepdims=True)),
             "train_s": round(seconds, 1)}]  # fmt: skip
    solvers = (
        ("GENOT minibatch", GENOT(coupling=gw, **cfg["net"]), cfg["n_iters"]),
        ("GENOT global", GENOT(coupling=SubsamplePlanCoupling(gw), **cfg["net"]), cfg["n_iters"]),
        # EgNOT across spaces: the population plan of the linearised cost of the same GW plan (one subsample solve)
        ("EgNOT on the GW plan's linearised cost", EgNOT(coupling=SubsamplePlanCoupling(gw), **cfg["egnot_net"]),
         cfg["egnot_iters"]),
    )  # fmt: skip
    for name, model, n_iters in solvers:
        t0 = time.perf_counter()
        model.fit(x, y_train, n_iters=n_iters, batch_size=cfg["batch"], seed=0)
        seconds = time.perf_counter() - t0
        pred = model.transport(x, n_samples=16, seed=0).mean(1)
        rows.append({"method": name, **scores(pred), "train_s": round(seconds, 1)})
    return {
        "rows": rows,
        "notes": [
            f"{cfg['n_cells']} cells in {ISO_CLUSTERS} clusters (d={ISO_DIMS} target); source: isometric image in "
            f"d={ISO_EMBED} plus noise sd {ISO_NOISE}; trained unpaired, scored on the same cells against their "
            f"true match",
            f"entropic GW, epsilon {ISO_EPSILON} relative to the mean cost; the discrete plan converged: "
            f"{bool(out.converged)}; GENOT: {cfg['n_iters']} steps, batch {cfg['batch']}, conditional mean of 16 "
            "draws; global = SubsamplePlanCoupling(n_cells=2048), i.e. the plan of all cells here",
            f"EgNOT: defaults, {cfg['egnot_iters']} steps, the same SubsamplePlanCoupling, conditional mean of 16 "
            "Langevin draws (chains started from the plan's draws)",
        ],
    }
