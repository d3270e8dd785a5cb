"""The time axis: frame timestamps -> one uniform grid the envelope maths runs on.

Everything after the optical flow (Gaussian in time, Butterworth filter, peak windows,
tempo lags) assumes uniformly spaced samples.  A constant-frame-rate file is used as
it is (sample k at k / fps, bit for bit the original's alignment).  A variable-frame-rate
file is resampled: the flow measured into frame k covers the interval (t[k-1], t[k]];
each grid step ((j-1)/fps, j/fps] receives the part of every frame's flow that falls in
it (linear in time), so a frame that lasted two steps contributes half its motion to
each, and the total motion is conserved.  The grid rate is the file's typical (median)
frame rate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidscore.cli import UserError


@dataclass(frozen=True)
class Timeline:
    fps: float  # grid rate
    uniform: bool  # True: frames are already on the grid (CFR)
    times: np.ndarray  # frame times relative to the first frame, seconds
    n_grid: int  # number of grid samples (== number of frames when uniform)

    @property
    def duration(self) -> float:
        """Time of the last grid sample: (n - 1) / fps, the original's duration."""
        return (self.n_grid - 1) / self.fps


def build_timeline(times: np.ndarray, nominal_fps: float, path: str = "video") -> Timeline:
    """Decide the grid for frames presented at ``times`` (seconds, NaN when unknown)."""
    t = np.asarray(times, dtype=np.float64)
    n = len(t)
    ok = n >= 2 and np.all(np.isfinite(t)) and np.all(np.diff(t) > 0)
    if not ok:
        if not nominal_fps > 0:
            raise UserError(f"{path}: the file gives neither a frame rate nor frame timestamps")
        return Timeline(float(nominal_fps), True, np.arange(n) / nominal_fps, n)
    rel = t - t[0]
    med = float(np.median(np.diff(rel)))
    fps = float(nominal_fps) if nominal_fps > 0 and abs(nominal_fps * med - 1.0) < 0.01 else _snap_rate(1.0 / med)
    if not (0.5 <= fps <= 1000.0):
        raise UserError(f"{path}: implausible frame rate {fps:.3g} fps (motion is read from 0.5 to 1000 frames "
                        "a second); for a slideshow, convert it to a video first, e.g. ffmpeg -i IN -r 25 OUT.mp4")
    grid_pos = rel * fps
    if np.max(np.abs(grid_pos - np.arange(n))) < 0.5:
        return Timeline(fps, True, rel, n)
    n_grid = int(round(rel[-1] * fps)) + 1
    return Timeline(fps, False, rel, max(2, n_grid))


def _snap_rate(rate: float) -> float:
    """A rate measured from timestamps, snapped to n or n * 1000/1001 fps when that close."""
    for cand in (round(rate), round(rate * 1.001) / 1.001):
        if cand > 0 and abs(rate / cand - 1.0) < 1e-3:
            return float(cand)
    return float(rate)


def to_grid(values: np.ndarray, tl: Timeline) -> np.ndarray:
    """Per-frame flow quantities (row k = motion from frame k-1 to k; row 0 = 0) on the grid.

    ``values`` has shape (n_frames,) or (n_frames, d); the result has n_grid rows.
    """
    v = np.asarray(values, dtype=np.float64)
    if tl.uniform:
        return v
    flat = v.reshape(len(v), -1)
    # Cumulative motion at each frame time, linear within a frame's interval.
    cum = np.cumsum(flat, axis=0)
    cum -= cum[0]  # row 0 is "no motion before the first frame"
    edges = np.arange(tl.n_grid) / tl.fps
    edges = np.minimum(edges, tl.times[-1])
    pos = np.searchsorted(tl.times, edges, side="left")
    pos = np.clip(pos, 1, len(tl.times) - 1)
    t0, t1 = tl.times[pos - 1], tl.times[pos]
    frac = ((edges - t0) / (t1 - t0))[:, None]
    c = cum[pos - 1] + frac * (cum[pos] - cum[pos - 1])
    out = np.empty_like(c)
    out[0] = 0.0
    out[1:] = np.diff(c, axis=0)
    return out.reshape((tl.n_grid,) + v.shape[1:])


