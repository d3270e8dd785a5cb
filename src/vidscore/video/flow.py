"""Per frame pair: one Farneback optical flow, and the two things measured on it.

* motion speed F_t: the mean of |dx| and |dy| over the whole frame (SPEC 6.1);
* the directogram row: a 128-bin histogram of the flow's angle (atan2(dy, dx) + pi,
  over [0, 2 pi)), weighted by the flow magnitude, with a 5% border cropped (SPEC 6.2).

Both use the same flow (the original ran two passes with different settings); its
parameters are those of the original's directogram pass: pyr_scale 0.5,
levels floor(log2(min(h, w))) - 4, winsize 15, iterations 3, poly_n 5, poly_sigma 1.25.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

N_BINS = 128
BORDER = 0.05


@dataclass(frozen=True)
class FarnebackParams:
    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.25
    flags: int = 0

    @classmethod
    def for_size(cls, width: int, height: int) -> "FarnebackParams":
        """The original's pyramid depth: floor(log2(min(h, w))) - 4 (at least 0)."""
        levels = int(math.floor(math.log2(max(1, min(width, height))))) - 4
        return cls(levels=max(0, levels))

    def as_dict(self) -> dict:
        return asdict(self)


def farneback(prev: np.ndarray, cur: np.ndarray, p: FarnebackParams) -> np.ndarray:
    """Dense flow (h, w, 2) float32 from ``prev`` to ``cur`` (uint8 gray)."""
    return cv2.calcOpticalFlowFarneback(
        prev, cur, None, p.pyr_scale, p.levels, p.winsize, p.iterations, p.poly_n, p.poly_sigma, p.flags
    )


def motion_speed(flow: np.ndarray) -> float:
    """Mean of |dx| and |dy| over all pixels (np.mean(np.abs(flow)))."""
    return float(cv2.norm(flow, cv2.NORM_L1)) / flow.size


def directogram_row(flow: np.ndarray, exact: bool = True, moving_threshold: float | None = None):
    """Magnitude-weighted 128-bin histogram of atan2(dy, dx) + pi over [0, 2 pi).

    The outer 5% of rows and columns are dropped (int(0.05 * h) each side).  With
    ``exact`` the angles come from numpy's arctan2, binned like ``np.histogram``
    (2 pi falls in the last bin); otherwise from ``cv2.cartToPolar``, whose angles are
    accurate to a few thousandths of a bin, which is far below the 5-bin smoothing
    that follows.

    With ``moving_threshold`` (pixels) it returns (row, fraction of the cropped pixels
    moving more than that), which tells a still video from one with real motion.
    """
    h, w = flow.shape[:2]
    y0, x0 = int(BORDER * h), int(BORDER * w)
    f = flow[y0 : h - y0, x0 : w - x0]
    fx = np.ascontiguousarray(f[..., 0])
    fy = np.ascontiguousarray(f[..., 1])
    scale = N_BINS / (2.0 * np.pi)
    if exact:
        # float32 throughout, as the original computed it from the float32 flow
        ang = np.arctan2(fy, fx) + np.float32(np.pi)
        mag = np.sqrt(fx * fx + fy * fy)
        idx = (ang.astype(np.float64) * scale).astype(np.intp)
        np.minimum(idx, N_BINS - 1, out=idx)
    else:
        mag, ang = cv2.cartToPolar(fx, fy)  # ang in [0, 2 pi): atan2 wrapped
        idx = (ang * np.float32(scale)).astype(np.intp)
        # atan2 + pi is the wrapped angle shifted by half a turn: 64 bins.
        idx += N_BINS // 2
        idx &= N_BINS - 1
    # float32 sums, as np.histogram gives for float32 weights (the original's values)
    row = np.bincount(idx.ravel(), weights=mag.ravel(), minlength=N_BINS)[:N_BINS]
    row = row.astype(np.float32).astype(np.float64)
    if moving_threshold is None:
        return row
    moving = np.count_nonzero(mag > moving_threshold) / max(1, mag.size)
    return row, moving


#: A pixel "moves" when its flow exceeds this many pixels of the 360p frame.
MOVING_PIXELS = 0.5


def pair_features(prev: np.ndarray, cur: np.ndarray, params: FarnebackParams, exact: bool,
                  speed_scale: float = 1.0, also=None) -> tuple:
    """(motion speed in 360p pixels per frame, directogram row, moving fraction) of a pair, and
    with ``also`` a fourth item, ``also(prev, cur, flow)`` (what else is measured on the same flow).

    ``speed_scale`` converts flow pixels to 360p pixels (2 for 180p flow).
    """
    flow = farneback(prev, cur, params)
    row, moving = directogram_row(flow, exact=exact, moving_threshold=MOVING_PIXELS / speed_scale)
    if also is None:
        return motion_speed(flow) * speed_scale, row, moving
    return motion_speed(flow) * speed_scale, row, moving, also(prev, cur, flow)
