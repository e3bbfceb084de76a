"""Sphinx configuration.

Build: ``python tutorials/run.py && sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""

import importlib
import sys
from pathlib import Path

import nescot

sys.path.insert(0, str(Path(__file__).with_name("_ext")))
from offline_inventories import write_inventories  # noqa: E402

project = "nescot"
author = "nescot developers"
release = nescot.__version__
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
    "myst_nb",
]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autosummary_generate = True
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "inherited-members": False}
nb_execution_mode = "off"  # tutorials are executed by tutorials/run.py, which writes docs/tutorials/*.ipynb
myst_enable_extensions = ["dollarmath"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "api/generated"]
templates_path = ["_templates"]
html_theme = "alabaster"
# The docs are built without network access, so intersphinx reads inventories written here from the installed
# anndata, mudata, scanpy, ott-jax, jax, numpy and pandas, with each project's documented URL layout.
intersphinx_mapping = write_inventories(Path(__file__).parent / "_build" / "inventories")
suppress_warnings = ["mystnb.unknown_mime_type"]

# The API page lists every name in each public submodule's ``__all__``, so new functions appear by themselves.
_SECTIONS = {
    "tl": "Tools",
    "pl": "Plotting",
    "datasets": "Data sets",
    "metrics": "Metrics",
    "io": "On-disk data",
    "solvers": "Solvers (pure JAX backend)",
}
_lines = ["# API reference", "", "```{eval-rst}", ".. module:: nescot", "", ".. autodata:: nescot.settings", "```", ""]
for _mod, _title in _SECTIONS.items():
    _module = importlib.import_module(f"nescot.{_mod}")
    _lines += [f"## {_title}", "", "```{eval-rst}", f".. currentmodule:: nescot.{_mod}", "", ".. autosummary::"]
    _lines += ["   :toctree: generated", "", *(f"   {name}" for name in sorted(_module.__all__)), "```", ""]
Path(__file__).with_name("api.md").write_text("\n".join(_lines))
