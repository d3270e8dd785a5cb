"""Calibration: the video -> class mapping fitted to a model's own training data (SPEC 5b).

The original's thresholds (``video2npz.metadata``) turn a video's motion per bar into a bar
density class and a visual beat's weight into a strength class.  Its ``stat_mix.py`` fitted them
"based on a set of videos" so that the classes videos produce follow the statistics of its
training music, LPD-5 pop with drums.  A model trained on other music needs thresholds fitted to
its data, or the video asks it for textures it never saw.  Here:

* :func:`data_stats` records what the training data plays: the histogram of bar densities
  (distinct onset positions per bar), the histogram of Beat strengths per instrument, and which
  instruments carry the rhythm (:func:`rhythm_tracks`).  Training and ``export_checkpoint.py
  --data`` store it in the checkpoint's vocabulary (``data_stats``).
* :func:`fit` maps a reference set of videos onto those histograms by quantiles: density
  threshold i is the quantile of the reference flow-per-bar values at the data's share of bars
  with at most i onsets; strength thresholds do the same for the kept visual beats' weights
  against the forced tracks' pooled strength histogram.  The data's top 1 % (``TAIL``) is
  never asked for.  ``stat_mix.py`` stores the result in the
  checkpoint (``calibration``).
* :func:`mapping_for` gives inference its :class:`Mapping`: the checkpoint's, or the original's
  (the released CMT checkpoint, or ``--thresholds original``).

Strength classes: class 0 marks a visual beat too weak to force (below the weight the original
drops at the chosen ``--density_threshold``); classes 1.. follow the data, so the calibrated rows
are used with ``min_strength`` 1.  The strength forced on a track is further clamped to the
largest strength covering 99 % of that track's Beat tokens (:func:`strength_max`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidscore import constants as D
from vidscore.training.data_stats import (MAX_BAR_NOTES, N_DENSITY, RHYTHM_SHARE, data_stats,  # noqa: F401
                                          notes_per_bar_histogram, rhythm_tracks)
from vidscore.video import metadata as M

N_STRENGTH = len(M.STRENGTH_THRESHOLDS) + 1    # strength classes 0..10
STRENGTH_COVER = 0.99        # the forced strength stays within this share of a track's Beats
TAIL = 0.01                  # classes beyond the data's top 1 % are never asked for
REFERENCE_FILE = Path(__file__).resolve().with_name("calibration_reference.json")


# ----------------------------------------------------------------------------- the data's side

def strength_max(stats: dict, cover: float = STRENGTH_COVER) -> dict[int, int]:
    """Per instrument, the smallest strength s with at least ``cover`` of its Beats at or below s."""
    out = {}
    for k, hist in stats.get("beat_strength", {}).items():
        h = np.asarray(hist, dtype=np.float64)
        h[0] = 0.0
        if h.sum() <= 0:
            continue
        cdf = np.cumsum(h) / h.sum()
        out[int(k)] = int(np.argmax(cdf >= cover - 1e-12))
    return out


# ----------------------------------------------------------------------------- the fit

def class_histogram(hist, n_thresholds: int) -> np.ndarray:
    """``hist`` as counts of the ``n_thresholds + 1`` classes thresholds can give: classes past
    its end count as empty, mass past the last class is lumped into it."""
    hist = np.asarray(hist, dtype=np.float64)
    h = np.zeros(n_thresholds + 1)
    h[:min(len(hist), n_thresholds + 1)] = hist[:n_thresholds + 1]
    h[-1] += hist[n_thresholds + 1:].sum()
    return h


def quantile_thresholds(values, hist, n_thresholds: int, tail: float = 0.0) -> list[float]:
    """Thresholds that give ``values`` the class distribution ``hist`` (class = first i with
    value < thr[i]): thr[i] = the quantile of ``values`` at the share of ``hist`` in classes
    <= i (linear interpolation); -inf where that share is 0 and +inf where it is at least
    1 - ``tail``, so a class the data never has (or, with ``tail``, the data's rarest top
    classes) is never produced at the ends: the top of a small reference set is one clip's
    plateau, and it would otherwise spread the data's rarest classes over it.  Classes past
    ``len(hist)`` count as empty; mass past ``n_thresholds`` is lumped into the last class."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    if v.size == 0:
        raise ValueError("no reference values to fit thresholds to")
    h = class_histogram(hist, n_thresholds)
    if h.sum() <= 0:
        raise ValueError("the data histogram is empty")
    cdf = np.cumsum(h) / h.sum()
    out = []
    for q in cdf[:n_thresholds]:
        if q <= 1e-12:
            out.append(float("-inf"))
        elif q >= 1 - tail - 1e-12:
            out.append(float("inf"))
        else:
            out.append(float(np.quantile(v, q)))
    return out


def drop_weight(min_strength: int) -> float:
    """The visual-beat weight below which the original drops a beat at ``--density_threshold``
    ``min_strength`` (its strength classes below ``min_strength``)."""
    if min_strength <= 0:
        return float("-inf")
    if min_strength > len(M.STRENGTH_THRESHOLDS):     # above every class: no beat is forced
        return float("inf")
    return float(M.STRENGTH_THRESHOLDS[min(min_strength, len(M.STRENGTH_THRESHOLDS)) - 1])


def pooled_strength(stats: dict, tracks) -> np.ndarray:
    """The strength histogram of ``tracks``' Beats together (Beats with strength >= 1)."""
    hs = [np.asarray(stats["beat_strength"][str(k)], dtype=np.float64) for k in tracks
          if str(k) in stats.get("beat_strength", {})]
    if not hs:
        return np.array([0.0, 1.0])
    n = max(len(h) for h in hs)
    out = np.zeros(n)
    for h in hs:
        out[:len(h)] += h
    out[0] = 0.0
    return out


def notes_matched_thresholds(values, bar_notes, response, bar_density, n_thresholds: int,
                             tail: float = 0.0) -> list[float] | None:
    """Density thresholds under which the notes the model plays follow the data's notes per bar.

    ``response[c]``: the notes per bar the model realises when every bar asks density class c
    (:func:`vidscore.generation.response.density_response`).  A bar whose value lies at quantile q of ``values`` should sound
    like the data's bar at quantile q of ``bar_notes`` (its notes-per-bar histogram); it gets the
    class whose response is nearest that many notes.  So the boundary between two usable classes
    a < b (consecutive) lies at the notes halfway between their responses, m, and thr = the
    quantile of ``values`` at the data's share of bars with fewer than m notes (each count spread
    over [k - 1/2, k + 1/2]).  Usable: classes the data has (``bar_density``, without its top
    ``tail``) whose response rises above that of the usable class below.  None when no class is
    usable (then fit by positions, :func:`quantile_thresholds`).

    Why notes and not onset positions: a model's texture per onset position (how many tracks
    sound together) need not be its data's; asked the data's positions, a model that plays fuller
    chords than its data plays more notes than its data (the bundled model: 13.1 notes per bar
    against the data's 10.0)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    notes = np.asarray(bar_notes, dtype=np.float64)
    if v.size == 0 or notes.sum() <= 0:
        return None
    h = class_histogram(bar_density, n_thresholds)
    if h.sum() <= 0:
        return None
    below = np.concatenate([[0.0], np.cumsum(h)[:-1] / h.sum()])    # data share of lower classes
    usable, last = [], -np.inf
    for c in range(n_thresholds + 1):
        r = float(response[c]) if c < len(response) and response[c] is not None else float("nan")
        if h[c] > 0 and below[c] < 1 - tail - 1e-12 and np.isfinite(r) and r > last:
            usable.append(c)
            last = r
    if not usable:
        return None
    xs = np.arange(len(notes) + 1) - 0.5
    cdf = np.concatenate([[0.0], np.cumsum(notes) / notes.sum()])
    out = []
    for i in range(n_thresholds):              # thr[i]: the boundary between class i and i + 1
        if i < usable[0]:
            out.append(float("-inf"))
        elif i >= usable[-1]:
            out.append(float("inf"))
        else:
            a = max(c for c in usable if c <= i)
            b = min(c for c in usable if c > i)
            m = (float(response[a]) + float(response[b])) / 2
            out.append(float(np.quantile(v, float(np.clip(np.interp(m, xs, cdf), 0.0, 1.0)))))
    return out


def fit(stats: dict, flows, weights, min_strength: int = 2, reference: dict | None = None,
        response=None) -> dict:
    """The calibration of a model whose data has ``stats``, over reference flow-per-bar values
    ``flows`` and visual-beat weights ``weights``: density thresholds (16), strength thresholds
    (10; thr[0] = the drop weight, classes 1.. following the forced tracks' pooled strengths over
    the kept beats), forced tracks, strength clamp per track.

    Density: with the model's ``response`` (:func:`vidscore.generation.response.density_response`) and the data's notes per
    bar, by notes (:func:`notes_matched_thresholds`); otherwise by onset positions."""
    tracks = stats.get("rhythm_tracks") or rhythm_tracks(stats)
    dens = None
    if response is not None and stats.get("bar_notes"):
        dens = notes_matched_thresholds(flows, stats["bar_notes"], response, stats["bar_density"],
                                        len(M.DENSITY_THRESHOLDS), TAIL)
    density_fit = "notes" if dens is not None else "positions"
    if dens is None:
        dens = quantile_thresholds(flows, stats["bar_density"], len(M.DENSITY_THRESHOLDS), TAIL)
    w = np.asarray(weights, dtype=np.float64)
    floor = drop_weight(min_strength)
    kept = w[w >= floor]
    if kept.size == 0:
        kept = w
    pooled = pooled_strength(stats, tracks)          # index = strength = class
    strength = [floor] + quantile_thresholds(kept, pooled, len(M.STRENGTH_THRESHOLDS), TAIL)[1:]
    strength = list(np.maximum.accumulate(np.asarray(strength, dtype=np.float64)))
    return {"density_thresholds": [float(t) for t in dens],
            "strength_thresholds": [float(t) for t in strength],
            "forced_tracks": [int(t) for t in tracks],
            "strength_max": {str(k): v for k, v in strength_max(stats).items()},
            "min_strength": int(min_strength),
            "density_fit": density_fit,
            "density_response": None if response is None else [float(r) for r in response],
            "reference": reference or {"bars": int(len(np.asarray(flows))), "beats": int(w.size)}}


# ----------------------------------------------------------------------------- inference's side

@dataclass
class Mapping:
    """What inference applies: the video -> class thresholds, the forced tracks, the clamp."""
    name: str                                        # "original" or "calibrated"
    density_thresholds: tuple = M.DENSITY_THRESHOLDS
    strength_thresholds: tuple = M.STRENGTH_THRESHOLDS
    forced_tracks: tuple = (D.DRUMS, D.PIANO, D.GUITAR)
    strength_max: dict | None = None
    min_strength: int = 2                            # the rows' classes this low are not forced
    notes: list = field(default_factory=list)
    max_forced_tracks: int | None = None             # force at most this many of the tracks (None: all)
    cover_forced: bool = False                       # a bar's density covers the beats forced in it

    def rows(self, meta: dict) -> np.ndarray:
        """The model-facing inference rows of a metadata dict under this mapping.

        With ``cover_forced`` (calibrated mappings) a bar's density class is raised to the
        number of distinct positions its forced visual beats take: the bar cannot have fewer
        onset positions than that, and a promise below it could never be kept (the demo, whose
        quiet bars ask for about three onsets and force four or five, had half its bars off
        their density at ``--C 1``).  The original's mapping keeps its classes as they are."""
        rows = M.metadata_to_rows(meta, self.density_thresholds, self.strength_thresholds)
        if self.cover_forced:
            rows = cover_forced_beats(rows, self.min_strength)
        return rows


def cover_forced_beats(rows: np.ndarray, min_strength: int) -> np.ndarray:
    """``rows`` with each Bar row's density (positions + 1) at least one more than the distinct
    positions of the bar's beats with strength >= ``min_strength`` (a new array)."""
    rows = np.array(rows, copy=True)
    is_bar = rows[:, M.ROW_BARBEAT] == D.BAR
    bar_rows = np.flatnonzero(is_bar)
    ends = np.append(bar_rows[1:], len(rows))
    for start, end in zip(bar_rows, ends):
        beats = rows[start + 1:end]
        forced = beats[beats[:, M.ROW_STRENGTH] >= max(min_strength, 1), M.ROW_BARBEAT]
        need = len(np.unique(forced)) + 1
        if rows[start, M.ROW_DENSITY] < need:
            rows[start, M.ROW_DENSITY] = need
    return rows


def original(min_strength: int = 2, note: str | None = None) -> Mapping:
    return Mapping("original", min_strength=min_strength, notes=[note] if note else [])


def from_calibration(cal: dict, min_strength: int = 2) -> Mapping:
    """A stored calibration as a Mapping for ``--density_threshold min_strength``: the strength
    classes keep their fitted thresholds, the drop weight follows ``min_strength`` (exact for the
    ``min_strength`` it was fitted for; :func:`mapping_for` refits for another).

    A visual beat is forced on one track: the first of the rhythm tracks the song may use
    (Drums where the model knows them; the next one when ``--instruments`` leaves Drums out).
    Forcing every rhythm track at once, as the original did for LPD's drums + chords, doubles
    the onsets of a model whose data carries the beat on one track (measured on the bundled
    model: 14.8 notes per bar with Drums and Piano forced, against 9.2 uncontrolled)."""
    strength = list(cal["strength_thresholds"])
    strength[0] = drop_weight(min_strength)
    return Mapping("calibrated", tuple(cal["density_thresholds"]), tuple(strength),
                   tuple(int(t) for t in cal["forced_tracks"]),
                   {int(k): int(v) for k, v in (cal.get("strength_max") or {}).items()}, min_strength=1,
                   max_forced_tracks=1, cover_forced=True)


def load_reference(path=REFERENCE_FILE) -> dict:
    """The shipped reference statistics: {"flows": [...], "weights": [...], "videos": [...]}."""
    from vidscore.cli import UserError
    try:
        ref = json.loads(Path(path).read_text())
        if not (isinstance(ref, dict) and ref.get("flows") and isinstance(ref.get("weights"), list)):
            raise ValueError("it needs non-empty 'flows' and a 'weights' list")
        ref["flows"] = [float(v) for v in ref["flows"]]
        ref["weights"] = [float(v) for v in ref["weights"]]
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"{path}: not a calibration reference file ({str(e)[:120]}); "
                        "rebuild it with python src/stat_mix.py --rebuild_reference") from None
    return ref


def mapping_for(model, mode: str = "calibrated", min_strength: int = 2) -> Mapping:
    """The mapping inference uses with ``model``.

    ``original``: the original's thresholds and forced tracks.  ``calibrated``: the
    checkpoint's stored calibration (``stat_mix.py``); a checkpoint with data statistics but no
    stored calibration is fitted here from the shipped reference statistics; the released CMT
    checkpoint, and one without data statistics, keep the original's (its data is LPD, which
    they were fitted for, or unknown).
    """
    if mode not in ("calibrated", "original"):
        from vidscore.cli import UserError
        raise UserError("--thresholds: choose calibrated or original")
    info = getattr(model, "checkpoint_info", None) or {}
    vocab = getattr(model, "vocab", None) or {}
    if mode == "original":
        return original(min_strength)
    if info.get("format") == "released":
        return original(min_strength)
    cal = vocab.get("calibration")
    if cal and (int(cal.get("min_strength", 2)) == min_strength or not vocab.get("data_stats")):
        return from_calibration(cal, min_strength)
    if vocab.get("data_stats"):
        # no stored fit (or one for another --density_threshold): fit now, from the shipped
        # reference statistics (no video analysis, a few milliseconds)
        ref = load_reference()
        m = from_calibration(fit(vocab["data_stats"], ref["flows"], ref["weights"], min_strength), min_strength)
        if not cal:
            m.notes.append("the checkpoint has no stored calibration: fitted from its data statistics and the "
                           "shipped reference set (store it with src/stat_mix.py)")
        return m
    return original(min_strength, "the checkpoint records no training-data statistics: using the original's "
                                  "thresholds (record them with export_checkpoint.py --data, then run src/stat_mix.py)")
