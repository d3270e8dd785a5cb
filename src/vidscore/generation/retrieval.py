"""The matching baseline (SPEC section 7): pick existing songs whose rhythm fits a video.

Per bar, a density (the Bar token's / Bar row's value) and a 16-slot strength vector (the
strength of the beat at each position; the strongest when several instruments share one), for
the video and for each library song, truncated to the shorter of the two; the score is
1 / (MSE(density) + MSE(strength)).
"""
from __future__ import annotations

import numpy as np

from vidscore import constants as D
from vidscore.video.metadata import ROW_BARBEAT, ROW_DENSITY, ROW_I_BEAT, ROW_STRENGTH


def video_profile(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(density per bar, strength (bars, 16)) of inference-npz rows [bb, density, strength, i_beat, ...]."""
    rows = np.asarray(rows, dtype=np.int64)
    bb_col = rows[:, ROW_BARBEAT]
    bars = rows[bb_col == D.BAR]
    density = bars[:, ROW_DENSITY].astype(np.float64)
    strength = np.zeros((len(bars), D.TICKS_PER_BAR))
    beats = rows[(bb_col >= 1) & (bb_col <= D.TICKS_PER_BAR)]
    for bb, s, i_beat in beats[:, [ROW_BARBEAT, ROW_STRENGTH, ROW_I_BEAT]]:
        bar = i_beat // D.TICKS_PER_BAR
        if bar < len(bars):
            strength[bar, bb - 1] = max(strength[bar, bb - 1], s)
    return density, strength


def song_profile(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same profile of a token sequence (SPEC section 2 columns)."""
    t = np.asarray(tokens, dtype=np.int64)
    metrical = t[t[:, D.COL_TYPE] == D.TYPE_M]
    is_bar = metrical[:, D.COL_BARBEAT] == D.BAR
    density = metrical[is_bar, D.COL_DENSITY].astype(np.float64)
    strength = np.zeros((len(density), D.TICKS_PER_BAR))
    bar = np.cumsum(is_bar) - 1
    for row, b in zip(metrical[~is_bar], bar[~is_bar]):
        if 0 <= b < len(density):
            pos = row[D.COL_BARBEAT] - 1
            strength[b, pos] = max(strength[b, pos], row[D.COL_STRENGTH])
    return density, strength


def match_score(video: tuple, song: tuple) -> float:
    n = min(len(video[0]), len(song[0]))
    if n == 0:
        return 0.0
    mse_d = float(np.mean((video[0][:n] - song[0][:n]) ** 2))
    mse_s = float(np.mean((video[1][:n] - song[1][:n]) ** 2))
    return 1.0 / max(mse_d + mse_s, 1e-9)


def rank(rows: np.ndarray, songs: list[np.ndarray], top: int = 5) -> list[tuple[int, float]]:
    """(song index, score) of the ``top`` best-matching songs, best first."""
    v = video_profile(rows)
    scores = [(i, match_score(v, song_profile(s))) for i, s in enumerate(songs)]
    scores.sort(key=lambda x: -x[1])
    return scores[:top]
