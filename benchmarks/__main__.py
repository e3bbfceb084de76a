"""Command line: ``python -m benchmarks run --suite quick|full [--only NAME ...] [--out results.json]``.

``python -m benchmarks plot --out docs/_static/benchmarks`` draws the figures of ``docs/benchmarks.md`` from the
committed records.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from . import SUITES, load_all


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run a suite and print the tables")
    p_run.add_argument("--suite", choices=SUITES, default="quick", help="workload size ('smoke' is for tests)")
    p_run.add_argument("--only", nargs="+", default=None, help="entry names or prefixes, e.g. genot.speed")
    p_run.add_argument("--out", default=None, help="write the JSON record here")
    p_rep = sub.add_parser("report", help="render a JSON record (from --out) as markdown tables")
    p_rep.add_argument("json", help="path of the JSON record")
    p_plot = sub.add_parser("plot", help="draw the docs' figures (PNG) from the committed JSON records")
    p_plot.add_argument("--out", default="docs/_static/benchmarks", help="folder for the PNG files")
    p_plot.add_argument("--results", default=None, help="folder of the JSON records (default: benchmarks/results)")
    p_list = sub.add_parser("list", help="list the registered entries")
    p_list.add_argument("--suite", choices=SUITES, default=None)
    args = parser.parse_args(argv)
    if args.cmd == "report":
        import json
        from pathlib import Path

        from ._report import markdown

        print(markdown(json.loads(Path(args.json).read_text())))
        return 0

    if args.cmd == "plot":
        # Before importing nescot: drawing the records needs neither JAX nor a device.
        from ._plots import RESULTS, write_all

        for path in write_all(args.out, args.results or RESULTS):
            print(path)
        return 0

    import nescot as ns

    ns.settings.progress_bar = False
    if args.cmd == "list":
        for name, b in load_all().items():
            if args.suite is None or args.suite in b.suites:
                missing = b.requires()
                state = f"skipped ({missing})" if missing else "available"
                print(f"{name:40s} {b.kind:9s} {state:45s} {b.description}")
        return 0
    from ._runner import run, select

    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in argv)
    record = run(select(args.only, args.suite), args.suite, out=args.out, command=command)
    return 1 if any(r["status"] == "error" for r in record["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
