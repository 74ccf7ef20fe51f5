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

Saving to a path writes a temporary file of its own in the same directory
(``.{name}.pynn-tmp-{pid}-{host}-{random}``), syncs it and renames it over the
path; the next save to that path removes temporaries left by processes of this
machine that are gone.
Loading reads in order, checking as it goes: magic bytes and version, a
bounded header, then the weights straight into the arena with the CRC-32
computed on the way; no declared size is trusted beyond what the file holds.

This module knows the file, not the estimators: an estimator hands over its
state as plain data (``_export``: layer sizes, arena, fitted attributes, where a
NumPy array of labels is stored as {"dtype", "values"}) and is rebuilt, and
checked, by ``cls._from_export``.
"""
from __future__ import annotations

# json, socket and tempfile are imported where they are used, so that `import pynn`
# stays light (.ci/release checks that it adds < 30 ms to `import numpy`).
import errno
import io
import math
import os
import stat
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
#: bytes a label array may take beyond 4 bytes a character of its longest label
#: (a dtype such as '<U64' for short labels is kept, a '<U250000000' refused)
_LABEL_SLACK = 16 << 20
#: bytes read (and checksummed) at a time
_CHUNK = 4 << 20
#: temporary files of a save in progress: .{name}.pynn-tmp-{pid}-{host}-{random}
_TMP_INFIX = ".pynn-tmp-"


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
    """The label array stored as {"dtype", "values"}.  A declared dtype is not
    trusted with an allocation the file does not hold: a string dtype wider
    than the longest label is refused unless the array stays small."""
    if not isinstance(obj, dict) or not isinstance(obj.get("values"), list):
        raise ModelFileError(f"corrupt model file: {what} is malformed")
    dt, values = obj.get("dtype"), obj["values"]
    if dt in ("object-str", "object-int"):
        kind = str if dt == "object-str" else int
        if not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
            raise ModelFileError(f"corrupt model file: {what} holds values that are not "
                                 f"{kind.__name__}s")
        return np.array(values, dtype=object)
    try:
        dtype = np.dtype(dt)
    except (TypeError, ValueError):
        raise ModelFileError(f"corrupt model file: {what} has unknown dtype {dt!r}") from None
    if dtype.kind not in "biufU":
        raise ModelFileError(f"corrupt model file: {what} has unsupported dtype {dt!r}")
    if dtype.kind == "U":
        if not all(isinstance(v, str) for v in values):
            raise ModelFileError(f"corrupt model file: {what} of dtype {dt!r} holds values "
                                 f"that are not strings")
        longest = max((len(v) for v in values), default=0)
        if dtype.itemsize > 4 * max(longest, 1) and len(values) * dtype.itemsize > _LABEL_SLACK:
            raise ModelFileError(f"corrupt model file: {what} declares dtype {dt!r}, far wider "
                                 f"than its longest label ({longest} characters)")
    elif not all((isinstance(v, int) if dtype.kind in "biu" else isinstance(v, (int, float)))
                 and not isinstance(v, bool) for v in values):
        raise ModelFileError(f"corrupt model file: {what} of dtype {dt!r} holds values that "
                             f"are not numbers")
    return np.array(values, dtype=dtype)


def _json_params(params):
    import json
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
        elif isinstance(value, list) and name != "feature_names_in_":
            value = [_number(v) for v in value]  # a list of names stays as it is
        elif not isinstance(value, list):
            value = _number(value)
        out[name] = value
    return out


def _header_bytes(estimator, params, units, arena, fitted):
    import json
    header = {
        "format": "pynn-model",
        "pynn_version": __version__,
        "estimator": estimator,
        "params": _json_params(params),
        "units": [int(u) for u in units],
        "arena": {"dtype": arena.dtype.name, "count": int(arena.size)},
        "fitted": _json_fitted(fitted),
    }
    return json.dumps(header, sort_keys=True).encode("utf-8")


def _write(fh, head, arena):
    """Write the file's bytes to fh piece by piece (no copy of the arena)."""
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head))
    crc = 0
    for piece in (prefix, head, memoryview(arena).cast("B")):
        fh.write(piece)
        crc = zlib.crc32(piece, crc)
    fh.write(struct.pack("<I", crc & 0xFFFFFFFF))


def save_model(file, estimator, params, units, arena, fitted, cls=None) -> None:
    """Write a model to `file` (a path or a binary file object): the estimator's
    class name and parameters, its layer sizes, parameter arena and fitted
    attributes (plain data, see the module's docstring).

    `cls`: the estimator's class; when given, the file is first checked exactly
    as load_model checks it, and a model that load_model would refuse is not
    written (ModelFileError).  A path is replaced atomically: the bytes go to a
    temporary file of their own in the same directory (synced to disk), which
    then replaces the path, so concurrent saves to one path each leave an
    intact model, and a crash never leaves a half-written one."""
    import json
    import tempfile
    arena = np.ascontiguousarray(arena, dtype=arena.dtype.newbyteorder("<"))
    head = _header_bytes(estimator, params, units, arena, fitted)
    if cls is not None:
        try:
            _checked_build(json.loads(head), arena, {estimator: cls}, len(head))
        except ModelFileError as exc:
            raise ModelFileError(f"refusing to save a model that pynn.load would refuse: "
                                 f"{exc}") from None
    if hasattr(file, "write"):
        _write(file, head, arena)
        return
    path = os.fspath(file)
    folder, name = os.path.split(os.path.abspath(path))
    if isinstance(name, bytes):
        name = os.fsdecode(name)
        folder = os.fsdecode(folder)
    _remove_stale_temporaries(folder, name)
    fd, tmp = tempfile.mkstemp(dir=folder,
                               prefix=f".{name}{_TMP_INFIX}{os.getpid()}-{_host_tag()}-")
    try:
        with open(fd, "wb") as fh:
            _set_default_mode(fh.fileno(), path)
            _write(fh, head, arena)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # a crash mid-write never leaves a half-written model
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def _set_default_mode(fd, path):
    """mkstemp's file is private (0600); give it the mode the path has, or that
    a plain open() would give a new file."""
    if not hasattr(os, "fchmod"):
        return
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    try:
        os.fchmod(fd, mode)
    except OSError:
        pass


def _umask():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _fsync_dir(folder):
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or unknowable: keep its file
    return True


def _host_tag():
    """8 hex digits naming this machine: a pid is only probed on the machine
    that wrote it (a directory may be shared between machines)."""
    import socket
    return f"{zlib.crc32(socket.gethostname().encode('utf-8', 'replace')) & 0xFFFFFFFF:08x}"


def _remove_stale_temporaries(folder, name):
    """Remove the temporary files that saves to `name` killed mid-write left
    behind (their process is gone); a live process's temporary is kept."""
    if os.name != "posix":  # os.kill(pid, 0) would not just probe elsewhere
        return
    prefix = f".{name}{_TMP_INFIX}"
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        pid, host, rest = (entry[len(prefix):].split("-", 2) + ["", ""])[:3]
        if (not rest or host != _host_tag() or not pid.isdigit()
                or int(pid) == os.getpid()):
            continue
        if not _pid_alive(int(pid)):
            try:
                os.remove(os.path.join(folder, entry))
            except OSError:
                pass


class _Source:
    """A model file read sequentially: a path (opened here) or a binary file
    object; `remaining` is how many bytes it holds from where reading starts
    when that is known (a regular file, a seekable file object), else None (a
    pipe)."""

    def __init__(self, fh):
        self.fh = fh
        self.remaining = None
        try:
            st = os.fstat(fh.fileno())
            if stat.S_ISREG(st.st_mode):
                self.remaining = max(st.st_size - fh.tell(), 0)
            return
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            pass
        try:
            if fh.seekable():
                pos = fh.tell()
                end = fh.seek(0, os.SEEK_END)
                fh.seek(pos)
                self.remaining = max(end - pos, 0)
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self.remaining = None

    def read(self, n):
        """Up to n bytes (fewer only at the end of the file)."""
        parts, got = [], 0
        while got < n:
            data = self.fh.read(min(n - got, _CHUNK))
            if not isinstance(data, (bytes, bytearray)):
                raise TypeError("the model file must be opened in binary mode ('rb')")
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def readinto(self, view):
        """Fill the byte memoryview `view`; the number of bytes read (fewer at
        the end of the file)."""
        n, got = len(view), 0
        readinto = getattr(self.fh, "readinto", None)
        while got < n:
            if readinto is not None:
                k = readinto(view[got:min(n, got + _CHUNK)])
                if k is None:
                    raise ModelFileError("the model file object is non-blocking and has no "
                                         "data ready")
            else:
                data = self.fh.read(min(n - got, _CHUNK))
                if not isinstance(data, (bytes, bytearray)):
                    raise TypeError("the model file must be opened in binary mode ('rb')")
                k = len(data)
                view[got:got + k] = data
            if not k:
                break
            got += k
        return got


def load_model(file, classes):
    """Read a model written by save_model; `classes` maps estimator names to classes.

    The file is read in order and checked as it comes: the magic bytes and
    version first, then the (bounded) header, then the weights straight into
    the model's arena, checksummed on the way; nothing is allocated that the
    file does not hold."""
    if hasattr(file, "read"):
        return _load(_Source(file), classes)
    if not isinstance(file, (str, bytes, os.PathLike)):
        raise TypeError(f"pynn.load needs a file name (str or os.PathLike) or a binary file "
                        f"object, got {type(file).__name__}")
    path = os.fspath(file)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "a folder, not a pynn model file", path)
    with open(path, "rb") as fh:
        return _load(_Source(fh), classes)


def _load(src, classes):
    import json
    prefix = src.read(_PREFIX.size)
    if len(prefix) < len(MAGIC) or prefix[:len(MAGIC)] != MAGIC:
        raise ModelFileError("not a pynn model file: it does not start with pynn's magic bytes "
                             "b'PYNNMODL' (was it written by model.save?)")
    if len(prefix) < _PREFIX.size:
        raise ModelFileError(f"truncated model file: {len(prefix)} bytes")
    _, version, hlen = _PREFIX.unpack(prefix)
    if version > FORMAT_VERSION or version == 0:
        raise ModelFileError(f"model file format version {version} is not supported: this pynn "
                             f"reads versions 1..{FORMAT_VERSION} (upgrade pynn)")
    size = src.remaining  # the file's length from where reading started, when known
    if hlen > _MAX_HEADER or (size is not None and _PREFIX.size + hlen + 4 > size):
        raise ModelFileError(f"truncated model file: {size if size is not None else 'its'} "
                             f"bytes cannot hold its {hlen}-byte header")
    head = src.read(hlen)
    if len(head) < hlen:
        raise ModelFileError(f"truncated model file: its {hlen}-byte header is cut short")
    try:
        header = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError("corrupt model file: the header is not valid JSON") from None
    if not isinstance(header, dict) or header.get("format") != "pynn-model":
        raise ModelFileError("corrupt model file: the header is not a pynn model header")
    dtype, count = _arena_entry(header)
    nbytes = count * dtype.itemsize
    want = _PREFIX.size + hlen + nbytes + 4
    if size is not None and size < want:
        raise ModelFileError(f"truncated model file: {size} bytes, expected {want}")
    if size is not None and size > want:
        raise ModelFileError(f"corrupt model file: {size - want} bytes after its end "
                             f"(checksum)")
    try:
        arena = np.empty(count, dtype=dtype.newbyteorder("<"))
    except (MemoryError, ValueError):
        raise ModelFileError(f"corrupt model file: its header declares {nbytes} bytes of "
                             f"weights, more than can be allocated") from None
    crc = zlib.crc32(head, zlib.crc32(prefix))
    view = memoryview(arena).cast("B")
    got = 0
    while got < nbytes:
        k = src.readinto(view[got:min(nbytes, got + _CHUNK)])
        if not k:
            break
        crc = zlib.crc32(view[got:got + k], crc)
        got += k
    stored = src.read(4)
    if got < nbytes or len(stored) < 4:
        raise ModelFileError(f"truncated model file: {_PREFIX.size + hlen + got + len(stored)} "
                             f"bytes, expected {want}")
    if src.read(1):
        raise ModelFileError("corrupt model file: bytes after its end (checksum)")
    if crc & 0xFFFFFFFF != struct.unpack("<I", stored)[0]:
        raise ModelFileError("corrupt model file: its checksum (CRC-32) does not match its "
                             "contents")
    if arena.dtype != dtype:  # a big-endian machine
        arena = arena.astype(dtype)
    return _checked_build(header, arena, classes, hlen)


def _arena_entry(header):
    """(dtype, count) of the header's "arena" entry, checked before anything
    is allocated."""
    info = header.get("arena")
    if not isinstance(info, dict):
        raise ModelFileError("corrupt model file: the header has no arena entry")
    try:
        dtype = np.dtype(info.get("dtype"))
    except (TypeError, ValueError):
        raise ModelFileError(f"corrupt model file: arena dtype {info.get('dtype')!r}") from None
    if dtype not in (np.float32, np.float64):
        raise ModelFileError(f"model file has an arena of unsupported dtype {dtype}")
    count = info.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ModelFileError(f"corrupt model file: arena count {count!r}")
    return dtype, count


def _all_finite(arena):
    """Whether every weight is finite, checked a chunk at a time (no
    arena-sized temporary)."""
    step = _CHUNK // 8
    return all(np.isfinite(arena[i:i + step]).all() for i in range(0, arena.size, step))


def _checked_build(header, arena, classes, hlen):
    try:
        return _build(header, arena, classes, hlen)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError,
            RecursionError) as exc:
        raise ModelFileError(f"corrupt model file: {type(exc).__name__}: {exc}") from None


def _build(header, arena, classes, hlen):
    name = header["estimator"]
    if not isinstance(name, str) or name not in classes:
        raise ModelFileError(f"model file holds an unknown estimator {name!r}; known: "
                             f"{sorted(classes)}")
    cls = classes[name]
    if not isinstance(header["params"], dict):
        raise ModelFileError("corrupt model file: the parameters are malformed")
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
    units = header["units"]
    if (not isinstance(units, list) or len(units) < 2
            or not all(isinstance(u, int) and not isinstance(u, bool) and u >= 1
                       for u in units)):
        raise ModelFileError(f"corrupt model file: layer sizes {units}")
    if len(units) - 1 > _core.MAX_LAYERS:
        raise ModelFileError(f"corrupt model file: {len(units) - 1} layers, more than pynn "
                             f"supports ({_core.MAX_LAYERS})")
    need = Layout(units).size
    if need != arena.size:
        raise ModelFileError(f"corrupt model file: layer sizes {units} need {need} "
                             f"parameters, the file has {arena.size}")
    if not _all_finite(arena):
        raise ModelFileError("corrupt model file: the weights hold NaN or infinity")
    fitted = header["fitted"]
    if not isinstance(fitted, dict):
        raise ModelFileError("corrupt model file: the fitted attributes are malformed")
    return cls._from_export(params, units, arena, _fitted_from_json(fitted))
