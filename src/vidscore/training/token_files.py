"""Token rows read from a file a user gives: a .npy, a training or generation .npz, or the
original's processed npz; checked against their representation's vocabulary."""
from __future__ import annotations

import contextlib
import os

import numpy as np

from vidscore import cli
from vidscore import constants as D
from vidscore.music.representation import tokens_to_notes


def load_tokens(path: str, key: str | None, index: int | None) -> np.ndarray:
    if not os.path.exists(path):
        raise cli.UserError(f"{path} does not exist; give a .npy of token rows or a training/generation .npz")
    from vidscore.training import original_npz
    if original_npz.is_original(path):     # CMT's processed file (10 raw columns): converted as training reads it
        try:
            data = original_npz.read(path)
        except original_npz.OriginalNpzError as e:
            raise cli.UserError(str(e)) from None
        data = {k: data[k] for k in ("x", "y")}
    else:
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as e:
            raise cli.UserError(f"cannot read {path} as numpy data ({type(e).__name__}); give a .npy or .npz") \
                from None
    if isinstance(data, np.ndarray):
        arr = data
    else:
        with data if hasattr(data, "files") else contextlib.nullcontext():
            names = data.files if hasattr(data, "files") else list(data)
            k = key or next((n for n in ("tokens", "x", "y", "sequence") if n in names), None)
            if k is None or k not in names:
                raise cli.UserError(f"{path} has arrays {names}; choose one with --key")
            arr = data[k]
            if k == "x" and "y" in names:
                # a training file: rebuild the full sequence seq = x[0] + y
                y = data["y"]
                if arr.ndim == 3:
                    i = index or 0
                    if not 0 <= i < arr.shape[0]:
                        raise cli.UserError(f"--index {i} out of range 0..{arr.shape[0] - 1}")
                    arr = np.concatenate([arr[i, :1], y[i]])
                    index = None
    if arr.ndim == 3:
        if index is None:
            raise cli.UserError(f"{path} holds {arr.shape[0]} sequences; choose one with --index")
        if not 0 <= index < arr.shape[0]:
            raise cli.UserError(f"--index {index} out of range 0..{arr.shape[0] - 1}")
        arr = arr[index]
    widths = sorted({P.n_cols for P in D.PRESETS.values()})
    if arr.ndim != 2 or arr.shape[1] not in widths:
        raise cli.UserError(f"{path}: expected token rows of {' or '.join(map(str, widths))} columns (cmt, bmt), "
                            f"got an array of shape {arr.shape}; choose the token array with --key")
    tokens = check_tokens(arr, path)
    if not len(tokens_to_notes(tokens)):
        raise cli.UserError(f"{path}: these token rows hold no notes, so there is no MIDI to write; "
                            "choose another --key or --index")
    return tokens


def check_tokens(arr: np.ndarray, source: str) -> np.ndarray:
    """Token rows as int64, or UserError: whole, finite numbers, each column within its
    representation's vocabulary (cmt: 9 columns, bmt: 12; i_beat below 2^24 ticks)."""
    if arr.dtype.kind not in "iuf":
        raise cli.UserError(f"{source}: token rows must be whole numbers, not {arr.dtype}")
    if arr.dtype.kind == "f" and (not np.isfinite(arr).all() or (arr != np.round(arr)).any()):
        raise cli.UserError(f"{source}: token rows must be whole, finite numbers")
    P = next((P for P in D.PRESETS.values() if P.n_cols == arr.shape[1]), D.PRESETS["cmt"])
    limits = [n - 1 for n in P.n_class]
    limits[D.COL_IBEAT] = 2 ** 24
    for c, hi in enumerate(limits):
        bad = np.flatnonzero((arr[:, c] < 0) | (arr[:, c] > hi))
        if len(bad):
            raise cli.UserError(f"{source}: row {bad[0]} has {P.columns[c]} {arr[bad[0], c]}; "
                                f"{P.name} tokens take 0..{hi} there")
    return arr[:, :P.n_cols].astype(np.int64)
