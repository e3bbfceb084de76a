"""The offline intersphinx inventories of docs/_ext/offline_inventories.py."""

import importlib
import importlib.util
import inspect
import re
import typing
from importlib.metadata import version
from pathlib import Path

import pytest
from sphinx.util.inventory import InventoryFile
from sphinx.util.typing import stringify_annotation

DOCS = Path(__file__).resolve().parents[1] / "docs"
# The public submodules the API page documents (docs/conf.py).
SECTIONS = ("tl", "pl", "datasets", "metrics", "io", "solvers")
# Top-level packages whose names the inventories cover (jaxlib: where jax.Array and jax.Device are defined).
COVERED = ("anndata", "mudata", "scanpy", "ott", "jax", "jaxlib", "numpy", "pandas")
XREF = re.compile(r":(?:class|func|meth|attr|mod|obj):`~?([\w.]+)`")


def _load_generator():
    spec = importlib.util.spec_from_file_location("offline_inventories", DOCS / "_ext" / "offline_inventories.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def inventories(tmp_path_factory):
    """Project key -> role -> name -> absolute URL, read back with Sphinx's own reader."""
    mapping = _load_generator().write_inventories(tmp_path_factory.mktemp("inv"))
    out = {}
    for key, (base_url, path) in mapping.items():
        inv = InventoryFile.loads(Path(path).read_bytes(), uri=base_url)
        out[key] = {role: {name: item.uri for name, item in items.items()} for role, items in inv.data.items()}
    return out


@pytest.mark.parametrize(
    ("key", "role", "name", "url"),
    [
        ("anndata", "py:class", "anndata.AnnData", "https://anndata.readthedocs.io/en/stable/generated/anndata.AnnData.html"),
        ("anndata", "py:class", "anndata._core.anndata.AnnData", "https://anndata.readthedocs.io/en/stable/generated/anndata.AnnData.html"),
        ("anndata", "py:method", "anndata.AnnData.write_h5ad", "https://anndata.readthedocs.io/en/stable/generated/anndata.AnnData.write_h5ad.html"),
        ("anndata", "py:function", "anndata.io.read_h5ad", "https://anndata.readthedocs.io/en/stable/generated/anndata.io.read_h5ad.html"),
        ("mudata", "py:class", "mudata.MuData", "https://mudata.readthedocs.io/en/stable/generated/mudata.MuData.html"),
        ("jax", "py:class", "jax.Array", "https://docs.jax.dev/en/latest/_autosummary/jax.Array.html"),
        ("jax", "py:function", "jax.jit", "https://docs.jax.dev/en/latest/_autosummary/jax.jit.html"),
        ("jax", "py:class", "jax.jaxlib._jax.Array", "https://docs.jax.dev/en/latest/_autosummary/jax.Array.html"),
        ("ott", "py:class", "ott.solvers.linear.sinkhorn.Sinkhorn", "https://ott-jax.readthedocs.io/en/latest/solvers/_autosummary/ott.solvers.linear.sinkhorn.Sinkhorn.html"),
        ("ott", "py:class", "ott.geometry.costs.CostFn", "https://ott-jax.readthedocs.io/en/latest/_autosummary/ott.geometry.costs.CostFn.html"),
        ("ott", "py:function", "ott.tools.sliced.sliced_wasserstein", "https://ott-jax.readthedocs.io/en/latest/_autosummary/ott.tools.sliced.sliced_wasserstein.html"),
        ("numpy", "py:class", "numpy.ndarray", "https://numpy.org/doc/stable/reference/generated/numpy.ndarray.html"),
        ("numpy", "py:class", "numpy.random.Generator", "https://numpy.org/doc/stable/reference/random/generator.html"),
        ("pandas", "py:class", "pandas.DataFrame", "https://pandas.pydata.org/docs/reference/api/pandas.DataFrame.html"),
    ],
)  # fmt: skip
def test_entry_url(inventories, key, role, name, url):
    # Every page anchors an object at its public name.
    public = name.replace("._core.anndata", "").replace("jax.jaxlib._jax.", "jax.")
    assert inventories[key][role][name] == f"{url}#{public}"


def test_scanpy_layout(inventories):
    if version("scanpy").split(".")[:2] not in (["1", "11"], ["1", "12"]):
        assert "scanpy" not in inventories  # no verified layout for other versions
        return
    base = f"https://scanpy.readthedocs.io/en/{'.'.join(version('scanpy').split('.')[:2])}.x/"
    assert inventories["scanpy"]["py:function"]["scanpy.pp.pca"] == f"{base}generated/scanpy.pp.pca.html#scanpy.pp.pca"
    neighbors = inventories["scanpy"]["py:function"]["scanpy.pp.neighbors"]
    assert neighbors == f"{base}api/generated/scanpy.pp.neighbors.html#scanpy.pp.neighbors"


def _external_names() -> set[str]:
    """Dotted names of covered packages in nescot's public signatures and in its docstrings' cross-references."""
    names: set[str] = set()
    for section in SECTIONS:
        module = importlib.import_module(f"nescot.{section}")
        for attr in module.__all__:
            obj = getattr(module, attr)
            targets = [obj]
            if inspect.isclass(obj):
                targets += [v for k, v in vars(obj).items() if callable(v) and (k == "__init__" or k[0] != "_")]
            for target in targets:
                if not callable(target):
                    continue
                names.update(XREF.findall(inspect.getdoc(target) or ""))
                # As autodoc renders them: annotations by the path where the object is defined.
                try:
                    hints = typing.get_type_hints(target)
                except (NameError, TypeError):
                    continue
                for hint in hints.values():
                    names.update(re.findall(r"[\w.]+", stringify_annotation(hint, "fully-qualified-except-typing")))
    return {n for n in names if n.split(".")[0] in COVERED and "." in n}


def test_nescot_external_names_resolve(inventories):
    names = _external_names()
    # The signatures do use these; an empty walk would make the check below vacuous.
    assert {"anndata._core.anndata.AnnData", "jax.jaxlib._jax.Array", "numpy.ndarray", "mudata.MuData"} <= names
    known = {name for roles in inventories.values() for items in roles.values() for name in items}
    if "scanpy" not in inventories:
        names = {n for n in names if not n.startswith("scanpy.")}
    assert sorted(names - known) == []
