"""Figures of the committed benchmark records: ``python -m benchmarks plot --out docs/_static/benchmarks``.

Every value drawn is read from a JSON record in ``benchmarks/results/`` or, for other solvers' published
figures, from :mod:`benchmarks._published`; no number is typed here, so re-running an entry and then this
command updates the figures of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._published import PUBLISHED

RESULTS = Path(__file__).with_name("results")
# PNG metadata would carry the matplotlib version: without it the committed files change only with the data.
_SAVE = {"dpi": 110, "bbox_inches": "tight", "metadata": {"Software": None}}


def entry_rows(results: Path, record: str, name: str) -> list[dict]:
    """Rows of entry ``name`` in the record file ``record`` of the folder ``results``.

    Parameters
    ----------
    results
        Folder of the JSON records (``benchmarks/results``).
    record
        File name of the record, e.g. ``"quick_real.json"``.
    name
        Entry name, e.g. ``"real.kang"``.

    Returns
    -------
    The entry's table rows.

    Raises
    ------
    ValueError
        If the entry is missing from the record or did not run (a figure must not silently lose a series).
    """
    for res in json.loads((results / record).read_text())["results"]:
        if res["name"] == name:
            if res["status"] != "ok":
                raise ValueError(f"{name} in {record} has status {res['status']!r}")
            return res["rows"]
    raise ValueError(f"no entry {name!r} in {record}")


def _new_figure(width: float, height: float, nrows: int, ncols: int) -> tuple[Figure, list[Axes]]:
    # A bare Figure with an Agg canvas: no pyplot global state, no display backend needed.
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(nrows, ncols, squeeze=False).ravel())


def _curve(ax: Axes, rows: list[dict], y: str, eps_key: str, eps: float, **style) -> None:
    # One series over the dimensions of the rows at this epsilon (none drawn if the record has no such case).
    pts = sorted((r["d"], r[y]) for r in rows if r[eps_key] == eps)
    if pts:
        ax.plot(*zip(*pts, strict=True), **style)


def genot_accuracy(results: Path) -> Figure:
    """cBW2-UVP of GENOT (mini-batch and global couplings), EgNOT and published solvers against dimension.

    One panel per paper epsilon, log y axis, the metric in Gushchin et al.'s convention.
    """
    minibatch = [
        r
        for r in entry_rows(results, "quick_accuracy_genot_mixtures.json", "genot.accuracy.mixtures")
        if "measured" in r["solver"]
    ]
    egnot = [
        r
        for r in entry_rows(results, "quick_accuracy_egnot.json", "egnot.accuracy.mixtures")
        if "measured" in r["solver"]
    ]
    # The global records mix mixture pairs (paper convention) and Gaussian pairs (ns.metrics): keep the first.
    glob = [
        r
        for r in entry_rows(results, "quick_accuracy_genot_global.json", "genot.accuracy.global")
        if r["pair"] == "mixture" and r["convention"] == "paper"
    ]
    glob_long = [
        r
        for r in entry_rows(results, "quick_accuracy_genot_global_long.json", "genot.accuracy.global_long")
        if r["pair"] == "mixture" and r["convention"] == "paper"
    ]
    epsilons = sorted({r["eps_paper"] for r in minibatch})
    dims = sorted({r["d"] for r in minibatch})
    fig, axes = _new_figure(11, 3.6, 1, len(epsilons))
    for ax, eps in zip(axes, epsilons, strict=True):
        _curve(ax, minibatch, "floor_paper_%", "eps_paper", eps, color="0.6", ls=":", label="floor (exact draws)")
        # Fixed colours: a series absent at this epsilon must not shift the others' colours between panels.
        for color, ((solver, _), table) in zip(("C0", "C1"), PUBLISHED.items(), strict=False):
            pts = sorted((d, v) for (d, e), v in table.items() if e == eps)
            ax.plot(
                *zip(*pts, strict=True), color=color, ls="--", marker="x", label=f"{solver} (published, paper's pairs)"
            )
        steps = minibatch[0]["n_iters"]
        _curve(
            ax,
            minibatch,
            "cbw2_uvp_paper_%",
            "eps_paper",
            eps,
            color="C2",
            marker="o",
            label=f"GENOT mini-batch ({steps} it.)",
        )
        for color, coupling in (("C3", "mixture"), ("C4", "egnot")):
            rows = [r for r in glob if r["coupling"] == coupling]
            _curve(
                ax, rows, "cbw2_uvp_%", "eps", eps, color=color, marker="s", label=f"GENOT global, {coupling} coupling"
            )
        label = "GENOT global, mixture, longer run"
        _curve(ax, glob_long, "cbw2_uvp_%", "eps", eps, color="C5", marker="*", ms=10, label=label)
        steps = egnot[0]["n_iters"]
        _curve(ax, egnot, "cbw2_uvp_paper_%", "eps_paper", eps, color="C6", marker="D", label=f"EgNOT ({steps} it.)")
        eps_ott = next(r["eps_ott"] for r in minibatch if r["eps_paper"] == eps)
        ax.set_title(f"paper $\\varepsilon$ = {eps:g} ($\\varepsilon_{{ott}}$ = {eps_ott:g})")
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.set_yscale("log")
        ax.set_xlabel("dimension d")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("cBW2-UVP (%), paper convention\n100 E$_x$ BW$_2^2$ / Var(Q), lower is better")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize="small")
    return fig


def _bars(
    ax: Axes, labels: list[str], values: list[float], colors: list[str], xlabel: str, texts: list[str] | None = None
) -> None:
    # Horizontal bars in record order from the top, each with its value (or the given text) written next to it.
    pos = range(len(values))[::-1]
    ax.barh(pos, values, color=colors)
    ax.set_yticks(pos, labels)
    ax.axvline(0, color="k", lw=0.8)
    for p, v, text in zip(pos, values, texts or [f"{v:.3g}" for v in values], strict=True):
        # Right of a positive bar's end; inside a negative bar, where the axis edge cannot clip it.
        ax.annotate(text, (v, p), xytext=(3, 0), textcoords="offset points", va="center", fontsize="small")
    ax.set_xlabel(xlabel)
    ax.margins(x=0.15)


def kang_real(results: Path) -> Figure:
    """Energy distance and R^2 per method on the Kang held-out cell type (``real.kang``).

    Two bar panels; baselines (no training) in grey, the protocol variant with the held-out type's control
    cells in training hatched-light.
    """
    rows = entry_rows(results, "quick_real.json", "real.kang")
    labels = [r["method"] for r in rows]
    # The record names the protocol variant in the method; colour it apart since it answers another question.
    colors = [
        "0.65" if r["train_s"] == 0 else "#9ecae1" if "control CD14 in training" in r["method"] else "#3182bd"
        for r in rows
    ]
    fig, (ax_e, ax_r) = _new_figure(11, 3.8, 1, 2)
    energy = [r["energy_distance_pca"] for r in rows]
    _bars(ax_e, labels, energy, colors, "energy distance to held-out stimulated cells,\nPCA space (lower is better)")
    r2 = [r["r2_top50_de"] for r in rows]
    _bars(ax_r, labels, r2, colors, "R$^2$ of mean expression, top-50 DE genes\n(higher is better)")
    ax_r.set_yticklabels([])
    return fig


def speed(results: Path) -> Figure:
    """GENOT training step and transport time per implementation (``genot.speed.*``).

    Two bar panels, each bar annotated with its time and the record's in-run ratio to nescot's default.
    """
    train = entry_rows(results, "quick_speed.json", "genot.speed.train")
    transport = entry_rows(results, "quick_speed.json", "genot.speed.transport")
    fig, (ax_t, ax_x) = _new_figure(8, 5.0, 2, 1)
    for ax, rows, key, value, xlabel in (
        (ax_t, train, "impl", "ms_per_step", "ms per training step (median over rounds)"),
        (ax_x, transport, "integrator", "ms_per_cell", "ms per transported cell (median)"),
    ):
        # The ratio is measured round by round in one run, so it carries over between machines; the ms do not.
        texts = [f"{r[value]:.3g} (x{r['ratio_vs_nescot']:.2f})" for r in rows]
        _bars(ax, [r[key] for r in rows], [r[value] for r in rows], ["#3182bd"] * len(rows), xlabel, texts)
        ax.margins(x=0.3)  # room for the longer annotations
    return fig


def scale(results: Path) -> Figure:
    """Peak memory and GENOT step time against the number of cells (``genot.scale.*`` records).

    Two panels against the number of cells (log): peak resident memory (log, with the machine's memory) and
    GENOT's step time (linear from zero).
    """
    cells = entry_rows(results, "quick_scale.json", "genot.scale.cells")
    backed = entry_rows(results, "quick_scale_backed.json", "genot.scale.backed")
    mem_gib = json.loads((results / "quick_scale.json").read_text())["machine"]["mem_total_gib"]
    series = [
        ("GENOT, in memory (quick_scale)", [r for r in cells if r["method"].startswith("GENOT")], "ms_per_step"),
        ("exact Sinkhorn, dense (quick_scale)", [r for r in cells if "Sinkhorn" in r["method"]], None),
    ]
    series += [
        (f"GENOT, backed file, {c} coupling (quick_scale_backed)", [r for r in backed if r["coupling"] == c], "step_ms")
        for c in dict.fromkeys(r["coupling"] for r in backed)
    ]
    fig, (ax_m, ax_s) = _new_figure(11, 3.6, 1, 2)
    for label, rows, step_key in series:
        # Points the run stopped before measuring (memory cap) have no peak memory and are left out.
        pts = sorted((r["n_cells"], r["peak_rss_mb"] / 1024) for r in rows if "peak_rss_mb" in r)
        ax_m.plot(*zip(*pts, strict=True), marker="o", label=label)
        if step_key is not None:
            ax_s.plot(*zip(*sorted((r["n_cells"], r[step_key]) for r in rows), strict=True), marker="o", label=label)
        else:
            ax_s.plot([], [])  # keep the colours of the two panels in step
    ax_m.axhline(mem_gib, color="k", ls="--", lw=0.8, label="machine memory")
    ax_m.set_ylabel("peak resident memory (GiB)")
    ax_m.set_yscale("log")
    ax_s.set_ylabel("ms per GENOT training step (batch fixed)")
    ax_s.set_ylim(bottom=0)  # flat is the finding: a linear axis from zero shows it without exaggeration
    for ax in (ax_m, ax_s):
        ax.set_xscale("log")
        ax.set_xlabel("number of cells")
        ax.grid(True, which="major", alpha=0.3)
    fig.legend(*ax_m.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize="small")
    return fig


# File name -> drawing function; each function takes the folder of the JSON records and returns the figure.
FIGURES: dict[str, Callable[[Path], Figure]] = {
    "genot_accuracy.png": genot_accuracy,
    "kang_real.png": kang_real,
    "speed.png": speed,
    "scale.png": scale,
}


def write_all(out: Path | str, results: Path | str = RESULTS) -> list[Path]:
    """Draw every figure of :data:`FIGURES` from the records and write it as a PNG.

    Parameters
    ----------
    out
        Folder for the PNG files (created if needed).
    results
        Folder of the JSON records.

    Returns
    -------
    The paths written.
    """
    out, results = Path(out), Path(results)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in FIGURES.items():
        draw(results).savefig(out / name, **_SAVE)
        written.append(out / name)
    return written
