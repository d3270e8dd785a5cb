"""The original CMT's processed training file (``lpd_5_prcem_mix_v8_10000.npz``), read safely.

Its arrays (SPEC section 2): ``x`` and ``y`` (songs, 9999, 10) in the raw column order
``[type, bar-beat, density, pitch, duration, instrument, strength, i_beat, n_beat, p_beat]``
with p_beat *without* our +1, ``decoder_mask`` (songs, 10000), and ``metadata``: a pickled
numpy object array of dicts ``{id, de_len, instruments, genre}``.

:func:`read` returns the same dict as our own training files (``x``, ``y`` in our nine
columns, ``mask``, ``seq_len``, ``init``, ``split``, ``metadata``):

* columns: ours = raw ``[1, 0, 2, 3, 4, 5, 6, 9, 7]``, p_beat + 1 on real rows (EOS/padding
  rows stay all zero; ``n_beat`` is dropped: p_beat already encodes it);
* ``seq_len`` = the song's rows minus one (``x`` ends with the EOS row; the original's mask
  also covered one padding row after it, ours does not);
* ``init``: genre none, key none and the song's instruments from its metadata (the original
  gave every song the same block; genre is "N/A" and no key is recorded in the file);
* ``split``: the file has no validation split, so one is made deterministically from a hash
  of each song id (:func:`dataset.assign_split`, 10 % validation), the rule our own files use.

The metadata pickle is never executed: the ``.npy`` member is opened with :mod:`zipfile`,
its header parsed, and its pickle read by :class:`SafeUnpickler`, which admits only what a
numpy object array of plain dicts needs (dicts, lists, strings and numbers are pickle's own
opcodes; the only globals are numpy's array reconstructor, ``ndarray`` and ``dtype``).
Anything else is refused with a one-line error.  ``np.load(..., allow_pickle=True)`` is never
called on a user's file.
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np

RAW_COLUMNS = ["type", "bar-beat", "density", "pitch", "duration", "instrument", "strength",
               "i_beat", "n_beat", "p_beat"]
TO_OURS = [1, 0, 2, 3, 4, 5, 6, 9, 7]      # raw column for each of our nine
RAW_TYPE, RAW_PBEAT = 0, 9


class OriginalNpzError(ValueError):
    """The file looks like the original's but cannot be read; ``str(e)`` is one line."""


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as f
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct as f
    return f


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler for numpy object arrays of plain data; every other global is refused."""

    def find_class(self, module, name):
        get = _ALLOWED.get((module, name))
        if get is None:
            raise OriginalNpzError(f"refusing to load {module}.{name} from the pickled metadata "
                                   "(only dicts, lists, strings and numbers are read)")
        return get()


def _object_array(z: zipfile.ZipFile, member: str) -> np.ndarray:
    """An object array member of an npz, unpickled by :class:`SafeUnpickler`."""
    with z.open(member) as f:
        raw = io.BytesIO(f.read())
    version = np.lib.format.read_magic(raw)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(raw)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(raw)
    else:
        raise OriginalNpzError(f"{member}: unsupported .npy version {version}")
    if not dtype.hasobject:
        return np.lib.format.read_array(io.BytesIO(raw.getvalue()), allow_pickle=False)
    try:
        arr = SafeUnpickler(raw).load()
    except OriginalNpzError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged pickle is the user's file
        raise OriginalNpzError(f"{member}: unreadable pickle ({type(e).__name__}: {e})") from None
    if not isinstance(arr, np.ndarray):
        raise OriginalNpzError(f"{member}: the pickle holds a {type(arr).__name__}, not an array")
    return arr


def _plain(v):
    """Metadata values as JSON-safe Python values."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    raise OriginalNpzError(f"metadata holds a {type(v).__name__}; expected dicts, lists, strings and numbers")


def read_metadata(path: str | os.PathLike) -> list[dict]:
    """The per-song metadata dicts of an original npz, read without executing its pickle."""
    try:
        with zipfile.ZipFile(path) as z:
            if "metadata.npy" not in z.namelist():
                raise OriginalNpzError(f"{path}: no 'metadata' array")
            arr = _object_array(z, "metadata.npy")
    except zipfile.BadZipFile as e:
        raise OriginalNpzError(f"{path}: not an npz ({e})") from None
    out = [_plain(m) for m in arr.ravel().tolist()]
    if not all(isinstance(m, dict) for m in out):
        raise OriginalNpzError(f"{path}: 'metadata' must be an array of dicts")
    return out


def is_original(path: str | os.PathLike) -> bool:
    """True for a file with the original's layout (decoder_mask, no seq_len)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return "decoder_mask.npy" in names and "seq_len.npy" not in names


def convert_rows(raw: np.ndarray) -> np.ndarray:
    """Raw rows (..., 10) in the original's column order -> our nine columns (int32)."""
    raw = np.asarray(raw)
    if raw.shape[-1] != len(RAW_COLUMNS):
        raise OriginalNpzError(f"rows have {raw.shape[-1]} columns; the original's have {len(RAW_COLUMNS)}")
    out = raw[..., TO_OURS].astype(np.int32)
    real = raw[..., RAW_TYPE] != 0
    out[..., 7] += real.astype(np.int32)
    return out


def read(path: str | os.PathLike, val_fraction: float = 0.1) -> dict:
    """An original training npz as our training-data dict (see the module docstring)."""
    from vidscore.training import dataset
    from vidscore import constants as D
    from vidscore.music.representation import init_tokens

    path = Path(path)
    metadata = read_metadata(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y, dmask = z["x"], z["y"], z["decoder_mask"]
    except KeyError as e:
        raise OriginalNpzError(f"{path}: no {e} array") from None
    except ValueError as e:
        raise OriginalNpzError(f"{path}: {e}") from None
    n = len(x)
    if y.shape != x.shape or len(dmask) != n or len(metadata) != n:
        raise OriginalNpzError(f"{path}: x {x.shape}, y {y.shape}, decoder_mask {dmask.shape} and "
                               f"{len(metadata)} metadata entries do not agree")
    L = x.shape[1]
    seq_len = np.clip(dmask.sum(1).astype(np.int64) - 1, 0, L).astype(np.int32)
    mask = (np.arange(L)[None, :] < seq_len[:, None]).astype(np.float32)
    names = {name: i + 1 for i, name in enumerate(D.INSTRUMENTS)}
    inits, ids = [], []
    for i, m in enumerate(metadata):
        inst = [names[s] for s in m.get("instruments", []) if isinstance(s, str) and s in names]
        inits.append(init_tokens(inst, 0, 0))
        ids.append(str(m.get("id", i)))
    split_of = dataset.assign_split(ids, val_fraction)
    for i, m in enumerate(metadata):
        m.setdefault("id", ids[i])
        m["source"] = "original npz"
    return {
        "x": convert_rows(x), "y": convert_rows(y), "mask": mask, "seq_len": seq_len,
        "init": np.stack(inits).astype(np.int32) if inits else np.zeros((0, D.N_INIT_ROWS, 3), np.int32),
        "split": np.array([split_of[s] for s in ids], dtype=np.uint8),
        "metadata": metadata, "vocab": None,
    }
