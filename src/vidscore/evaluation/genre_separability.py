"""How well songs made with different ``--genre`` values can be told apart (issue 27).

Each song becomes a vector of simple texture features (:func:`song_features`); a nearest-centroid
classifier on standardised features is scored by leave-one-out (:func:`separability`): every song
is classified by the centroids of all the other songs.  When the genres act, their songs differ in
these features and the accuracy is well above chance (1 / number of genres).

Pure functions on note arrays (:mod:`vidscore.evaluation.metrics`' layout) and numbers; no I/O.
"""
from __future__ import annotations

import numpy as np

from vidscore.evaluation import arrangement as A
from vidscore.evaluation import metrics as M

PITCHED_TRACKS = {M.PIANO: "piano", M.GUITAR: "guitar", M.BASS: "bass", M.STRINGS: "strings"}
FEATURES = ("notes_per_bar", "drum_share", "register", "polyphony",
            *(f"share_{name}" for name in PITCHED_TRACKS.values()), "kit_share", "onset_density")


def song_features(notes) -> dict:
    """The features of one song (bars: 0 .. its last onset's, :func:`metrics.n_bars`):

    * ``notes_per_bar``: notes / bars;
    * ``drum_share``: drum notes / notes;
    * ``register``: mean MIDI pitch of the non-drum notes (NaN without any);
    * ``polyphony``: non-drum notes per distinct non-drum onset tick (NaN without any);
    * ``share_piano`` .. ``share_strings``: each pitched track's notes / notes;
    * ``kit_share``: :func:`arrangement.drum_kit_share`, 0 for a song without drums;
    * ``onset_density``: distinct onset ticks (any track) / (16 * bars).

    All NaN for an empty song.
    """
    notes = M.as_notes(notes)
    nb, n = M.n_bars(notes), len(notes)
    if n == 0:
        return {k: float("nan") for k in FEATURES}
    inst = notes["instrument"]
    pn = M.pitched(notes)
    kit, drums = A.drum_kit_counts(notes)
    out = {"notes_per_bar": n / nb, "drum_share": drums / n,
           "register": float(pn["pitch"].mean()) if len(pn) else float("nan"),
           "polyphony": len(pn) / np.unique(pn["onset"]).size if len(pn) else float("nan")}
    for k, name in PITCHED_TRACKS.items():
        out[f"share_{name}"] = float((inst == k).sum()) / n
    out["kit_share"] = kit / drums if drums else 0.0
    out["onset_density"] = np.unique(notes["onset"]).size / (M.TICKS_PER_BAR * nb)
    return out


def feature_matrix(songs) -> np.ndarray:
    """(songs, len(FEATURES)) from note arrays, in :data:`FEATURES` order."""
    rows = [song_features(s) for s in songs]
    return np.array([[r[k] for k in FEATURES] for r in rows], dtype=np.float64).reshape(-1, len(FEATURES))


def nearest_centroid(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray, classes) -> np.ndarray:
    """Predict a class for each row of ``x`` from the training rows.

    The features are standardised by the training rows' mean and population standard deviation
    (a feature that does not vary there is left out: std 0); a missing value (NaN) is replaced by
    that mean first (a feature missing in every training row is left out too).  Each class of
    ``classes`` present in the training rows has its centroid (mean standardised vector); a row
    goes to the nearest in Euclidean distance (ties: the class first in ``classes``)."""
    train_x = np.asarray(train_x, np.float64)
    x = np.atleast_2d(np.asarray(x, np.float64))
    if len(train_x) == 0:
        raise ValueError("no training rows")
    ok = np.isfinite(train_x)
    count = ok.sum(axis=0)
    mean = np.where(count > 0, np.where(ok, train_x, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
    fill = lambda a: np.where(np.isfinite(a), a, mean)       # noqa: E731
    tx, qx = fill(train_x), fill(x)
    std = tx.std(axis=0)
    keep = np.isfinite(mean) & (std > 0)
    tz = (tx[:, keep] - mean[keep]) / std[keep]
    qz = (qx[:, keep] - mean[keep]) / std[keep]
    present = [c for c in classes if np.any(train_y == c)]
    cents = np.array([tz[train_y == c].mean(axis=0) for c in present]).reshape(len(present), -1)
    d = ((qz[:, None, :] - cents[None, :, :]) ** 2).sum(axis=2)
    return np.array([present[i] for i in np.argmin(d, axis=1)], dtype=object)


def separability(features, labels) -> dict:
    """Leave-one-out accuracy of :func:`nearest_centroid` over songs with genre ``labels``.

    ``features``: (songs, F) numbers; ``labels``: one genre name (or id) per song.  Each song is
    predicted from all the other songs (a genre with a single song then has no centroid for it,
    and that song counts as wrong).  Returns ``accuracy`` (share predicted right), ``chance``
    (1 / genres), ``classes`` (sorted), ``per_class`` {genre: {"n", "recall"}} (recall = share of
    that genre's songs predicted as it), ``confusion`` (rows: true genre, columns: predicted, in
    ``classes`` order), ``n`` and the per-song ``predicted``.  Needs at least two genres."""
    x = np.asarray(features, np.float64)
    y = np.asarray(list(labels), dtype=object)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError("features must be (songs, F) with one label per song")
    classes = sorted(set(y.tolist()), key=str)
    if len(classes) < 2:
        raise ValueError("separability needs songs of at least two genres")
    idx = {c: i for i, c in enumerate(classes)}
    pred = np.empty(len(y), dtype=object)
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        pred[i] = nearest_centroid(x[rest], y[rest], x[i:i + 1], classes)[0]
    conf = np.zeros((len(classes), len(classes)), np.int64)
    for t, p in zip(y, pred):
        conf[idx[t], idx[p]] += 1
    per = {c: {"n": int(conf[idx[c]].sum()), "recall": float(conf[idx[c], idx[c]] / conf[idx[c]].sum())}
           for c in classes}
    return {"accuracy": float(np.trace(conf) / len(y)), "chance": 1.0 / len(classes), "classes": classes,
            "per_class": per, "confusion": conf.tolist(), "n": int(len(y)), "predicted": pred.tolist(),
            "features": list(FEATURES) if x.shape[1] == len(FEATURES) else None}
