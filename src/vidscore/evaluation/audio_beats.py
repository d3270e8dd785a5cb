"""Beat alignment measured on what is heard: onsets detected in the rendered WAV against the
video's visual beats (SPEC 11, "Beat coverage and beat hit"; docs/stems_and_audio_beats.md).

* :func:`detect_onsets`: spectral flux.  The mono signal is cut into Hann frames of about
  23 ms (1024 samples at 44.1 kHz) every 10 ms, centred on the frame times; each frame's
  magnitude spectrum is log-compressed (``log1p(1000 |X|)``) and the onset strength of frame
  k is the mean over the bins of the rise ``max(0, S[k] - S[k-1])``.  Scaled to a maximum of
  1, a frame is an onset when it is the largest within +-30 ms, at least ``DELTA`` above the
  mean of +-100 ms around it, and 30 ms or more after the previous onset (the peak picking of
  Boeck, Krebs & Schedl 2012, which librosa's ``onset_detect`` also uses).  On FluidSynth's
  General MIDI sounds the onsets come 8 ms after the notes' MIDI times (tests).
* :func:`beat_coverage`: the share of visual beats with an audio onset within +-``TOLERANCE_S``.
* :func:`beat_hit`: the share of audio onsets (up to the video's end: the video is cut there)
  within +-``TOLERANCE_S`` of a visual beat.  Every note starts an onset, so between the beats
  the music's own notes lower it: read it against :func:`chance`.
* :func:`chance`: the share of ``[0, duration]`` lying within the tolerance of the given
  times: the expected coverage of beats at random times (given the onsets), or the expected hit
  of onsets at random times (given the beats).

Our own detector instead of librosa's: librosa 0.11 compiles its numba kernels on first use
(about 80 s on this project's 2-core machine, each fresh install) and brings some 300 MB of
dependencies; this is 60 lines of numpy and scipy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from vidscore.rendering import read_wav

TOLERANCE_S = 0.070       # an onset within 70 ms of a visual beat is on it (SPEC 11)
HOP_S = 0.010             # onset-strength frames every 10 ms
WINDOW_S = 0.023          # frame length (rounded up to a power of two samples)
DELTA = 0.05              # peak picking: above the local mean by this share of the strongest onset
PEAK_S, MEAN_S, WAIT_S = 0.030, 0.100, 0.030
_BLOCK = 2048             # frames transformed at once (bounded memory for hour-long songs)


def _mono(chunk: np.ndarray) -> np.ndarray:
    x = np.asarray(chunk, dtype=np.float32)
    if chunk.dtype.kind in "iu":
        x = x / float(np.iinfo(chunk.dtype).max)
    return x.mean(axis=1) if x.ndim == 2 else x


def onset_strength(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(strength per frame, frame times in s): the spectral flux of the module's docstring."""
    hop = max(1, int(round(HOP_S * rate)))
    nfft = 1 << int(np.ceil(np.log2(WINDOW_S * rate)))
    n = len(samples)
    n_frames = n // hop + 1
    window = np.hanning(nfft + 2)[1:-1].astype(np.float32)
    flux = np.zeros(n_frames)
    prev = np.zeros(nfft // 2 + 1, np.float32)      # silence before the start: a note at 0 s is an onset
    for f0 in range(0, n_frames, _BLOCK):
        f1 = min(n_frames, f0 + _BLOCK)
        a, b = f0 * hop - nfft // 2, (f1 - 1) * hop + nfft // 2      # samples these frames cover
        seg = _mono(samples[max(0, a):min(n, b)])
        seg = np.pad(seg, (max(0, -a), max(0, b - n)))
        frames = np.lib.stride_tricks.sliding_window_view(seg, nfft)[::hop][: f1 - f0]
        spec = np.log1p(1000.0 * np.abs(np.fft.rfft(frames * window, axis=1)))
        rise = np.diff(spec, axis=0, prepend=prev[None])
        flux[f0:f1] = np.maximum(rise, 0.0).mean(axis=1)
        prev = spec[-1]
    return flux, np.arange(n_frames) * hop / rate


def detect_onsets(samples: np.ndarray, rate: int) -> np.ndarray:
    """Onset times in seconds (sorted) of a signal ``(n,)`` or ``(n, channels)``."""
    flux, times = onset_strength(samples, rate)
    if flux.size == 0 or flux.max() <= 0:
        return np.zeros(0)
    env = flux / flux.max()
    frames = lambda s: max(1, int(round(s / HOP_S)))     # noqa: E731
    peak = env == ndimage.maximum_filter1d(env, 2 * frames(PEAK_S) + 1, mode="constant")
    mean = ndimage.uniform_filter1d(env, 2 * frames(MEAN_S) + 1, mode="constant")
    out: list[float] = []
    for k in np.flatnonzero(peak & (env >= mean + DELTA)):
        if not out or times[k] - out[-1] >= WAIT_S - 1e-9:
            out.append(float(times[k]))
    return np.asarray(out)


def wav_onsets(path: str | Path) -> tuple[np.ndarray, float]:
    """(onset times, length in s) of a WAV file."""
    data, rate = read_wav(path)
    return detect_onsets(data, rate), len(data) / rate


def _within(times, refs, tol: float) -> np.ndarray:
    """For each of ``times``: whether one of ``refs`` lies within ``tol`` (inclusive)."""
    times, refs = np.asarray(times, float), np.sort(np.asarray(refs, float))
    if refs.size == 0:
        return np.zeros(times.shape, bool)
    i = np.clip(np.searchsorted(refs, times), 1, refs.size - 1) if refs.size > 1 else np.zeros(times.shape, int)
    d = np.abs(times - refs[i])
    if refs.size > 1:
        d = np.minimum(d, np.abs(times - refs[i - 1]))
    return d <= tol + 1e-9


def beat_coverage(visual_beats, onsets, tol: float = TOLERANCE_S) -> float:
    """Share of visual beats with an audio onset within ``tol`` s (NaN without visual beats)."""
    hit = _within(visual_beats, onsets, tol)
    return float(hit.mean()) if hit.size else float("nan")


def beat_hit(visual_beats, onsets, tol: float = TOLERANCE_S) -> float:
    """Share of audio onsets within ``tol`` s of a visual beat (NaN without onsets)."""
    hit = _within(onsets, visual_beats, tol)
    return float(hit.mean()) if hit.size else float("nan")


def chance(times, duration: float, tol: float = TOLERANCE_S) -> float:
    """Share of ``[0, duration]`` within ``tol`` of one of ``times`` (the windows' union)."""
    if not duration > 0:
        return float("nan")
    t = np.sort(np.asarray(times, float))
    lo, hi = np.clip(t - tol, 0.0, duration), np.clip(t + tol, 0.0, duration)
    covered, end = 0.0, 0.0
    for a, b in zip(lo, hi):
        a = max(a, end)
        if b > a:
            covered, end = covered + b - a, b
    return covered / duration


def audio_beat_scores(wav: str | Path, visual_beats, duration: float | None = None,
                      tol: float = TOLERANCE_S) -> dict:
    """The scores of one rendered song against its video's visual beats (seconds): onsets after
    ``duration`` (the video's length; default the WAV's) are not heard in the video."""
    onsets, length = wav_onsets(wav)
    duration = float(duration) if duration else length
    onsets = onsets[onsets <= duration + tol]
    beats = np.asarray(visual_beats, float)
    return {"beat_coverage": beat_coverage(beats, onsets, tol), "beat_hit": beat_hit(beats, onsets, tol),
            "beat_coverage_chance": chance(onsets, duration, tol), "beat_hit_chance": chance(beats, duration, tol),
            "n_audio_onsets": int(onsets.size)}
