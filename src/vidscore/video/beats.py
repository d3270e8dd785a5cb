"""Visual beats: peaks of the impact envelope, then the best chain of them (SPEC 6.4).

Peak picking (librosa's ``peak_pick`` semantics, windows in frames, truncated at the
edges): x[n] is a peak when it is the maximum of x[n-2 .. n+1], at least the mean of
x[n-5 .. n+4] plus 0.015, non-zero, and more than 2 frames after the previous peak.

The chain is the original's dynamic programme over the sorted peaks: a peak scores
its weight plus the best (score of an earlier peak + pair term), the pair term being
-1 for gaps under 0.25 s or over 3.75 s and 0 otherwise; earlier peaks count only
within 200 s (a longer silence starts a new segment).  In each segment the links are
followed back from the best-scoring peak; the peak at the root of the chain is left
out, a quirk of the original that its published beats include.  The longest chain
with more than 2 peaks is the video's visual beats.
"""
from __future__ import annotations

import numpy as np

PRE_MAX, POST_MAX = 2, 2
PRE_AVG, POST_AVG = 5, 5
DELTA = 0.015
WAIT = 2

MIN_GAP_S = 0.25
MAX_GAP_S = 3.75
WINDOW_S = 200.0
MIN_CHAIN = 3


def pick_peaks(x: np.ndarray, pre_max: int = PRE_MAX, post_max: int = POST_MAX,
               pre_avg: int = PRE_AVG, post_avg: int = POST_AVG,
               delta: float = DELTA, wait: int = WAIT) -> np.ndarray:
    """Indices of the peaks of ``x`` (see module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    # moving maximum over x[i - pre_max : i + post_max], truncated at the edges
    padded = np.concatenate([np.full(pre_max, -np.inf), x, np.full(post_max, -np.inf)])
    win = np.lib.stride_tricks.sliding_window_view(padded, pre_max + post_max)[:n]
    mov_max = win.max(axis=1)
    # moving mean over x[i - pre_avg : i + post_avg], truncated at the edges
    csum = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(n)
    lo = np.maximum(idx - pre_avg, 0)
    hi = np.minimum(idx + post_avg, n)
    mov_avg = (csum[hi] - csum[lo]) / (hi - lo)
    cand = np.flatnonzero((x == mov_max) & (x >= mov_avg + delta) & (x != 0))
    peaks = []
    last = -np.inf
    for i in cand:
        if i > last + wait:
            peaks.append(i)
            last = i
    return np.asarray(peaks, dtype=np.intp)


def _pair_term(gaps: np.ndarray) -> np.ndarray:
    return np.where((gaps < MIN_GAP_S) | (gaps > MAX_GAP_S), -1.0, 0.0)


def beat_chain(times: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Positions (into ``times``) of the chosen beats, in time order.

    ``times`` must be sorted (peaks come out of :func:`pick_peaks` in order).
    """
    t = np.asarray(times, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    n = len(t)
    if n < 2:
        return np.zeros(0, dtype=np.intp)
    score = np.empty(n)
    prev = np.full(n, -1, dtype=np.intp)
    score[0] = w[0]
    segments: list[list[int]] = []
    current: list[int] = []
    for i in range(1, n):
        current.append(i)
        # earlier peaks within the window form a contiguous run ending at i - 1
        lo = int(np.searchsorted(t[:i], t[i] - WINDOW_S, side="right"))
        while lo < i and not abs(t[i] - t[lo]) < WINDOW_S:
            lo += 1
        if lo == i:
            score[i] = w[i]
            segments.append(current)
            current = []
            continue
        cand = score[lo:i] + _pair_term(np.abs(t[i] - t[lo:i]))
        # the original scans from the nearest earlier peak outwards and keeps the
        # first strictly better one: ties go to the nearest
        k = len(cand) - 1 - int(np.argmax(cand[::-1]))
        prev[i] = lo + k
        score[i] = cand[k] + w[i]
    if current:
        segments.append(current)
    chains = []
    for seg in segments:
        best = seg[0]
        for j in seg:
            if score[j] > score[best]:
                best = j
        chain = []
        node = best
        while prev[node] >= 0:  # the root (no link) is not included
            chain.append(node)
            node = prev[node]
        chain.reverse()
        if len(chain) >= MIN_CHAIN:
            chains.append(chain)
    if not chains:
        return np.zeros(0, dtype=np.intp)
    chains.sort(key=len, reverse=True)  # stable: the earliest of equally long chains
    return np.asarray(chains[0], dtype=np.intp)


def visual_beats(envelope: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(all peak frame indices, chosen beat frame indices) of an envelope sampled at ``fps``."""
    peaks = pick_peaks(envelope)
    if len(peaks) == 0:
        return peaks, peaks
    chosen = beat_chain(peaks / fps, np.asarray(envelope)[peaks])
    return peaks, peaks[chosen]
