"""Published cBW2-UVP numbers of other solvers on the Gushchin et al. (NeurIPS 2023) mixtures benchmark.

These are *published* values, never re-run here, copied from the project's reference file
``shared/reference/eot_benchmark_cbw2uvp.md`` (which cites Korotin, Gushchin and Burnaev, "Light Schrödinger
Bridge", ICLR 2024: their comparison table on this benchmark, with the best of the benchmark's solvers per cell
and LightSB). They refer to the paper's own downloaded mixture pairs (ours are built the same way from a fixed
seed, see ``_mixture_pairs``): a comparison between problems of the same kind, not the same data. Convention:
the paper's (cost ||x - y||^2 / 2, BW2^2 normalised by Var(Q)), i.e. half of ``nescot.metrics.cbw2_uvp``.

``PUBLISHED[(solver, source)][(dim, eps_paper)] = value_in_percent``.
"""

from __future__ import annotations

SOURCE = "shared/reference/eot_benchmark_cbw2uvp.md (Korotin et al., ICLR 2024, table on Gushchin et al. 2023)"

PUBLISHED: dict[tuple[str, str], dict[tuple[int, float], float]] = {
    (
        "best benchmark solver",
        "Gushchin et al., NeurIPS 2023: best solver per cell, as reported by Korotin et al., ICLR 2024",
    ): {
        (2, 0.1): 1.94,
        (16, 0.1): 13.67,
        (64, 0.1): 11.74,
        (128, 0.1): 11.4,
        (2, 1.0): 1.04,
        (16, 1.0): 9.08,
        (64, 1.0): 18.05,
        (128, 1.0): 15.23,
        (2, 10.0): 1.4,
        (16, 10.0): 1.27,
        (64, 10.0): 2.36,
        (128, 10.0): 1.31,
    },
    ("LightSB", "Korotin et al., ICLR 2024 (LightSB), comparison table"): {
        (2, 0.1): 0.03,
        (16, 0.1): 0.08,
        (64, 0.1): 0.28,
        (128, 0.1): 0.6,
        (2, 1.0): 0.05,
        (16, 1.0): 0.09,
        (64, 1.0): 0.24,
        (128, 1.0): 0.62,
        (2, 10.0): 0.07,
        (16, 10.0): 0.11,
        (64, 10.0): 0.21,
        (128, 10.0): 0.37,
    },
}


def published_rows(cases: list[tuple[int, float]]) -> list[dict]:
    """Rows for the published values at ``cases`` ((dim, eps_paper) pairs)."""
    rows = []
    for (solver, source), table in PUBLISHED.items():
        for dim, eps in cases:
            if (dim, eps) in table:
                rows.append(
                    {
                        "solver": f"{solver} (published, not re-run)",
                        "d": dim,
                        "eps_paper": eps,
                        "cbw2_uvp_paper_%": table[(dim, eps)],
                        "source": source,
                    }
                )
    return rows
