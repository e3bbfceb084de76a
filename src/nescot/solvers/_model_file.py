"""Model files: data only (a JSON configuration and msgpack arrays), versioned, validated on load.

A model file is one msgpack map (flax serialisation) with the fields

- ``format``: ``"nescot-model"``;
- ``version``: the format version (:data:`MODEL_FILE_VERSION`); an unknown version is refused;
- ``solver``: the registered name of the model class (``"genot"``, ``"egnot"``, ``"sparse-icnn"``,
  ``"entropic-map"``);
- ``config``: the constructor arguments as a JSON text (ott costs and couplings described by name and
  parameters, tuples tagged so they come back as tuples);
- ``state``: the arrays needed for inference (float / int arrays, stored bit for bit);
- ``history``: the per-step training metrics (arrays);
- ``extra``: further JSON data of the model (e.g. the ``lam`` trajectory of a sparse ICNN).

Nothing in a model file is executed or unpickled: the JSON configuration can only rebuild the classes
listed here (ott costs and regularisers, nescot couplings), and arrays are decoded into plain numeric
NumPy arrays. Every problem (not a nescot file, truncated or garbage bytes, an unknown version, a
missing or malformed field) raises :class:`ModelFileError`, naming the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

MODEL_FILE_FORMAT = "nescot-model"
MODEL_FILE_VERSION = 2  # version 1 (pickled configuration) is refused: it could run code when read

_OLD_FORMATS = ("nescot-solver", "nescot-sparse-icnn")  # version 1 files, refused with an explanation
_TUPLE, _OTT, _COUPLING, _ARRAY = "__tuple__", "__ott__", "__coupling__", "__array__"
_OTT_MODULES = ("ott.geometry.costs", "ott.geometry.regularizers")


class ModelFileError(ValueError):
    """A model or checkpoint file is unreadable, of another format or version, or incomplete."""


def _ott_class(qualname: str) -> type:
    import importlib

    module_name, _, cls_name = qualname.rpartition(".")
    if module_name not in _OTT_MODULES:
        raise ValueError(f"class {qualname!r} is not an ott cost or regulariser")
    cls = getattr(importlib.import_module(module_name), cls_name, None)
    if not isinstance(cls, type) or cls.__module__ != module_name or not hasattr(cls, "tree_unflatten"):
        raise ValueError(f"unknown ott class {qualname!r}")
    return cls


def _coupling_classes() -> dict[str, type]:
    from ._couplings import LinearCoupling, QuadraticCoupling
    from ._global_couplings import EgNOTCoupling, MixturePotentialCoupling
    from ._plan_coupling import SubsamplePlanCoupling

    classes = (LinearCoupling, QuadraticCoupling, MixturePotentialCoupling, EgNOTCoupling, SubsamplePlanCoupling)
    return {c.__name__: c for c in classes}


def encode_config(value: Any, where: str = "config") -> Any:
    """JSON-compatible description of a configuration value; ``TypeError`` naming ``where`` if impossible."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray | jax.Array) and np.asarray(value).dtype.kind in "biuf":
        arr = np.asarray(value)
        return {_ARRAY: arr.tolist(), "dtype": arr.dtype.str}
    if isinstance(value, tuple):
        return {_TUPLE: [encode_config(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode_config(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where} has non-string keys, which a model file cannot store.")
        if any(k.startswith("__") and k.endswith("__") for k in value):
            raise TypeError(f"{where} has a key of the form '__name__', reserved by the model file format.")
        return {k: encode_config(v, f"{where}[{k!r}]") for k, v in value.items()}
    if type(value).__name__ in _coupling_classes() and dataclasses.is_dataclass(value):
        fields = {f.name: encode_config(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
        return {_COUPLING: type(value).__name__, "fields": fields}
    cls = type(value)
    if cls.__module__ in _OTT_MODULES and hasattr(value, "tree_flatten"):
        children, aux = value.tree_flatten()
        encoded = {
            _OTT: f"{cls.__module__}.{cls.__qualname__}",
            "children": encode_config(tuple(children), f"{where}.children"),
            "aux": encode_config(aux, f"{where}.aux"),
        }
        # some ott objects leave settings out of their flattening (ott 0.6: Cosine's ridge); storing them would
        # silently reset those settings, and the compile cache would share traces between different costs
        if not _same_attributes(value, decode_config(encoded, where)):
            raise TypeError(
                f"{where} is {value!r}, whose settings ott does not keep when flattening it, so it cannot be stored "
                "as data in a model file. Use the cost with its default settings or a cost name."
            )
        return encoded
    raise TypeError(
        f"{where} is {value!r} ({cls.__name__}), which cannot be stored as data in a model file. Use a cost "
        "name ('sqeuclidean', 'euclidean', 'cosine') or an ott cost object instead of a function or lambda."
    )


def _same_attributes(a: Any, b: Any) -> bool:
    """Whether two objects of one class hold equal attributes (arrays by value, nested ott objects alike)."""
    if type(a) is not type(b):
        return False
    if hasattr(a, "shape"):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if type(a).__module__ in _OTT_MODULES and hasattr(a, "__dict__"):
        va, vb = vars(a), vars(b)
        return va.keys() == vb.keys() and all(_same_attributes(va[k], vb[k]) for k in va)
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def decode_config(value: Any, where: str = "config") -> Any:
    """Inverse of :func:`encode_config`; ``ValueError`` naming ``where`` on anything unexpected."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [decode_config(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise ValueError(f"{where} has an unexpected JSON value {value!r}")
    if _TUPLE in value:
        if not isinstance(value[_TUPLE], list):
            raise ValueError(f"{where} is a malformed tuple")
        return tuple(decode_config(v, f"{where}[{i}]") for i, v in enumerate(value[_TUPLE]))
    if _ARRAY in value:
        dtype = np.dtype(str(value.get("dtype")))
        if dtype.kind not in "biuf":
            raise ValueError(f"{where} has a non-numeric dtype {dtype}")
        return np.asarray(value[_ARRAY], dtype=dtype)
    if _COUPLING in value:
        classes = _coupling_classes()
        if value[_COUPLING] not in classes or not isinstance(value.get("fields"), dict):
            raise ValueError(f"{where} is an unknown or malformed coupling {value.get(_COUPLING)!r}")
        fields = {k: decode_config(v, f"{where}.{k}") for k, v in value["fields"].items()}
        return classes[value[_COUPLING]](**fields)
    if _OTT in value:
        cls = _ott_class(str(value[_OTT]))
        children = decode_config(value.get("children"), f"{where}.children")
        return cls.tree_unflatten(decode_config(value.get("aux"), f"{where}.aux"), list(children or ()))
    return {k: decode_config(v, f"{where}[{k!r}]") for k, v in value.items()}


def config_to_json(config: Mapping[str, Any], owner: str) -> str:
    """JSON text of a solver configuration; ``TypeError`` if it holds something that is not data."""
    try:
        encoded = encode_config(dict(config))
    except TypeError as err:
        raise TypeError(f"Cannot save this {owner}: {err}") from None
    return json.dumps(encoded, sort_keys=True)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON data")


def write_model_file(
    path: str | Path,
    solver: str,
    config_json: str,
    state: Any,
    history: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a model file (see the module docstring) and return its path."""
    path = Path(path)
    payload = {
        "format": MODEL_FILE_FORMAT,
        "version": MODEL_FILE_VERSION,
        "solver": solver,
        "config": config_json,
        "state": jax.tree.map(np.asarray, state),
        "history": {str(k): np.asarray(v) for k, v in (history or {}).items()},
        "extra": json.dumps(dict(extra or {}), default=_json_default),
    }
    path.write_bytes(serialization.msgpack_serialize(payload))
    return path


def _check_arrays(tree: Any, path: Path, where: str) -> None:
    if isinstance(tree, dict):
        for k, v in tree.items():
            _check_arrays(v, path, f"{where}/{k}")
    elif not (isinstance(tree, np.ndarray | np.generic | int | float) and np.asarray(tree).dtype.kind in "biuf"):
        raise ModelFileError(f"{path}: field {where!r} holds {type(tree).__name__}, not a numeric array.")


def read_model_file(path: str | Path) -> dict[str, Any]:
    """Read and validate a model file.

    Returns
    -------
    ``{"solver": str, "config": dict, "state": dict of arrays, "history": dict of arrays, "extra": dict}``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ModelFileError
        If the file is not a complete nescot model file of a known version; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such model file: {path}")
    raw = path.read_bytes()
    try:
        payload = serialization.msgpack_restore(raw)
    except Exception as err:  # noqa: BLE001 - msgpack raises many types on damaged input
        raise ModelFileError(
            f"{path} is not a readable nescot model file (truncated or not msgpack: {type(err).__name__}: {err})."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") not in (MODEL_FILE_FORMAT, *_OLD_FORMATS):
        raise ModelFileError(f"{path} is not a nescot model file (no 'format': {MODEL_FILE_FORMAT!r} field).")
    version = payload.get("version")
    if payload.get("format") != MODEL_FILE_FORMAT or version != MODEL_FILE_VERSION:
        raise ModelFileError(
            f"{path} is a nescot model file of format version {version!r}; this nescot reads version "
            f"{MODEL_FILE_VERSION} only. Files of version 1 stored a pickled configuration and are refused because "
            "reading them could run code; re-train and save the model with this version."
        )
    for name, kind in (("solver", str), ("config", str), ("state", dict), ("history", dict), ("extra", str)):
        if name not in payload:
            raise ModelFileError(f"{path} is incomplete: the field {name!r} is missing.")
        if not isinstance(payload[name], kind):
            raise ModelFileError(
                f"{path}: the field {name!r} should be a {kind.__name__}, got {type(payload[name]).__name__}."
            )
    try:
        config = decode_config(json.loads(payload["config"]))
        extra = json.loads(payload["extra"])
    except Exception as err:  # noqa: BLE001 - rebuilding ott objects from bad data may fail in many ways
        raise ModelFileError(f"{path}: the configuration is not valid ({type(err).__name__}: {err}).") from None
    if not isinstance(config, dict) or not isinstance(extra, dict):
        raise ModelFileError(f"{path}: the configuration and extra fields must be JSON objects.")
    _check_arrays(payload["state"], path, "state")
    _check_arrays(payload["history"], path, "history")
    return {k: payload[k] for k in ("solver", "state", "history")} | {"config": config, "extra": extra}


def check_state_like(state: Any, template: Any, path: Path, where: str = "state") -> None:
    """Raise :class:`ModelFileError` unless ``state`` has the tree structure and array shapes of ``template``."""
    if isinstance(template, Mapping):
        if not isinstance(state, Mapping):
            raise ModelFileError(f"{path}: {where!r} should be a map, got {type(state).__name__}.")
        missing = sorted(set(template) - set(state))
        if missing:
            raise ModelFileError(f"{path} is incomplete: {where!r} lacks {missing}.")
        for k in template:
            check_state_like(state[k], template[k], path, f"{where}/{k}")
        return
    if template is None:
        return
    shape = tuple(getattr(template, "shape", ()))
    if tuple(np.shape(state)) != shape:
        raise ModelFileError(f"{path}: {where!r} has shape {tuple(np.shape(state))}, expected {shape}.")
