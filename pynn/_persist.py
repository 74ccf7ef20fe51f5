"""pynn's model file: a documented, versioned, plain-data format.

Loading never executes code (no pickle): the file is a JSON header and the raw
parameter arena, checked end to end by a CRC-32.

Layout (all integers little-endian)::

    offset  size  content
    0       8     magic b"PYNNMODL"
    8       4     format version (uint32), currently 1
    12      4     header length H in bytes (uint32)
    16      H     header: UTF-8 JSON object (see below)
    16+H    P     parameter arena: count scalars of dtype, little-endian, where
                  count and dtype are given by the header's "arena" entry
    16+H+P  4     CRC-32 (zlib.crc32) of every byte before it

Header keys: "format" ("pynn-model"), "pynn_version", "estimator" (class
name), "params" (the constructor's parameters), "units" (layer sizes),
"arena" ({"dtype": "float32"|"float64", "count": int}), "fitted" (fitted
attributes: n_features_in_, out_activation_, n_iter_, t_, loss_, loss_curve_,
best_loss_, validation_scores_, best_validation_score_, and where they apply
classes_ (as {"dtype": ..., "values": [...]}), feature_names_in_, multilabel,
y_ndim).  The optimizer's moments are not stored: a loaded model predicts
exactly as the saved one, and further training starts a fresh optimizer.

This module knows the file, not the estimators: an estimator hands over its
state as plain data (``_export``: layer sizes, arena, fitted attributes, where a
NumPy array of labels is stored as {"dtype", "values"}) and is rebuilt, and
checked, by ``cls._from_export``.
"""
from __future__ import annotations

import json
import math
import os
import struct
import zlib

import numpy as np

from . import _core
from ._arena import Layout
from ._version import __version__
from .exceptions import ModelFileError

MAGIC = b"PYNNMODL"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sII")
_MAX_HEADER = 64 << 20


def _json_number(x):
    x = float(x)
    return x if math.isfinite(x) else repr(x)  # 'inf' / 'nan' as strings


def _number(x):
    """A stored float (non-finite ones are stored as 'inf', '-inf' or 'nan')."""
    if isinstance(x, str) and x in ("inf", "-inf", "nan"):
        return float(x)
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    return x  # anything else is caught by the caller's type check


def _encode_labels(arr):
    arr = np.asarray(arr)
    kind = arr.dtype.kind
    if kind in "biu":
        return {"dtype": arr.dtype.str, "values": [int(v) for v in arr]}
    if kind == "f":
        return {"dtype": arr.dtype.str, "values": [float(v) for v in arr]}
    if kind == "U":
        return {"dtype": arr.dtype.str, "values": [str(v) for v in arr]}
    if kind == "O" and all(isinstance(v, str) for v in arr):
        return {"dtype": "object-str", "values": [str(v) for v in arr]}
    if kind == "O" and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                           for v in arr):
        return {"dtype": "object-int", "values": [int(v) for v in arr]}
    raise TypeError(f"labels of dtype {arr.dtype} (e.g. {arr[:3].tolist()!r}) cannot be stored "
                    f"in pynn's plain-data model file; use integers or strings as labels, or "
                    f"pickle the model")


def _decode_labels(obj, what):
    if not isinstance(obj, dict) or not isinstance(obj.get("values"), list):
        raise ModelFileError(f"corrupt model file: {what} is malformed")
    dt, values = obj.get("dtype"), obj["values"]
    if dt in ("object-str", "object-int"):
        return np.array(values, dtype=object)
    try:
        dtype = np.dtype(dt)
    except TypeError:
        raise ModelFileError(f"corrupt model file: {what} has unknown dtype {dt!r}") from None
    if dtype.kind not in "biufU":
        raise ModelFileError(f"corrupt model file: {what} has unsupported dtype {dt!r}")
    return np.array(values, dtype=dtype)


def _json_params(params):
    out = {}
    for name, value in params.items():
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, np.random.RandomState):
            value = None  # a generator's state is not part of the model
        if isinstance(value, (np.integer,)):
            value = int(value)
        if isinstance(value, (np.floating,)):
            value = float(value)
        if isinstance(value, float) and not math.isfinite(value):
            value = repr(value)
        try:
            json.dumps(value)
        except TypeError:
            raise TypeError(f"parameter {name}={value!r} cannot be stored in pynn's model "
                            f"file") from None
        out[name] = value
    return out


def _json_fitted(fitted):
    """Fitted attributes as JSON values: label arrays tagged with their dtype,
    non-finite floats as strings."""
    out = {}
    for name, value in fitted.items():
        if isinstance(value, np.ndarray):
            value = _encode_labels(value)
        elif isinstance(value, float):
            value = _json_number(value)
        elif isinstance(value, list):
            value = [_json_number(v) if isinstance(v, float) else v for v in value]
        out[name] = value
    return out


def _fitted_from_json(fitted):
    """The inverse of _json_fitted."""
    out = {}
    for name, value in fitted.items():
        if isinstance(value, dict):
            value = _decode_labels(value, name)
        elif isinstance(value, list) and not all(isinstance(v, str) for v in value):
            value = [_number(v) for v in value]  # a list of names stays as it is
        elif not isinstance(value, list):
            value = _number(value)
        out[name] = value
    return out


def save_model(file, estimator, params, units, arena, fitted) -> None:
    """Write a model to `file` (a path or a binary file object): the estimator's
    class name and parameters, its layer sizes, parameter arena and fitted
    attributes (plain data, see the module's docstring)."""
    arena = np.ascontiguousarray(arena, dtype=arena.dtype.newbyteorder("<"))
    header = {
        "format": "pynn-model",
        "pynn_version": __version__,
        "estimator": estimator,
        "params": _json_params(params),
        "units": [int(u) for u in units],
        "arena": {"dtype": arena.dtype.name, "count": int(arena.size)},
        "fitted": _json_fitted(fitted),
    }
    head = json.dumps(header, sort_keys=True).encode("utf-8")
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head)) + head + arena.tobytes()
    blob = body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)
    if hasattr(file, "write"):
        file.write(blob)
        return
    path = os.fspath(file)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)  # a crash mid-write never leaves a half-written model
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _read(file):
    if hasattr(file, "read"):
        data = file.read()
    else:
        with open(os.fspath(file), "rb") as fh:
            data = fh.read()
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("the model file must be opened in binary mode ('rb')")
    return bytes(data)


def load_model(file, classes):
    """Read a model written by save_model; `classes` maps estimator names to classes."""
    data = _read(file)
    if len(data) < _PREFIX.size or data[:8] != MAGIC:
        raise ModelFileError("not a pynn model file: it does not start with pynn's magic bytes "
                             "b'PYNNMODL' (was it written by model.save?)")
    _, version, hlen = _PREFIX.unpack_from(data)
    if version > FORMAT_VERSION or version == 0:
        raise ModelFileError(f"model file format version {version} is not supported: this pynn "
                             f"reads versions 1..{FORMAT_VERSION} (upgrade pynn)")
    if len(data) < _PREFIX.size + 4 or hlen > _MAX_HEADER or _PREFIX.size + hlen + 4 > len(data):
        raise ModelFileError(f"truncated model file: {len(data)} bytes cannot hold its "
                             f"{hlen}-byte header")
    body, crc = data[:-4], struct.unpack("<I", data[-4:])[0]
    try:
        header = json.loads(data[_PREFIX.size:_PREFIX.size + hlen].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        header = None
    if header is not None and isinstance(header, dict) and isinstance(header.get("arena"), dict):
        try:
            want = (_PREFIX.size + hlen + int(header["arena"]["count"])
                    * np.dtype(header["arena"]["dtype"]).itemsize + 4)
        except (KeyError, TypeError, ValueError, OverflowError):
            want = None
        if want is not None and len(data) < want:
            raise ModelFileError(f"truncated model file: {len(data)} bytes, expected {want}")
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        raise ModelFileError("corrupt model file: its checksum (CRC-32) does not match its "
                             "contents")
    if not isinstance(header, dict) or header.get("format") != "pynn-model":
        raise ModelFileError("corrupt model file: the header is not a pynn model header")
    try:
        return _build(header, body[_PREFIX.size + hlen:], classes)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError,
            RecursionError) as exc:
        raise ModelFileError(f"corrupt model file: {type(exc).__name__}: {exc}") from None


def _build(header, payload, classes):
    name = header["estimator"]
    if name not in classes:
        raise ModelFileError(f"model file holds an unknown estimator {name!r}; known: "
                             f"{sorted(classes)}")
    cls = classes[name]
    params = dict(header["params"])
    valid = set(cls._param_names())
    unknown = set(params) - valid
    if unknown:
        raise ModelFileError(f"model file has parameters unknown to {name}: {sorted(unknown)}")
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    for key, value in params.items():
        if isinstance(value, str) and value in ("inf", "-inf", "nan"):
            params[key] = float(value)
    units = [int(u) for u in header["units"]]
    arena_info = header["arena"]
    dtype = np.dtype(arena_info["dtype"])
    if dtype not in (np.float32, np.float64):
        raise ModelFileError(f"model file has an arena of unsupported dtype {dtype}")
    count = int(arena_info["count"])
    if len(payload) != count * dtype.itemsize:
        raise ModelFileError(f"corrupt model file: the arena holds {len(payload)} bytes, "
                             f"expected {count * dtype.itemsize}")
    if len(units) < 2 or any(u < 1 for u in units):
        raise ModelFileError(f"corrupt model file: layer sizes {units}")
    if len(units) - 1 > _core.MAX_LAYERS:
        raise ModelFileError(f"corrupt model file: {len(units) - 1} layers, more than pynn "
                             f"supports ({_core.MAX_LAYERS})")
    need = Layout(units).size
    if need != count:  # checked before allocating anything
        raise ModelFileError(f"corrupt model file: layer sizes {units} need {need} "
                             f"parameters, the file has {count}")
    arena = np.frombuffer(payload, dtype=dtype.newbyteorder("<")).astype(dtype)
    if not np.isfinite(arena).all():
        raise ModelFileError("corrupt model file: the weights hold NaN or infinity")
    fitted = header["fitted"]
    if not isinstance(fitted, dict):
        raise ModelFileError("corrupt model file: the fitted attributes are malformed")
    return cls._from_export(params, units, arena, _fitted_from_json(fitted))
