"""Sphinx inventories (``objects.inv``) for intersphinx, generated from the installed packages.

The docs are built without network access, so intersphinx cannot download the projects' inventories.
Each inventory here lists the names nescot's docs reference (the public API of the installed version)
with the URL its project's documentation gives it. Every layout below was checked against the project's
docs sources and published page addresses (see each builder's docstring); a project whose layout for the
installed version is unknown gets no inventory, and its names stay plain text.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import zlib
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import NamedTuple


class Entry(NamedTuple):
    """One inventory line: ``name`` resolves to ``uri`` (relative to the project's base URL)."""

    name: str
    role: str
    uri: str
    priority: int = 1  # -1: an alias (where the object is defined), hidden from search like Sphinx does


def _role(obj: object) -> str | None:
    """Return the Python-domain object type of ``obj``, or None when it gets no entry (modules, data)."""
    if inspect.isclass(obj):
        return "py:exception" if issubclass(obj, BaseException) else "py:class"
    if callable(obj):
        return "py:function"
    return None


def _page(name: str, folder: str, obj: object, role: str) -> list[Entry]:
    """Entries for an object with its own autosummary page ``{folder}{name}.html``.

    Autodoc's signatures name objects by where they are defined (``anndata._core.anndata.AnnData``,
    ``jax.jaxlib._jax.Array``), not by their public path, so that path gets an entry to the same page too.
    """
    uri = f"{folder}{name}.html#{name}"
    entries = [Entry(name, role, uri)]
    defined = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
    if defined != name and not defined.startswith(".") and not defined.endswith("."):
        entries.append(Entry(defined, role, uri, -1))
    return entries


def _public(
    module: ModuleType, names: Iterable[str] | None = None, prefix: str | None = None
) -> Iterator[tuple[str, object, str]]:
    """``(full name, object, role)`` of the classes and functions a module exports.

    ``prefix`` is the module's public name where it differs from ``__name__`` (``scanpy.pp`` is
    ``scanpy.preprocessing``).
    """
    if names is None:
        names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for n in names:
        obj = getattr(module, n, None)
        if (role := _role(obj)) is not None and not inspect.ismodule(obj):
            yield f"{prefix or module.__name__}.{n}", obj, role


def _members(cls: type, name: str, folder: str) -> list[Entry]:
    """Methods and attributes of a class that the scverse class template gives their own page."""
    entries = []
    for attr, value in vars(cls).items():
        if attr.startswith("_"):
            continue
        role = "py:property" if isinstance(value, property) else "py:method" if callable(value) else None
        if role is not None:
            entries += _page(f"{name}.{attr}", folder, getattr(cls, attr, value), role)
            entries.append(Entry(f"{cls.__module__}.{cls.__qualname__}.{attr}", role, entries[-1].uri, -1))
    return entries


def anndata_entries() -> tuple[str, list[Entry]]:
    """anndata: ``generated/<name>.html``, members on their own pages.

    Verified: docs/api.md (``.. module:: anndata``, ``:toctree: generated/``) and
    docs/_templates/autosummary/class.rst (members with ``:toctree: .``) at tag 0.12.19 of scverse/anndata;
    pages https://anndata.readthedocs.io/en/latest/generated/anndata.AnnData.html and
    https://anndata.readthedocs.io/en/stable/generated/anndata.AnnData.uns.html.
    """
    import anndata

    entries = []
    for name, obj, role in _public(anndata, ["AnnData", "concat"]):
        entries += _page(name, "generated/", obj, role)
    entries += _members(anndata.AnnData, "anndata.AnnData", "generated/")
    # api.md documents write_csvs and write_loom only as AnnData methods.
    io_names = [n for n in anndata.io.__all__ if n not in {"write_csvs", "write_loom"}]
    for name, obj, role in _public(anndata.io, io_names):
        entries += _page(name, "generated/", obj, role)
    return "https://anndata.readthedocs.io/en/stable/", entries


def mudata_entries() -> tuple[str, list[Entry]]:
    """mudata: ``generated/<name>.html`` (members are on the class page, not given entries here).

    Verified: docs/api.md (``.. module:: mudata``, ``:toctree: generated``) at tag v0.3.10 of scverse/mudata;
    page https://mudata.readthedocs.io/en/stable/generated/mudata.MuData.html.
    """
    import mudata

    names = [n for n in mudata.__all__ if n != "ExtensionNamespace"]
    entries = []
    for name, obj, role in _public(mudata, names):
        if getattr(obj, "__module__", "").startswith("mudata"):  # not the re-exported AnnData
            entries += _page(name, "generated/", obj, role)
    return "https://mudata.readthedocs.io/en/stable/", entries


def scanpy_entries() -> tuple[str, list[Entry]] | None:
    """Scanpy 1.11 and 1.12: ``generated/<name>.html``, a few ``pp`` functions in ``api/generated/``.

    Verified: docs/api/*.md at tags 1.11.5 and 1.12.1 of scverse/scanpy (``:toctree: ../generated/`` except
    the recipes, batch-effect and neighbors blocks of preprocessing.md, ``:toctree: generated/``); pages
    https://scanpy.readthedocs.io/en/1.11.x/generated/scanpy.write.html and
    https://scanpy.readthedocs.io/en/1.12.x/api/generated/scanpy.pp.neighbors.html.
    Plotting mixes both folders and is left out; other versions are not covered (their layout differs).
    """
    import scanpy

    major_minor = ".".join(version("scanpy").split(".")[:2])
    if major_minor not in {"1.11", "1.12"}:
        return None
    in_api = {"recipe_zheng17", "recipe_weinreb17", "recipe_seurat", "combat", "scrublet"}
    in_api |= {"scrublet_simulate_doublets", "neighbors"}
    entries = []
    for prefix in ("pp", "tl", "get", "datasets"):
        for name, obj, role in _public(getattr(scanpy, prefix), prefix=f"scanpy.{prefix}"):
            folder = "api/generated/" if prefix == "pp" and name.rsplit(".", 1)[1] in in_api else "generated/"
            entries += _page(name, folder, obj, role)
    return f"https://scanpy.readthedocs.io/en/{major_minor}.x/", entries


# ott's autosummary pages sit next to the .rst page that lists them (docs/geometry.rst -> _autosummary/,
# docs/solvers/linear.rst -> solvers/_autosummary/, ...); subpackage -> (.rst page, folder of its pages).
_OTT_PAGES = {
    "geometry": ("geometry", ""),
    "problems": ("problems/index", "problems/"),
    "solvers": ("solvers/index", "solvers/"),
    "initializers": ("initializers/index", "initializers/"),
    "tools": ("tools", ""),
    "math": ("math", ""),
    "utils": ("utils", ""),
}
# The other ``.. module::`` targets of ott's docs.
_OTT_MODULES = {
    "ott": "index",
    "ott.geometry.costs": "geometry",
    **{f"ott.{p}.{k}": f"{p}/{k}" for p in ("problems", "solvers", "initializers") for k in ("linear", "quadratic")},
}


def ott_entries() -> tuple[str, list[Entry]]:
    """ott-jax: ``[<folder>/]_autosummary/<name>.html``, the folder being that of the subpackage's .rst page.

    Verified: docs/index.rst, docs/geometry.rst, docs/tools.rst, docs/solvers/linear.rst, ... at tag 0.6.0 of
    ott-jax/ott (``.. module::`` per page, ``:toctree: _autosummary``); pages
    https://ott-jax.readthedocs.io/en/latest/solvers/_autosummary/ott.solvers.linear.implicit_differentiation.solve_jax_cg.html
    and https://ott-jax.readthedocs.io/_sources/math.rst. ``ott.neural`` and ``ott.experimental`` (which need
    flax / optax) are left out.
    """
    pages = {f"ott.{sub}": page for sub, (page, _) in _OTT_PAGES.items()} | _OTT_MODULES
    entries = [Entry(m, "py:module", f"{page}.html#module-{m}") for m, page in pages.items()]
    for sub, (_, folder) in _OTT_PAGES.items():
        package = importlib.import_module(f"ott.{sub}")
        names = [i.name for i in pkgutil.walk_packages(getattr(package, "__path__", []), f"{package.__name__}.")]
        for module_name in [package.__name__, *names]:
            if any(part.startswith("_") for part in module_name.split(".")):
                continue
            module = importlib.import_module(module_name)
            # What a module exports in ``__all__`` and the classes defined in it (the API pages also list
            # abstract bases such as costs.CostFn, which ``__all__`` leaves out).
            names = set(getattr(module, "__all__", []))
            names |= {n for n, o in vars(module).items() if inspect.isclass(o) and o.__module__ == module_name}
            for name, obj, role in _public(module, sorted(n for n in names if not n.startswith("_"))):
                entries += _page(name, f"{folder}_autosummary/", obj, role)
    return "https://ott-jax.readthedocs.io/en/latest/", entries


def jax_entries() -> tuple[str, list[Entry]]:
    """jax: ``_autosummary/<name>.html`` for ``jax``, ``jax.numpy`` and ``jax.random``.

    Verified: docs/jax.rst, docs/jax.numpy.rst and docs/jax.random.rst of jax-ml/jax (``:toctree: _autosummary``,
    ``.. automodule::`` for the submodules); pages https://docs.jax.dev/en/latest/_autosummary/jax.Array.html
    and https://docs.jax.dev/en/latest/_autosummary/jax.numpy.array.html.
    """
    import jax

    entries = [Entry(m, "py:module", f"{m}.html#module-{m}") for m in ("jax.numpy", "jax.random")]
    for module in (jax, jax.numpy, jax.random):
        for name, obj, role in _public(module):
            entries += _page(name, "_autosummary/", obj, role)
    return "https://docs.jax.dev/en/latest/", entries


def numpy_entries() -> tuple[str, list[Entry]]:
    """numpy: the few classes nescot's signatures use.

    Verified: doc/source/reference/random/generator.rst of numpy/numpy (``.. autoclass:: Generator`` and
    ``.. autofunction:: default_rng`` on that page); page
    https://numpy.org/doc/2.3/reference/generated/numpy.ndarray.__new__.html (``reference/generated/``).
    """
    import numpy as np

    entries = _page("numpy.ndarray", "reference/generated/", np.ndarray, "py:class")
    for name, role in (("Generator", "py:class"), ("default_rng", "py:function")):
        entries += [
            e._replace(uri=f"reference/random/generator.html#numpy.random.{name}")
            for e in _page(f"numpy.random.{name}", "", getattr(np.random, name), role)
        ]
    return "https://numpy.org/doc/stable/", entries


def pandas_entries() -> tuple[str, list[Entry]]:
    """pandas: ``reference/api/<name>.html`` for the data structures.

    Verified: pages https://pandas.pydata.org/docs/reference/api/pandas.DataFrame.html and
    https://pandas.pydata.org/pandas-docs/version/0.24/reference/api/pandas.Categorical.html.
    """
    import pandas as pd

    entries = []
    for name, obj, role in _public(pd, ["DataFrame", "Series", "Index", "Categorical", "CategoricalDtype"]):
        entries += _page(name, "reference/api/", obj, role)
    return "https://pandas.pydata.org/docs/", entries


BUILDERS: dict[str, tuple[str, Callable[[], tuple[str, list[Entry]] | None]]] = {
    "anndata": ("anndata", anndata_entries),
    "mudata": ("mudata", mudata_entries),
    "scanpy": ("scanpy", scanpy_entries),
    "ott": ("ott-jax", ott_entries),
    "jax": ("jax", jax_entries),
    "numpy": ("numpy", numpy_entries),
    "pandas": ("pandas", pandas_entries),
}


def write_inventory(path: Path, project: str, project_version: str, entries: Iterable[Entry]) -> None:
    """Write a Sphinx v2 inventory.

    Sphinx's own writer (``InventoryFile.dump``) needs a build environment, so the documented format is
    written here: four header lines, then zlib-compressed lines ``name domain:role priority uri dispname``.
    """
    # One line per name and role: a public name wins over an alias, otherwise the first entry (jax.Array's
    # alias ``jax.jaxlib._jax.Array`` is also the defined path of jax.numpy.ndarray).
    chosen: dict[tuple[str, str], Entry] = {}
    for e in entries:
        if (e.name, e.role) not in chosen or e.priority > chosen[e.name, e.role].priority:
            chosen[e.name, e.role] = e
    lines = sorted(f"{e.name} {e.role} {e.priority} {e.uri} -\n" for e in chosen.values())
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {project_version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    path.write_bytes(header.encode() + zlib.compress("".join(lines).encode(), 9))


def write_inventories(outdir: Path, projects: Iterable[str] | None = None) -> dict[str, tuple[str, str]]:
    """Write one inventory per installed project into ``outdir``.

    Parameters
    ----------
    outdir
        Folder for the ``<project>.inv`` files (created if missing).
    projects
        Keys of :data:`BUILDERS`; default all. Projects that are not installed, or whose docs layout for the
        installed version is not known, are skipped.

    Returns
    -------
    The ``intersphinx_mapping``: project key to ``(base URL, inventory path)``.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for key in BUILDERS if projects is None else projects:
        distribution, build = BUILDERS[key]
        try:
            built = build()
        except ImportError:
            continue
        if built is None:
            continue
        base_url, entries = built
        path = outdir / f"{key}.inv"
        write_inventory(path, distribution, version(distribution), entries)
        mapping[key] = (base_url, str(path))
    return mapping
