"""The distributions of a training set that calibration fits the video side to (SPEC 5b): bar
density, notes per bar, Beat strength per instrument, and the tracks that carry the rhythm.
Recorded in a checkpoint by training and by export_checkpoint.py --data; read by
``generation.calibration``."""
from __future__ import annotations

import numpy as np

from vidscore import constants as D
from vidscore.video import metadata as M

N_DENSITY = len(M.DENSITY_THRESHOLDS) + 1      # density classes 0..16 (distinct onsets in a bar)
RHYTHM_SHARE = 0.25          # a track carries the rhythm if it has this share of the Beat tokens
MAX_BAR_NOTES = 64           # the notes-per-bar histogram lumps busier bars into its last bin


def data_stats(data: dict, idx=None) -> dict:
    """Distributions of a training npz (``training.load_data``'s dict) over songs ``idx``.

    Returns ``bar_density``: counts of bars by density class (distinct onset positions, 0..16);
    ``beat_strength``: {instrument id (str): counts of its Beat tokens by strength (index =
    strength)}; ``beat_count``: {instrument: Beat tokens}; ``rhythm_tracks``: see
    :func:`rhythm_tracks`.  Read from the token rows themselves (SPEC section 2).
    """
    idx = np.arange(len(data["x"])) if idx is None else np.asarray(idx)
    bar_density = np.zeros(N_DENSITY, np.int64)
    bar_notes = np.zeros(MAX_BAR_NOTES + 1, np.int64)
    by_instr: dict[int, np.ndarray] = {}
    for lo in range(0, len(idx), 256):            # in chunks: the corpus's x can be large
        x = np.asarray(data["x"][np.sort(idx[lo:lo + 256])])
        bar_notes += notes_per_bar_histogram(x)
        x = x.reshape(-1, x.shape[-1])
        x = x[x[:, D.COL_TYPE] == D.TYPE_M]
        bars = x[x[:, D.COL_BARBEAT] == D.BAR]
        beats = x[(x[:, D.COL_BARBEAT] >= 1) & (x[:, D.COL_BARBEAT] < D.BAR)]
        dens = np.clip(bars[:, D.COL_DENSITY].astype(np.int64) - 1, 0, N_DENSITY - 1)
        bar_density += np.bincount(dens, minlength=N_DENSITY)
        for k in np.unique(beats[:, D.COL_INSTRUMENT]).tolist():
            if k <= 0:
                continue
            h = np.bincount(beats[beats[:, D.COL_INSTRUMENT] == k, D.COL_STRENGTH].astype(np.int64))
            old = by_instr.get(int(k), np.zeros(0, np.int64))
            n = max(len(old), len(h))
            by_instr[int(k)] = np.pad(old, (0, n - len(old))) + np.pad(h, (0, n - len(h)))
    strength = {str(k): by_instr[k].tolist() for k in sorted(by_instr)}
    count = {str(k): int(by_instr[k].sum()) for k in sorted(by_instr)}
    stats = {"bar_density": bar_density.tolist(), "bar_notes": bar_notes.tolist(), "beat_strength": strength,
             "beat_count": count}
    stats["rhythm_tracks"] = rhythm_tracks(stats)
    return stats


def notes_per_bar_histogram(x) -> np.ndarray:
    """Counts of bars by their number of Note tokens (0..``MAX_BAR_NOTES``, more lumped into the
    last), over token sequences ``x`` (songs, length, columns): a bar runs from its Bar token to
    the next, and the padding (type 0) counts for nothing."""
    out = np.zeros(MAX_BAR_NOTES + 1, np.int64)
    for seq in np.asarray(x).reshape(-1, *np.shape(x)[-2:]):
        t = seq[:, D.COL_TYPE]
        is_bar = (t == D.TYPE_M) & (seq[:, D.COL_BARBEAT] == D.BAR)
        n_bars = int(is_bar.sum())
        if not n_bars:
            continue
        bar_of = np.cumsum(is_bar) - 1                 # -1 before the first Bar
        keep = (t == D.TYPE_NOTE) & (bar_of >= 0)
        per_bar = np.bincount(bar_of[keep], minlength=n_bars)
        out += np.bincount(np.minimum(per_bar, MAX_BAR_NOTES), minlength=MAX_BAR_NOTES + 1)
    return out


def rhythm_tracks(stats: dict) -> list[int]:
    """Instruments that carry the rhythm: those with at least ``RHYTHM_SHARE`` of the Beat tokens
    (Drums first when it has any share of them: its Beats are the rhythm, then the others by
    their number of Beats).  Never empty when the data has Beats: the busiest track otherwise."""
    count = {int(k): int(v) for k, v in stats.get("beat_count", {}).items() if int(v) > 0}
    total = sum(count.values())
    if not total:
        return []
    order = sorted(count, key=lambda k: (k != D.DRUMS, -count[k], k))
    keep = [k for k in order if count[k] / total >= RHYTHM_SHARE or (k == D.DRUMS and count[k] / total >= 0.05)]
    return keep or order[:1]
