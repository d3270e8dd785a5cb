"""Impact envelope: where the motion in the picture suddenly slows down (SPEC 6.3).

From the directogram D (time x 128 angle bins):

1. Gaussian smoothing, sigma 5 bins and 3 frames, edges reflected (not wrapped);
2. 3x3 median filter with zero-padded edges (as ``scipy.signal.medfilt``);
3. difference in time (the first frame keeps its own value);
4. keep decelerations: negate and clip at 0; average over the bins;
5. 5th-order Butterworth high-pass at 1 / 0.8 s, run forward and backward;
6. with p99, p98 the 99th / 98th percentiles of |envelope|: samples with
   |value| > p99 become +p98, then everything is divided by p99.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

GAUSS_SIGMA_BINS = 5.0
GAUSS_SIGMA_FRAMES = 3.0
HIGHPASS_SECONDS = 0.8
HIGHPASS_ORDER = 5
CLIP_PERCENTILE = 99


def deceleration_flux(directogram: np.ndarray) -> np.ndarray:
    """Steps 1-4: the mean over bins of the (clipped, negated) smoothed time derivative."""
    d = np.asarray(directogram, dtype=np.float64)
    if d.ndim != 2 or len(d) == 0:
        return np.zeros(len(d))
    im = ndimage.gaussian_filter(d, sigma=(GAUSS_SIGMA_FRAMES, GAUSS_SIGMA_BINS), mode="reflect")
    im = ndimage.median_filter(im, size=3, mode="constant", cval=0.0)
    diff = np.empty_like(im)
    diff[0] = im[0]
    np.subtract(im[1:], im[:-1], out=diff[1:])
    np.negative(diff, out=diff)
    np.clip(diff, 0.0, None, out=diff)
    return diff.mean(axis=1)


def highpass(x: np.ndarray, fps: float) -> np.ndarray:
    """Zero-phase Butterworth high-pass, cutoff 1/0.8 s (normalised 1.25 / (fps / 2)).

    Frame rates at or below 2.5 fps leave no room under Nyquist for the cutoff; the
    signal is then returned unfiltered.  Very short signals use a shorter edge padding.
    """
    x = np.asarray(x, dtype=np.float64)
    wn = (1.0 / HIGHPASS_SECONDS) / (0.5 * fps)
    if not 0.0 < wn < 1.0 or len(x) < 2:
        return x.copy()
    b, a = signal.butter(HIGHPASS_ORDER, wn, btype="high", analog=False)
    padlen = 3 * max(len(a), len(b))
    if len(x) <= padlen:
        padlen = len(x) - 1
    return signal.filtfilt(b, a, x, padlen=padlen)


def normalise(x: np.ndarray) -> np.ndarray:
    """Clip outliers above the 99th percentile of |x| to +p98, then divide by p99."""
    x = np.array(x, dtype=np.float64)
    if len(x) == 0:
        return x
    ax = np.abs(x)
    p99 = np.percentile(ax, CLIP_PERCENTILE)
    p98 = np.percentile(ax, CLIP_PERCENTILE - 1)
    if not p99 > 0.0:  # a still picture: no motion at all, nothing to scale
        return np.zeros_like(x)
    x[ax > p99] = p98
    return x / p99


def impact_envelope(directogram: np.ndarray, fps: float) -> np.ndarray:
    """The visual impact envelope, one value per directogram row."""
    return normalise(highpass(deceleration_flux(directogram), fps))
