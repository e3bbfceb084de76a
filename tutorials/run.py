"""Execute every tutorial top to bottom (``NESCOT_QUICK=1`` unless set) and store the executed notebooks.

Usage: ``python tutorials/run.py [--out docs/tutorials] [names...]``. Fails on the first error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).parent


def main(argv: list[str] | None = None) -> int:
    """Run the tutorials; return a process exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="tutorial files (default: all tutorials/[0-9]*.py)")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "tutorials")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    args = parser.parse_args(argv)
    os.environ.setdefault("NESCOT_QUICK", "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # figures into the notebooks
    paths = [Path(n) for n in args.names] or sorted(HERE.glob("[0-9]*.py"))
    args.out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        start = time.perf_counter()
        notebook = jupytext.read(path)
        NotebookClient(
            notebook, timeout=args.timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
        ).execute()
        nbformat.write(notebook, args.out / f"{path.stem}.ipynb")
        print(f"{path.name}: ok in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
