"""The methods page's figure, drawn from real fits: ``python -m benchmarks.methods_figure`` (``--out`` to move it).

Three panels, one per solver family, each a model trained here with a fixed seed (nothing is drawn by hand):

- GENOT and EgNOT on the same 2-D problem (a Gaussian source, eight Gaussian targets, the same relative epsilon):
  draws of ``y | x`` for three source cells, i.e. the conditional laws of the entropic plan each solver learned;
- ``nescot.tl.sparse_displacement`` on the paper's synthetic design with a known set of moved genes: the mean
  displacement per gene, the truly moved genes in colour.

``--quick`` trains for a few steps only (to check that the script runs, not to look at).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._plots import _SAVE

N_CELLS = 2000
EPSILON = 0.1  # relative to the mean cost: the plan's conditionals span neighbouring modes
QUERY = np.array([[0.0, 0.0], [1.2, 0.3], [-0.8, -1.0]], np.float32)  # three source cells to show
COLOURS = ("#d62728", "#1f77b4", "#2ca02c")


def fit_models(quick: bool = False, seed: int = 0) -> dict:
    """Train the three solvers; return the data and draws the figure shows."""
    import nescot as ns

    steps = {"genot": 3 if quick else 3000, "egnot": 3 if quick else 1500, "sparse": 3 if quick else 1500}
    x = ns.datasets.gaussian_source(N_CELLS, seed=seed)
    y = ns.datasets.eight_gaussians(N_CELLS, seed=seed + 1)
    query = x[np.argmin(((x[:, None] - QUERY[None]) ** 2).sum(-1), axis=0)]  # the source cells nearest QUERY
    genot = ns.solvers.GENOT(epsilon=EPSILON, scale_cost="mean", hidden_dims=(128, 128, 128))
    genot.fit(x, y, n_iters=steps["genot"], batch_size=256, seed=seed)
    egnot = ns.solvers.EgNOT(epsilon=EPSILON, scale_cost="mean", hidden_dims=(128, 128))
    egnot.fit(x, y, n_iters=steps["egnot"], batch_size=256, seed=seed)
    adata = ns.datasets.simulate_sparse_perturbation(1000, 30, 4, seed=seed)
    ns.tl.sparse_displacement(
        adata, "condition", "control", "treated", target_dim=4, n_iters=steps["sparse"], batch_size=256, seed=seed
    )
    return {
        "x": x, "y": y, "query": query,
        "genot": genot.transport(query, n_samples=300, seed=seed),
        "egnot": egnot.transport(query, n_samples=300, seed=seed),
        "displacement": np.asarray(adata.var["sparse_displacement_mean"], float),
        "moved": adata.var["displaced"].to_numpy(bool),
    }  # fmt: skip


def draw(fits: dict) -> Figure:
    """The three panels."""
    fig = Figure(figsize=(12, 3.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.25]})
    for ax, name, title in (
        (axes[0], "genot", "GENOT: flow-matching model of y | x"),
        (axes[1], "egnot", "EgNOT: Langevin draws from its potential"),
    ):
        ax.scatter(*fits["x"].T, s=2, c="#e3c58f", alpha=0.5, label="source cells")
        ax.scatter(*fits["y"].T, s=2, c="0.6", alpha=0.5, label="target cells")
        for k, colour in enumerate(COLOURS):
            ax.scatter(*fits[name][k].T, s=4, c=colour, alpha=0.5)
            ax.scatter(*fits["query"][k], s=120, c=colour, marker="*", edgecolors="k", linewidths=0.8, zorder=3)
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
        ax.set_xticks([]), ax.set_yticks([])
    axes[0].legend(loc="lower left", fontsize=7, markerscale=3, frameon=False)
    genes = np.arange(len(fits["displacement"]))
    colours = np.where(fits["moved"], "#d62728", "0.6")
    axes[2].bar(genes, np.abs(fits["displacement"]), color=colours)
    axes[2].set_xlabel("gene (red: moved by the simulated perturbation)")
    axes[2].set_ylabel("|mean displacement T(x) - x|")
    axes[2].set_title("Displacement-sparse ICNN map: which genes move", fontsize=10)
    fig.suptitle(
        "Source cells (stars) and 300 draws each from the learned conditional law; right: sparse_displacement",
        fontsize=9,
        y=0.02,
    )
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    """Fit, draw and save."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/_static/methods.png"))
    parser.add_argument("--quick", action="store_true", help="a few training steps (checks that the script runs)")
    args = parser.parse_args(argv)
    import nescot as ns

    ns.settings.progress_bar = False
    fig = draw(fit_models(quick=args.quick))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, **_SAVE)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
