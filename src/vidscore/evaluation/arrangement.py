"""Arrangement metrics (issue 27, "Measure the music"): repetition of bars, the drum kit, drums
throughout the song, the tracks used.

Pure functions of a note array as :mod:`vidscore.evaluation.metrics` reads them (16th-note grid,
16 ticks per bar, instrument classes 1 Drums .. 5 Strings; an ``(N, 4)`` array
``[onset, pitch, duration, instrument]`` is accepted too).  A song's bars are bars 0 .. the bar
of its last onset (:func:`metrics.n_bars`), empty bars included.

* :func:`repetition`: the share of bars (from the third on) that repeat an earlier bar at least
  two bars back; a bar's fingerprint is its onset pattern per instrument class plus its
  pitch-class histogram, and "repeats" is a cosine similarity of at least 0.9 (``pooled``: one
  onset pattern over all tracks, the looser reading);
* :func:`drum_kit_share`: the share of drum notes on kit sounds (:data:`constants.GM_KIT`);
* :func:`drum_bar_share` and :func:`drums_throughout`: bars with a drum note; a drum note in
  every bar;
* :func:`tracks_used`: the instrument classes that play.
"""
from __future__ import annotations

import numpy as np

from vidscore import constants as D
from vidscore.evaluation import metrics as M

KIT_PITCHES = np.array(sorted(p for ps in D.GM_KIT.values() for p in ps), dtype=np.int64)
REPEAT_COSINE = 0.9      # a bar repeats an earlier one when their fingerprints' cosine is at least this
REPEAT_MIN_BACK = 2      # ... and the earlier bar lies at least this many bars back
N_CLASSES = len(D.INSTRUMENTS)


def bar_fingerprints(notes, pooled: bool = False) -> np.ndarray:
    """Per bar (0 .. last onset bar) its fingerprint: the onset pattern, then the pitch-class histogram.

    Onset pattern: per instrument class (Drums, Piano, Guitar, Bass, Strings in this order) 16
    values, 1 where the class has a note onset at that 16th of the bar (``pooled``: one 16-value
    pattern over all classes).  Pitch-class histogram: 12 counts of the bar's non-drum notes by
    pitch % 12.  Each part is scaled to unit length (a part that is all zeros stays zeros), so
    the two weigh equally: where both bars have both parts, the fingerprints' cosine is the mean
    of the onset patterns' and the histograms' cosines.  An empty bar's fingerprint is all zeros.
    """
    notes = M.as_notes(notes)
    nb = M.n_bars(notes)
    bar, pos = notes["onset"] // M.TICKS_PER_BAR, notes["onset"] % M.TICKS_PER_BAR
    cls = np.zeros(len(notes), np.int64) if pooled else np.clip(notes["instrument"] - 1, 0, N_CLASSES - 1)
    onsets = np.zeros((nb, (1 if pooled else N_CLASSES) * M.TICKS_PER_BAR))
    onsets[bar, cls * M.TICKS_PER_BAR + pos] = 1.0
    pitched = notes["instrument"] != M.DRUMS
    hist = np.zeros((nb, 12))
    np.add.at(hist, (bar[pitched], notes["pitch"][pitched] % 12), 1.0)
    parts = []
    for part in (onsets, hist):
        norm = np.linalg.norm(part, axis=1, keepdims=True)
        parts.append(np.divide(part, norm, out=np.zeros_like(part), where=norm > 0))
    return np.hstack(parts)


def repeated_bars(notes, pooled: bool = False, threshold: float = REPEAT_COSINE,
                  min_back: int = REPEAT_MIN_BACK) -> np.ndarray:
    """Per bar, True where it repeats an earlier bar: the cosine of their :func:`bar_fingerprints`
    is at least ``threshold`` for some bar at least ``min_back`` bars back.  Empty bars neither
    repeat nor are repeated (their fingerprint has no direction)."""
    f = bar_fingerprints(notes, pooled)
    nb = len(f)
    norm = np.linalg.norm(f, axis=1)
    unit = np.divide(f, norm[:, None], out=np.zeros_like(f), where=norm[:, None] > 0)
    out = np.zeros(nb, bool)
    for lo in range(0, nb, 512):     # bounded memory for songs of many bars
        hi = min(nb, lo + 512)
        sim = unit[lo:hi] @ unit.T                                   # (rows, nb)
        back = np.arange(lo, hi)[:, None] - np.arange(nb)[None, :]   # how far back each column lies
        sim[back < min_back] = -1.0
        out[lo:hi] = (sim >= threshold - 1e-9).any(axis=1)
    return out & (norm > 0)


def repetition(notes, pooled: bool = False, threshold: float = REPEAT_COSINE,
               min_back: int = REPEAT_MIN_BACK) -> float:
    """Share of the bars from bar ``min_back`` (0-based: the third bar) on that repeat an earlier
    bar (:func:`repeated_bars`); empty bars count in the share as bars that do not repeat.  NaN
    for a song of fewer than ``min_back + 1`` bars."""
    rep = repeated_bars(notes, pooled, threshold, min_back)
    return float(rep[min_back:].mean()) if len(rep) > min_back else float("nan")


def drum_kit_counts(notes) -> tuple[int, int]:
    """(drum notes on kit sounds, drum notes): a kit sound is a pitch of :data:`constants.GM_KIT`."""
    notes = M.as_notes(notes)
    drums = notes["pitch"][notes["instrument"] == M.DRUMS]
    return int(np.isin(drums, KIT_PITCHES).sum()), int(drums.size)


def drum_kit_share(notes) -> float:
    """Share of the drum notes that are kit sounds (kick 35/36; snares 38/40, side stick 37, hand
    clap 39; hi-hats 42/44/46; crashes 49/57; rides 51/59); NaN for a song without drums."""
    kit, total = drum_kit_counts(notes)
    return kit / total if total else float("nan")


def drum_bar_share(notes) -> float:
    """Share of the song's bars with at least one drum note onset; NaN for an empty song."""
    notes = M.as_notes(notes)
    nb = M.n_bars(notes)
    if nb == 0:
        return float("nan")
    bars = np.unique(notes["onset"][notes["instrument"] == M.DRUMS] // M.TICKS_PER_BAR)
    return bars.size / nb


def drums_throughout(notes) -> float:
    """1.0 when every bar of the song (0 .. its last onset's) has a drum note onset, else 0.0
    (the strict reading of "drums throughout"; :func:`drum_bar_share` gives the share); NaN for an
    empty song."""
    share = drum_bar_share(notes)
    return share if share != share else float(share >= 1.0)


def tracks_used(notes) -> int:
    """How many instrument classes (of Drums, Piano, Guitar, Bass, Strings) have at least one note."""
    return int(np.unique(M.as_notes(notes)["instrument"]).size)


def arrangement_metrics(notes) -> dict:
    """The per-song figures of this module, as evaluate.py reports them."""
    notes = M.as_notes(notes)
    kit, drums = drum_kit_counts(notes)
    return {"repetition": repetition(notes), "repetition_pooled": repetition(notes, pooled=True),
            "drum_kit_share": kit / drums if drums else float("nan"),
            "drum_notes": drums, "kit_notes": kit, "drum_bar_share": drum_bar_share(notes),
            "drums_throughout": drums_throughout(notes), "tracks_used": tracks_used(notes)}
