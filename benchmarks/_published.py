"""Published cBW2-UVP numbers of other solvers on the Gushchin et al. (NeurIPS 2023) mixtures benchmark.

These are *published* values, copied from the paper's table and never re-run here. They refer to the paper's
own downloaded mixture pairs (ours are built the same way from a fixed seed, see ``_mixture_pairs``), in the
paper's convention (cost ||x - y||^2 / 2, BW2^2 with a factor 1/2, normalised by Var(Q) / 2).

``PUBLISHED[(solver, source)][(dim, eps_paper)] = value_in_percent``.

Status: EMPTY. The table text could not be retrieved from the reference material available when this suite
was written (only the paper's abstract and its code were reachable), and numbers are not typed in from
memory. To fill it, copy the cBW2-UVP table of Gushchin et al. (2023), "Building the Bridge of Schrödinger:
A Continuous Entropic Optimal Transport Benchmark", NeurIPS Datasets and Benchmarks (arXiv:2306.10161),
one entry per solver, with the table number in ``source``; the benchmark prints them next to ours.
"""

from __future__ import annotations

SOURCE = "Gushchin et al., NeurIPS 2023 (arXiv:2306.10161), cBW2-UVP table"

PUBLISHED: dict[tuple[str, str], dict[tuple[int, float], float]] = {}


def published_rows(cases: list[tuple[int, float]]) -> list[dict]:
    """Rows for the published values at ``cases`` ((dim, eps_paper) pairs); empty while ``PUBLISHED`` is."""
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
