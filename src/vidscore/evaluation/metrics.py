"""Objective metrics for generated music (SPEC sections 5 and 9), on note arrays.

Pure functions, no I/O.  A song is a note array on the 16th-note grid (4 ticks per quarter,
16 ticks per bar, 4/4) plus a tempo in bpm.  The note array is a NumPy structured array with
the fields of :data:`NOTE_DTYPE`; :func:`as_notes` also accepts an ``(N, 4)`` integer array
with the columns (onset_tick, pitch, duration_ticks, instrument).  Instrument classes are
the token codes of SPEC section 2: 1 Drums, 2 Piano, 3 Guitar, 4 Bass, 5 Strings.

Metrics (exact definitions in each function's docstring):

* :func:`pitch_class_entropy` (PCHE / "H"), :func:`grooving_pattern_similarity` (GPS),
  :func:`structureness` (SI, from a fitness scape plot: :func:`fitness_scape_plot`);
* rhythm correspondence with a video: :func:`beat_alignment` (both directions),
  :func:`hit_rate`;
* control errors (SPEC section 5): :func:`density_error`, :func:`strength_error`;
* scene cuts (issue 28): :func:`bar_changes`, :func:`cut_alignment`;
* :func:`song_end_seconds` for the duration match.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vidscore import constants as D
from vidscore.music import representation
# the video rows' columns: one definition, in the video module
from vidscore.video.metadata import ROW_BARBEAT, ROW_DENSITY, ROW_I_BEAT, ROW_STRENGTH

TICKS_PER_BEAT = D.TICKS_PER_BEAT
TICKS_PER_BAR = D.TICKS_PER_BAR

DRUMS, PIANO, GUITAR, BASS, STRINGS = D.DRUMS, D.PIANO, D.GUITAR, D.BASS, D.STRINGS
INSTRUMENT_NAMES = {k: name for k, name in enumerate(D.INSTRUMENTS, 1)}
FORCED_TRACKS = D.FORCED_TRACKS  # the tracks inference forces at each visual beat

NOTE_DTYPE = np.dtype([("onset", np.int64), ("pitch", np.int64), ("duration", np.int64), ("instrument", np.int64)])

# ----------------------------------------------------------------------------- notes

def make_notes(onset, pitch, duration, instrument) -> np.ndarray:
    """Build a note array from four equal-length sequences (scalars broadcast)."""
    onset = np.atleast_1d(np.asarray(onset, dtype=np.int64))
    pitch, duration, instrument = (np.broadcast_to(np.asarray(a, dtype=np.int64), onset.shape)
                                   for a in (pitch, duration, instrument))
    notes = np.empty(onset.shape[0], dtype=NOTE_DTYPE)
    notes["onset"], notes["pitch"], notes["duration"], notes["instrument"] = onset, pitch, duration, instrument
    return notes


def as_notes(notes) -> np.ndarray:
    """Return ``notes`` as a :data:`NOTE_DTYPE` array, sorted by onset (stable)."""
    if isinstance(notes, np.ndarray) and notes.dtype.names:
        out = np.asarray(notes).astype(NOTE_DTYPE, copy=False)
    else:
        arr = np.asarray(notes, dtype=np.int64).reshape(-1, 4)
        out = make_notes(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
    return out[np.argsort(out["onset"], kind="stable")]


def pitched(notes: np.ndarray) -> np.ndarray:
    """The notes that are not drums (pitch metrics ignore drums)."""
    return notes[notes["instrument"] != DRUMS]


def n_bars(notes: np.ndarray) -> int:
    """Bars the song spans: up to and including the bar of its last onset (0 when empty)."""
    return 0 if len(notes) == 0 else int(notes["onset"].max() // TICKS_PER_BAR + 1)


def ticks_to_seconds(ticks, tempo: float):
    """Ticks (16ths) to seconds at ``tempo`` bpm: one tick lasts 60 / (4 * tempo) s."""
    return np.asarray(ticks, dtype=np.float64) * 60.0 / (TICKS_PER_BEAT * float(tempo))


def onset_times(notes: np.ndarray, tempo: float) -> np.ndarray:
    """Sorted distinct onset times in seconds (all instruments)."""
    return ticks_to_seconds(np.unique(notes["onset"]), tempo)


def song_end_seconds(notes: np.ndarray, tempo: float) -> float:
    """End of the last note in seconds (a note lasts at least one tick); 0 for no notes."""
    if len(notes) == 0:
        return 0.0
    return float(ticks_to_seconds((notes["onset"] + np.maximum(notes["duration"], 1)).max(), tempo))


# ----------------------------------------------------------------------------- PCHE

def entropy_bits(hist) -> float:
    """Shannon entropy in bits of a non-negative histogram (normalised here)."""
    h = np.asarray(hist, dtype=np.float64)
    total = h.sum()
    if total <= 0:
        return float("nan")
    p = h[h > 0] / total
    return float(-(p * np.log2(p)).sum())


def pitch_class_entropy(notes, window_bars: int = 1) -> float:
    """Pitch-class histogram entropy (PCHE, "H" in SPEC section 9), in bits.

    Windows of ``window_bars`` bars slide one bar at a time over the song's bars
    (bars 0 .. last onset bar; a window longer than the song covers the whole song).  In each
    window the 12-bin histogram counts the notes (drums excluded) whose onset lies in the
    window, by pitch class; H = -sum h log2 h of the normalised histogram.  The result is the
    mean over windows holding at least one note; NaN when there are none.
    """
    notes = as_notes(notes)
    nb = n_bars(notes)
    pn = pitched(notes)
    if len(pn) == 0 or nb == 0:
        return float("nan")
    w = max(1, min(int(window_bars), nb))
    per_bar = np.zeros((nb, 12))
    np.add.at(per_bar, (pn["onset"] // TICKS_PER_BAR, pn["pitch"] % 12), 1.0)
    csum = np.vstack([np.zeros((1, 12)), np.cumsum(per_bar, axis=0)])
    windows = csum[w:] - csum[:-w]  # (nb - w + 1, 12): window starting at each bar
    ents = [entropy_bits(h) for h in windows if h.sum() > 0]
    return float(np.mean(ents)) if ents else float("nan")


# ----------------------------------------------------------------------------- GPS

def grooving_patterns(notes) -> np.ndarray:
    """Per bar (0 .. last onset bar) a binary vector over the 16 positions: any onset there."""
    notes = as_notes(notes)
    nb = n_bars(notes)
    g = np.zeros((nb, TICKS_PER_BAR), dtype=bool)
    g[notes["onset"] // TICKS_PER_BAR, notes["onset"] % TICKS_PER_BAR] = True
    return g


def grooving_pattern_similarity(notes) -> float:
    """Grooving pattern similarity (GPS, "GS" in SPEC section 9).

    Per bar a 16-position binary onset vector (all instruments, drums included, empty bars
    included); similarity of two bars = 1 - mean(XOR); the result is the mean over all bar
    pairs i < j.  NaN for a song of fewer than two bars.
    """
    g = grooving_patterns(notes)
    nb = len(g)
    if nb < 2:
        return float("nan")
    # A position adds 1 to the XOR of every pair with an onset in one bar and not the other:
    # c * (nb - c) pairs for a position with onsets in c bars.  Exact, and linear in the bars
    # (a bar-by-bar matrix of a song with a stray note an hour later does not fit in memory).
    c = g.sum(axis=0, dtype=np.int64)
    differing = int(np.sum(c * (nb - c)))
    pairs = nb * (nb - 1) // 2
    return 1.0 - differing / (TICKS_PER_BAR * pairs)


# ----------------------------------------------------------------------------- SI

@dataclass(frozen=True)
class SISettings:
    """Settings of the structureness indicator (all are written into the report)."""
    hop_s: float = 0.5             # chroma frame hop in seconds (2 frames/s)
    max_frames: int = 256          # longer songs get a coarser hop: end / max_frames
    start_spacing: float = 1 / 16  # segments of m frames start every max(1, m // 16) frames
    keep_ratio: float = 0.25       # SSM cells kept: the highest 25 %, scaled to [0, 1]
    penalty: float = -2.0          # value of the other cells
    ranges_s: tuple = ((3.0, 8.0), (8.0, 15.0), (15.0, 128.0))  # segment lengths, inclusive


SI_NAMES = ("si_short", "si_mid", "si_long")  # names of the three default ranges


def chroma_frames(notes, tempo: float, hop_s: float) -> np.ndarray:
    """A 12 x N chroma of the pitched notes at ``hop_s`` seconds per frame.

    Each note adds 1 per second it sounds (onset to onset + max(duration, 1) ticks) to its
    pitch class; frame f integrates [f * hop, (f + 1) * hop).  N = ceil(song end / hop).
    """
    notes = pitched(as_notes(notes))
    end_s = song_end_seconds(notes, tempo)
    n = int(math.ceil(end_s / hop_s - 1e-9)) if end_s > 0 else 0
    if n == 0:
        return np.zeros((12, 0))
    end_tick = int((notes["onset"] + np.maximum(notes["duration"], 1)).max())
    diff = np.zeros((12, end_tick + 1))
    np.add.at(diff, (notes["pitch"] % 12, notes["onset"]), 1.0)
    np.add.at(diff, (notes["pitch"] % 12, notes["onset"] + np.maximum(notes["duration"], 1)), -1.0)
    active = np.cumsum(diff, axis=1)[:, :end_tick]           # sounding notes per tick
    tick_s = float(ticks_to_seconds(1, tempo))
    energy = np.hstack([np.zeros((12, 1)), np.cumsum(active * tick_s, axis=1)])  # at tick bounds
    tick_bounds = np.arange(end_tick + 1) * tick_s
    frame_bounds = np.arange(n + 1) * hop_s
    cum = np.vstack([np.interp(frame_bounds, tick_bounds, e) for e in energy])
    return np.diff(cum, axis=1)


def self_similarity(chroma: np.ndarray) -> np.ndarray:
    """Cosine self-similarity of chroma frames; silent frames become uniform vectors first."""
    x = np.asarray(chroma, dtype=np.float64).copy()
    norms = np.linalg.norm(x, axis=0)
    silent = norms < 1e-9
    x[:, silent] = 1.0
    x /= np.linalg.norm(x, axis=0, keepdims=True)
    return np.clip(x.T @ x, 0.0, 1.0)


def threshold_ssm(s: np.ndarray, keep_ratio: float = 0.25, penalty: float = -2.0) -> np.ndarray:
    """Keep the ``keep_ratio`` highest cells scaled linearly to [0, 1], set the others to ``penalty``.

    The threshold is the (1 - keep_ratio) quantile; cells >= it are kept (ties are all kept),
    except cells of similarity 0 (nothing in common), which always get the penalty.  The
    diagonal is set to 1 afterwards (every frame explains itself).
    """
    s = np.asarray(s, dtype=np.float64)
    thr = max(float(np.quantile(s, 1.0 - keep_ratio)), 0.0)
    top = float(s.max())
    out = np.full_like(s, penalty)
    kept = (s >= thr) & (s > 0)
    out[kept] = 1.0 if top - thr < 1e-12 else (s[kept] - thr) / (top - thr)
    np.fill_diagonal(out, 1.0)
    return out


def fitness_scape_plot(s: np.ndarray, lengths=None, start_spacing: float = 0.0) -> np.ndarray:
    """Fitness of every segment (Mueller, Jiang & Grosche 2013, "audio thumbnailing").

    Returns F with F[m, start] = fitness of the segment of m frames starting at ``start``
    (NaN where not computed).  ``lengths`` restricts the segment lengths (default all 1..N).
    ``start_spacing`` > 0 computes, for segments of m frames, only the starts 0, k, 2k, ..
    with k = max(1, floor(m * start_spacing)) (a cheaper scape plot; 0 = every start).

    For a segment alpha of M frames, an optimal path family over the N x M columns of the SSM
    is found by dynamic programming: paths run through all M columns with steps (1, 1),
    (2, 1), (1, 2) (rows, columns); between paths the family rests in an "elevator" that moves
    down one row at a time at no score; a family ends in the elevator or at the end of a path
    in the last row.  With sigma its score (sum of SSM values on its cells), L the number of its
    cells, gamma the number of rows its paths' induced segments cover:
    normalised score = max(0, (sigma - M) / L), normalised coverage = max(0, (gamma - M) / N),
    fitness = their harmonic mean (0 when both are 0).  Subtracting M removes the trivial
    self-explanation of the segment (its diagonal path).  Among families of equal score the
    one covering more rows wins, then the one with more cells.  SSM values are rounded to
    multiples of 2**-12.

    All segments of similar lengths (within a factor 1.2) are computed together, one SSM row
    at a time: O(N) vector steps of size (segments x longest length) per group.
    """
    s = np.asarray(s, dtype=np.float64)
    n = s.shape[0]
    fit = np.full((n + 1, n), np.nan)
    if n == 0:
        return fit
    if n >= _FIELD:
        raise ValueError(f"fitness_scape_plot handles at most {_FIELD - 1} frames, got {n}")
    if np.abs(s).max() > 4.0:
        raise ValueError("fitness_scape_plot expects SSM values within [-4, 1]")
    ms = sorted({int(m) for m in (range(1, n + 1) if lengths is None else lengths) if 1 <= int(m) <= n})
    group: list[int] = []
    for m in ms + [None]:
        if group and (m is None or m > max(group[0] * 1.2, group[0] + 2)):
            seg_len, seg_start = [], []
            for g in group:
                k = max(1, int(g * start_spacing))
                st = np.arange(0, n - g + 1, k)
                seg_len.append(np.full(st.size, g)); seg_start.append(st)
            seg_len, seg_start = np.concatenate(seg_len), np.concatenate(seg_start)
            fit[seg_len, seg_start] = _fitness_of_segments(s, seg_start, seg_len)
            group = []
        if m is not None:
            group.append(m)
    return fit


# The DP carries, per cell, the family's score D together with its covered rows C and cell
# count L packed into one float64 holding an integer: V = D_q * 2**24 + C * 2**12 + L, where
# D_q is the score in units of 2**-12 (|V| < 2**50, so the arithmetic is exact).  Maximising V
# maximises D (ties: more rows covered, then more cells); adding packed increments updates all
# three at once, so each SSM row costs a few vector operations.
_FRAC = float(1 << 12)
_SHIFT = float(1 << 24)
_FIELD = 1 << 12


def _fitness_of_segments(s: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    n = s.shape[0]
    b = start.size
    width = int(length.max())
    col = np.arange(width)
    # Arrays are (column, segment): a column shift is then a contiguous slice.  Column j of
    # segment i reads SSM column start+j; columns past a segment's end read a sentinel column
    # of -inf, so those cells never carry a family.
    idx = np.where(col[:, None] < length[None, :], start[None, :] + col[:, None], n)
    sq = np.full((n, n + 1), -np.inf)
    sq[:, :n] = np.rint(s * _FRAC) * _SHIFT
    seg = np.arange(b)
    last = length - 1
    step = float(_FIELD + 1)                     # one more cell, one more row covered
    p1 = np.full((width, b), -np.inf)            # path cells on the previous row
    p2 = np.full((width, b), -np.inf)            # path cells two rows up
    new = np.empty((width, b))
    elev = np.zeros(b)                           # elevator (between paths)
    p1[0] = sq[0][idx[0]] + step                 # row 0: a path may start at column 0
    for row in range(1, n):
        w = np.take(sq[row], idx)
        np.maximum(elev, p1[last, seg], out=elev)   # stay, or close a path ended on row-1
        np.add(elev, w[0], out=new[0])               # a path starts here
        new[0] += step
        if width > 1:
            rest = new[1:]
            np.add(p2[:-1], float(_FIELD), out=rest)      # step (2, 1): one extra row covered
            np.maximum(rest, p1[:-1], out=rest)           # step (1, 1)
            if width > 2:
                np.maximum(rest[1:], p1[:-2], out=rest[1:])  # step (1, 2)
            rest += w[1:]
            rest += step
        p1, p2, new = new, p1, p2
    final = np.maximum(elev, p1[last, seg])
    low = np.mod(final, _SHIFT)
    score = (final - low) / _SHIFT / _FRAC
    cover = np.floor(low / _FIELD)
    cells = low - cover * _FIELD
    m = length.astype(np.float64)
    s_n = np.where(cells > 0, np.maximum(0.0, (score - m) / np.maximum(cells, 1)), 0.0)
    c_n = np.maximum(0.0, (cover - m) / n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s_n + c_n > 0, 2 * s_n * c_n / (s_n + c_n), 0.0)


def structureness(notes, tempo: float, settings: SISettings = SISettings()) -> dict:
    """Structureness indicator (SI, SPEC section 9): max fitness per segment-length range.

    Chroma of the pitched notes (:func:`chroma_frames`) at ``settings.hop_s`` seconds per frame
    (a coarser hop, end / max_frames, for songs longer than ``max_frames`` frames); cosine SSM
    (:func:`self_similarity`), thresholded (:func:`threshold_ssm`); fitness scape plot
    (:func:`fitness_scape_plot`) over the segment lengths of the ranges only, segments of m
    frames starting every max(1, floor(m * start_spacing)) frames (0: every frame).  For each range
    (lo, hi) seconds: SI = max fitness over segments of ceil(lo / hop) .. floor(hi / hop)
    frames (NaN when the song is shorter than lo).  Returns {"si_short": .., "si_mid": ..,
    "si_long": .., "si_hop_s": hop, "si_frames": N} (names for the three default ranges,
    else "si_<lo>_<hi>").
    """
    notes = as_notes(notes)
    end = song_end_seconds(pitched(notes), tempo)
    hop = float(settings.hop_s)
    if end > hop * settings.max_frames:
        hop = end / settings.max_frames
    chroma = chroma_frames(notes, tempo, hop)
    n = chroma.shape[1]
    names = (SI_NAMES if len(settings.ranges_s) == 3 and tuple(settings.ranges_s) == SISettings.ranges_s
             else tuple(f"si_{lo:g}_{hi:g}" for lo, hi in settings.ranges_s))
    bounds = [(int(math.ceil(lo / hop - 1e-9)), min(n, int(math.floor(hi / hop + 1e-9))))
              for lo, hi in settings.ranges_s]
    out = {"si_hop_s": hop, "si_frames": n}
    wanted = sorted({m for lo, hi in bounds for m in range(max(lo, 1), hi + 1)})
    if n == 0 or not wanted:
        fit = None
    else:
        ssm = threshold_ssm(self_similarity(chroma), settings.keep_ratio, settings.penalty)
        fit = fitness_scape_plot(ssm, lengths=wanted, start_spacing=settings.start_spacing)
    for name, (lo, hi) in zip(names, bounds):
        lo = max(lo, 1)
        if fit is None or lo > hi:
            out[name] = float("nan")
        else:
            out[name] = float(np.nanmax(fit[lo: hi + 1]))
    return out


# ----------------------------------------------------------------------------- rhythm

def beat_alignment(reference_times, other_times, sigma: float = 0.05) -> float:
    """Beat alignment score: mean over ``reference_times`` of exp(-d^2 / (2 sigma^2)).

    d is the distance (s) from each reference time to the nearest of ``other_times``.
    Visual beats to music: ``beat_alignment(visual_beats, onsets)``; the mirror:
    ``beat_alignment(onsets, visual_beats)``.  NaN when ``reference_times`` is empty; 0 when
    ``other_times`` is empty.
    """
    ref = np.asarray(reference_times, dtype=np.float64).ravel()
    oth = np.sort(np.asarray(other_times, dtype=np.float64).ravel())
    if ref.size == 0:
        return float("nan")
    if oth.size == 0:
        return 0.0
    idx = np.clip(np.searchsorted(oth, ref), 1, oth.size - 1) if oth.size > 1 else np.zeros(ref.size, int)
    d = np.abs(ref - oth[idx])
    if oth.size > 1:
        d = np.minimum(d, np.abs(ref - oth[idx - 1]))
    return float(np.mean(np.exp(-(d ** 2) / (2.0 * sigma ** 2))))


def hit_rate(beat_ticks, notes) -> float:
    """Share of visual beats (absolute ticks) with a note onset (any instrument) at that 16th."""
    ticks = np.asarray(beat_ticks, dtype=np.int64).ravel()
    if ticks.size == 0:
        return float("nan")
    onsets = np.unique(as_notes(notes)["onset"])
    return float(np.isin(ticks, onsets).mean())


# ----------------------------------------------------------------------------- control errors

def bar_densities(notes, bars) -> np.ndarray:
    """SPEC section 2 density of each bar in ``bars``: distinct onset positions + 1 (empty: 1)."""
    notes = as_notes(notes)
    bars = np.asarray(bars, dtype=np.int64).ravel()
    uniq = np.unique(notes["onset"])
    counts = np.bincount(uniq // TICKS_PER_BAR, minlength=int(bars.max(initial=-1)) + 1)
    return counts[bars] + 1 if bars.size else np.zeros(0, np.int64)


def density_error(notes, video_bars, video_density) -> dict:
    """Density control error over the video's bars (SPEC section 5).

    ``video_bars``: bar indices of the video's Bar rows; ``video_density``: their density
    values as stored in the npz (class + 1, the token encoding: 1..17).  The song's value is
    :func:`bar_densities` (bars past the song's end are empty: 1).  Returns
    ``density_error`` = mean |song - video| / 16 (0 = every bar matches, 1 = worst possible),
    ``density_mae`` = mean |song - video| in density units, ``density_mismatch_rate`` = share
    of bars that differ.  NaN when the video has no bars.
    """
    bars = np.asarray(video_bars, dtype=np.int64).ravel()
    want = np.asarray(video_density, dtype=np.float64).ravel()
    if bars.size == 0:
        return {"density_error": float("nan"), "density_mae": float("nan"), "density_mismatch_rate": float("nan")}
    got = bar_densities(notes, bars).astype(np.float64)
    diff = np.abs(got - want)
    return {"density_error": float(diff.mean() / TICKS_PER_BAR), "density_mae": float(diff.mean()),
            "density_mismatch_rate": float((diff > 0).mean())}


def strength_error(notes, beat_ticks, beat_strengths, tracks=FORCED_TRACKS) -> dict:
    """Strength control error at the kept visual beats (SPEC section 5).

    For each kept visual beat (absolute tick, video strength s >= 2) and each forced track
    (default Drums, Piano, Guitar), n = number of notes of that track starting at that tick.
    Returns ``strength_error`` = mean |n - s| / s over (beat, track) pairs (relative error),
    ``strength_mismatch_rate`` = share of pairs with n != s.  NaN without kept beats.
    """
    ticks = np.asarray(beat_ticks, dtype=np.int64).ravel()
    want = np.asarray(beat_strengths, dtype=np.float64).ravel()
    if ticks.size == 0 or not len(tracks):
        return {"strength_error": float("nan"), "strength_mismatch_rate": float("nan")}
    notes = as_notes(notes)
    rel, miss = [], []
    for k in tracks:
        onsets = np.sort(notes["onset"][notes["instrument"] == k])
        n = (np.searchsorted(onsets, ticks, "right") - np.searchsorted(onsets, ticks, "left")).astype(np.float64)
        rel.append(np.abs(n - want) / np.maximum(want, 1.0))
        miss.append(n != want)
    return {"strength_error": float(np.mean(np.concatenate(rel))),
            "strength_mismatch_rate": float(np.mean(np.concatenate(miss)))}


# ----------------------------------------------------------------------------- scene cuts

def bar_changes(notes, bars: int | None = None) -> np.ndarray:
    """How much the texture changes across each bar line of a song of ``bars`` bars (default: up
    to its last onset): entry b (1 .. bars - 1) compares bar b - 1 with bar b (entry 0 is NaN).  The mean of four shares, each 0 (same) .. 1:

    * instrument set: Jaccard distance of the instruments playing in the two bars (0 if both are empty);
    * notes per bar: |n_b - n_(b-1)| / max(n_b, n_(b-1)) (0 if both are empty);
    * register: |mean pitch_b - mean pitch_(b-1)| / 12, at most 1, of the pitched (non-drum)
      notes (0 where a bar has none);
    * onset pattern: the share of the 16 positions with an onset in one bar and not the other.
    """
    notes = as_notes(notes)
    nb = n_bars(notes) if bars is None else int(bars)
    out = np.full(max(nb, 1), np.nan)
    if nb < 2:
        return out[:nb]
    bar = notes["onset"] // TICKS_PER_BAR
    ok = bar < nb
    notes, bar = notes[ok], bar[ok]
    n_instr = len(D.INSTRUMENTS) + 1
    present = np.zeros((nb, n_instr), bool)
    present[bar, np.clip(notes["instrument"], 0, n_instr - 1)] = True
    counts = np.bincount(bar, minlength=nb).astype(np.float64)
    pitched_mask = notes["instrument"] != DRUMS
    psum = np.bincount(bar[pitched_mask], weights=notes["pitch"][pitched_mask].astype(np.float64), minlength=nb)
    pn = np.bincount(bar[pitched_mask], minlength=nb)
    onsets = np.zeros((nb, TICKS_PER_BAR), bool)
    onsets[bar, notes["onset"] % TICKS_PER_BAR] = True
    a, b = slice(0, nb - 1), slice(1, nb)
    union = (present[a] | present[b]).sum(1)
    jac = np.where(union > 0, 1.0 - (present[a] & present[b]).sum(1) / np.maximum(union, 1), 0.0)
    top = np.maximum(counts[a], counts[b])
    dens = np.where(top > 0, np.abs(counts[b] - counts[a]) / np.maximum(top, 1), 0.0)
    both = (pn[a] > 0) & (pn[b] > 0)
    mean_p = psum / np.maximum(pn, 1)
    reg = np.where(both, np.minimum(np.abs(mean_p[b] - mean_p[a]) / 12.0, 1.0), 0.0)
    pat = (onsets[a] ^ onsets[b]).mean(1)
    out[1:] = (jac + dens + reg + pat) / 4.0
    return out


def cut_alignment(notes, cut_bars, bars: int | None = None) -> dict:
    """The music's change across the scene cuts against its change across the other bar lines.

    ``cut_bars``: the bar line nearest each cut (:func:`vidscore.video.metadata.bar_line`); those
    outside 1 .. bars - 1 are ignored.  Returns ``cut_alignment`` = mean :func:`bar_changes`
    at the cut bar lines / its mean at the other bar lines (1: cuts are like any bar line; NaN
    without a cut inside the song or another bar line), ``change_at_cuts``,
    ``change_elsewhere`` and ``n_cut_bars``."""
    ch = bar_changes(notes, bars)
    nb = len(ch)
    cuts = sorted({int(b) for b in cut_bars if 1 <= int(b) < nb})
    is_cut = np.zeros(nb, bool)
    is_cut[cuts] = True
    other = ~is_cut
    other[0] = False
    at = float(ch[is_cut].mean()) if cuts else float("nan")
    rest = float(ch[other].mean()) if other.any() else float("nan")
    ratio = at / rest if cuts and other.any() and rest > 0 else float("nan")
    return {"cut_alignment": ratio, "change_at_cuts": at, "change_elsewhere": rest, "n_cut_bars": len(cuts)}


# ----------------------------------------------------------------------------- tokens and video rows

def notes_from_tokens(tokens) -> np.ndarray:
    """Notes of a compound-token sequence (SPEC section 2 columns; at least 9 per row), as a
    :data:`NOTE_DTYPE` array: :func:`representation.tokens_to_notes` (onsets from i_beat, up to
    the first EOS), the one reading of tokens."""
    t = np.asarray(tokens, dtype=np.int64)
    if t.size == 0:
        return as_notes(np.zeros((0, 4), np.int64))
    return as_notes(representation.tokens_to_notes(t.reshape(-1, t.shape[-1])))


def video_controls(rows, min_strength: int = D.DEFAULT_MIN_STRENGTH) -> dict:
    """Split inference-npz rows [bar-beat, density, strength, i_beat, n_beat, p_beat].

    Returns numpy arrays: ``bar_index`` / ``bar_density`` (Bar rows, bar-beat 17: bar = i_beat
    // 16, density as stored), ``beat_ticks`` / ``beat_strengths`` (visual-beat rows, bar-beat
    1..16), ``kept_ticks`` / ``kept_strengths`` (those with strength >= ``min_strength``: the
    beats the control rules force; strength-1 beats are dropped by default).
    """
    r = np.asarray(rows, dtype=np.int64).reshape(-1, 6)
    bars = r[r[:, ROW_BARBEAT] == D.BAR]
    beats = r[(r[:, ROW_BARBEAT] >= 1) & (r[:, ROW_BARBEAT] <= TICKS_PER_BAR)]
    kept = beats[beats[:, ROW_STRENGTH] >= min_strength]
    return {"bar_index": bars[:, ROW_I_BEAT] // TICKS_PER_BAR, "bar_density": bars[:, ROW_DENSITY],
            "beat_ticks": beats[:, ROW_I_BEAT], "beat_strengths": beats[:, ROW_STRENGTH],
            "kept_ticks": kept[:, ROW_I_BEAT], "kept_strengths": kept[:, ROW_STRENGTH]}


def control_errors(notes, rows, min_strength: int = D.DEFAULT_MIN_STRENGTH, tracks=None) -> dict:
    """CMT's three control errors (SPEC section 5) of a song against its video's npz rows.

    ``density_*``: :func:`density_error` over the video's Bar rows; ``strength_*``:
    :func:`strength_error` at the kept visual beats for ``tracks`` (default: the forced tracks
    Drums, Piano, Guitar that occur in the song, or all three when none does); ``time_error``
    = 1 - ``hit_rate`` (share of kept visual beats without a note onset at that 16th).
    """
    notes = as_notes(notes)
    v = video_controls(rows, min_strength)
    if tracks is None:
        present = set(np.unique(notes["instrument"]).tolist())
        tracks = tuple(k for k in FORCED_TRACKS if k in present) or FORCED_TRACKS
    out = density_error(notes, v["bar_index"], v["bar_density"])
    out.update(strength_error(notes, v["kept_ticks"], v["kept_strengths"], tracks))
    hr = hit_rate(v["kept_ticks"], notes)
    out["hit_rate"] = hr
    out["time_error"] = 1.0 - hr
    return out


def control_errors_from_tokens(tokens, rows, min_strength: int = D.DEFAULT_MIN_STRENGTH, tracks=None) -> dict:
    """:func:`control_errors` of a generated token sequence; undefined values are None (JSON null)."""
    errs = control_errors(notes_from_tokens(tokens), rows, min_strength, tracks)
    return {k: (None if not math.isfinite(v) else float(v)) for k, v in errs.items()}
