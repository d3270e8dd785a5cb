"""Visual tempo from the impact envelope (SPEC 6.5).

Our implementation of the estimator the published numbers came from (librosa 0.6.2's
``beat.tempo`` run on the envelope with the frame rate as sample rate and a hop of
one frame; no librosa dependency):

* a tempogram: the envelope padded by half a window on each side with linear ramps
  to 0, cut into windows of int(8 s x fps) frames starting at every frame (as many
  windows as envelope samples), each multiplied by a periodic Hann window,
  autocorrelated, and divided by its largest absolute value;
* averaged over time; lag L > 0 frames means 60 * fps / L bpm;
* weighted by a log-normal prior centred on 120 bpm with a standard deviation of one
  octave, and zero for tempos at or above 320 bpm;
* the lag with the largest product wins.  If none has a positive weight (a still
  video: an all-zero envelope) the tempo is the prior's centre, 120 bpm.

Tempos therefore come out as 60 * fps / lag, e.g. 120 bpm = lag 15 at 30 fps.
"""
from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

START_BPM = 120.0
STD_BPM = 1.0  # octaves
AC_SIZE_S = 8.0
MAX_TEMPO = 320.0
_CHUNK = 2048  # tempogram columns per block (bounds memory on long videos)


def window_length(fps: float, ac_size: float = AC_SIZE_S) -> int:
    """Frames per autocorrelation window: int(ac_size * fps), as librosa's time_to_frames."""
    return int(ac_size * fps)


def mean_tempogram(envelope: np.ndarray, win: int) -> np.ndarray:
    """Time-averaged, per-window max-normalised autocorrelation; shape (win,)."""
    x = np.asarray(envelope, dtype=np.float64)
    n = len(x)
    padded = np.pad(x, win // 2, mode="linear_ramp", end_values=0)
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[:n]
    hann = signal.get_window("hann", win, fftbins=True)
    nfft = sp_fft.next_fast_len(2 * win - 1, real=True)
    total = np.zeros(win)
    for start in range(0, n, _CHUNK):
        block = frames[start : start + _CHUNK] * hann
        spec = sp_fft.rfft(block, n=nfft, axis=1)
        ac = sp_fft.irfft(spec.real**2 + spec.imag**2, n=nfft, axis=1)[:, :win]
        norm = np.max(np.abs(ac), axis=1, keepdims=True)
        norm[norm < np.finfo(np.float64).tiny] = 1.0
        total += (ac / norm).sum(axis=0)
    return total / max(n, 1)


def tempo_prior(win: int, fps: float, start_bpm: float = START_BPM, std_bpm: float = STD_BPM,
                max_tempo: float = MAX_TEMPO) -> tuple[np.ndarray, np.ndarray]:
    """(bpm per lag, prior weight per lag); lag 0 is infinite tempo with weight 0."""
    bpms = np.full(win, np.inf)
    bpms[1:] = 60.0 * fps / np.arange(1, win)
    with np.errstate(divide="ignore", invalid="ignore"):
        prior = np.exp(-0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / std_bpm) ** 2)
    prior[0] = 0.0
    below = bpms < max_tempo
    if below.any():
        prior[: int(np.argmax(below))] = 0.0
    return bpms, prior


def estimate_tempo(envelope: np.ndarray, fps: float, start_bpm: float = START_BPM) -> float:
    """Tempo in bpm of an impact envelope sampled at ``fps``."""
    x = np.asarray(envelope, dtype=np.float64)
    win = window_length(fps)
    if len(x) == 0 or win < 2:
        return float(start_bpm)
    bpms, prior = tempo_prior(win, fps, start_bpm)
    score = mean_tempogram(x, win) * prior
    best = int(np.argmax(score))
    if best == 0:
        return float(start_bpm)
    return float(bpms[best])
