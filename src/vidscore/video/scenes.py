"""Scene cuts: the shot boundaries of a video, from the frames the analysis already decodes.

Two cheap signals ride along the flow pass (:mod:`vidscore.video.features`, in its worker
threads):

* per frame, a *signature*: a 32-bin histogram of the gray analysis frame and a 12 hue x 4
  saturation histogram of a 96x54 colour thumbnail (nearest-neighbour samples of the decoded
  frame), plus the thumbnail's mean brightness, saturation and warm / cool hue shares, which
  :mod:`vidscore.video.mood` reads;
* per frame pair, the *unexplained change*: the mean absolute difference of the two frames on
  every 4th pixel after the optical flow the analysis computes anyway has moved the first onto
  the second (and the mean brightness offset is removed), or without that warp where the flow
  does not help; 8-bit gray levels.

:func:`detect` reads them (cheap; not cached) and finds

* **hard cuts**: a spike of the unexplained change (``ratio`` times its median over the half
  second on either side, and ``abs_min`` gray levels above it), or a smaller spike together
  with a jump of the signature.  The flow explains a pan, however fast, and a person moving in
  front of a still camera, so neither spikes.
* **flashes**, which are not cuts: a spike whose signature comes back within ``flash_s``
  (the picture before the flash returns), or one that ends a bright excursion.
* **dissolves and fades** (one boundary each): over a second the mean signature moves from one
  picture to another and stays there, through an intermediate, while the flow explains little
  of the change; the boundary is where half of the change is done.

Boundaries closer than ``min_gap_s`` are one (the stronger is kept).  Times are the time of
the first frame of the new shot, relative to the first frame, as the analysis's other times.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

#: Bump when anything that changes the per-frame signals changes (it is part of the cache key).
SIGNAL_VERSION = 1
THUMB = (96, 54)                 # colour thumbnail (w, h), nearest-neighbour samples
GRAY_BINS = 32
HUE_BINS, SAT_BINS = 12, 4
N_SIG = GRAY_BINS + HUE_BINS * SAT_BINS
GRID = 4                         # the change is measured on every GRID-th pixel of the flow frame
#: per-frame picture statistics (columns of ``stats``)
STATS = ("luma", "brightness", "saturation", "warm", "cool")
#: a pixel counts towards a hue share when its saturation is at least this (0..255)
HUE_MIN_SAT = 50


def signal_settings() -> dict:
    """What shapes the per-frame signals (part of the feature cache's key)."""
    return {"version": SIGNAL_VERSION, "thumb": list(THUMB), "gray_bins": GRAY_BINS, "hue_bins": HUE_BINS,
            "sat_bins": SAT_BINS, "grid": GRID, "hue_min_sat": HUE_MIN_SAT}


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """The colour thumbnail of a decoded BGR frame (a gray frame is made BGR)."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.dtype != np.uint8:
        frame = cv2.convertScaleAbs(frame, alpha=255.0 / float(np.iinfo(frame.dtype).max))
    return cv2.resize(frame, THUMB, interpolation=cv2.INTER_NEAREST)


def frame_signature(gray: np.ndarray, thumb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signature (N_SIG,) float32: the two histograms, each summing to 1; stats (5,) float32:
    gray mean 0..255, thumbnail brightness and saturation 0..1, warm and cool hue shares)."""
    g = cv2.calcHist([gray], [0], None, [GRAY_BINS], [0, 256]).ravel()
    hsv = cv2.cvtColor(thumb, cv2.COLOR_BGR2HSV)
    c = cv2.calcHist([hsv], [0, 1], None, [HUE_BINS, SAT_BINS], [0, 180, 0, 256]).ravel()
    sig = np.concatenate([g / max(g.sum(), 1.0), c / max(c.sum(), 1.0)]).astype(np.float32)
    coloured = cv2.inRange(hsv, (0, HUE_MIN_SAT, 0), (180, 255, 255))
    hue = cv2.calcHist([hsv], [0], coloured, [36], [0, 180]).ravel() / (hsv.shape[0] * hsv.shape[1])   # 5 per bin
    warm = float(hue[:5].sum() + hue[33:].sum())         # hue < 25 or >= 165 (OpenCV's 0..180): reds .. yellows
    cool = float(hue[9:27].sum())                         # 45 <= hue < 135: greens .. blues
    m = cv2.mean(hsv)
    stats = np.array([cv2.mean(gray)[0], m[2] / 255.0, m[1] / 255.0, warm, cool], np.float32)
    return sig, stats


_GRIDS: dict = {}


def pair_change(prev: np.ndarray, cur: np.ndarray, flow: np.ndarray) -> tuple[float, float]:
    """(unexplained change after the flow's warp, plain difference), gray levels, on every
    GRID-th pixel; the mean brightness offset between the two is removed from the first."""
    h, w = cur.shape[:2]
    key = (h, w)
    if key not in _GRIDS:
        ys, xs = np.mgrid[0:h:GRID, 0:w:GRID].astype(np.float32)
        _GRIDS[key] = (xs, ys)
    xs, ys = _GRIDS[key]
    f = flow[::GRID, ::GRID]
    warped = cv2.remap(prev, xs + f[..., 0], ys + f[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    c = np.ascontiguousarray(cur[::GRID, ::GRID])
    d = cv2.subtract(c, warped, dtype=cv2.CV_32F)
    d -= np.float32(cv2.mean(d)[0])
    comp = float(cv2.norm(d, cv2.NORM_L1)) / c.size
    plain = float(cv2.norm(c, np.ascontiguousarray(prev[::GRID, ::GRID]), cv2.NORM_L1)) / c.size
    return comp, plain


def pair_signals(thumb: np.ndarray):
    """What the flow pass measures for a pair besides the flow's own figures (``also`` of
    :func:`vidscore.video.flow.pair_features`): (change, plain, signature, stats) of the later frame."""
    def measure(prev, cur, flow):
        return (*pair_change(prev, cur, flow), *frame_signature(cur, thumb))
    return measure


@dataclass(frozen=True)
class Settings:
    """The detector's thresholds (see the module's docstring)."""

    base_s: float = 0.5          # the change's baseline: its median over this much on either side
    ratio: float = 3.0           # a cut's change is this many times its baseline ...
    abs_min: float = 8.0         # ... and this many gray levels above it
    ratio2: float = 1.5          # or this many times, with a signature jump
    hist_abs: float = 0.25       # a signature jump: at least this distance (0..1) ...
    hist_ratio: float = 4.0      # ... and this many times the usual frame-to-frame distance
    flash_s: float = 0.4         # a flash lasts at most this long
    same: float = 0.5            # the picture "comes back": within this share of the jump
    flash_luma: float = 20.0     # a flash's end: the frame before is this much brighter (gray levels)
    dis_s: float = 0.5           # a dissolve is judged over +-this (s)
    dis_min: float = 0.35        # the signature moves at least this far across it ...
    mono: float = 0.6            # ... straight (this share of the way through the middle) ...
    explained: float = 0.6       # ... and the flow explains less than 1 - this of the change
    uniform: float = 0.9         # a black (white) frame: this share of it in the 2 darkest (brightest) bins
    dip_min: float = 0.15        # a fade through black joins pictures at least this far apart
    min_gap_s: float = 0.5       # boundaries closer than this are one

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Boundary:
    frame: int                   # first frame of the new shot
    time: float                  # its time (s, from the first frame)
    kind: str                    # "cut", "dissolve" or "fade" (through black or white)
    strength: float              # how far above the threshold's evidence (for merging)


def _tv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean of the two histograms' total-variation distances (0 same .. 1 disjoint)."""
    g = 0.5 * np.abs(a[..., :GRAY_BINS] - b[..., :GRAY_BINS]).sum(-1)
    c = 0.5 * np.abs(a[..., GRAY_BINS:] - b[..., GRAY_BINS:]).sum(-1)
    return 0.5 * (g + c)


def _side_median(x: np.ndarray, w: int) -> np.ndarray:
    """Per i, the median of x over [i - w, i + w] without [i - 1, i + 1] (edges reflected)."""
    n = len(x)
    pad = np.pad(x, w, mode="reflect") if n > 1 else np.repeat(x, 2 * w + 1)
    idx = np.arange(n)[:, None] + np.r_[np.arange(0, w - 1), np.arange(w + 2, 2 * w + 1)][None, :]
    return np.median(pad[idx], axis=1)


def _hard_cuts(t, sig, stats, change, plain, fps, s: Settings):
    """(cuts [(frame, strength)], flash spans [(first, last)])."""
    n = len(t)
    w = max(3, int(round(s.base_s * fps)))
    base = np.maximum(_side_median(change, w), 0.5)
    hd = np.r_[0.0, _tv(sig[1:], sig[:-1])]
    hbase = _side_median(hd, w)
    L = max(1, int(round(s.flash_s * fps)))
    rr = change / base
    strong = (rr >= s.ratio) & (change >= base + s.abs_min)
    jump = (hd >= np.maximum(s.hist_abs, s.hist_ratio * hbase)) & (rr >= s.ratio2) & (change >= base + s.abs_min / 2)
    peak = change >= np.maximum(np.r_[change[1:], 0.0], np.r_[0.0, change[:-1]])
    cuts, flashes = [], []
    for i in np.flatnonzero((strong | jump) & peak):
        if i == 0:
            continue
        if hd[i] >= s.hist_abs:               # a flash changes the picture's histogram a lot
            back = _tv(sig[i - 1], sig[i + 1:min(n, i + L + 1)])
            if len(back) and back.min() < s.same * hd[i]:
                flashes.append((i, i + 1 + int(np.argmin(back))))
                continue
            before = _tv(sig[i], sig[max(0, i - L - 1):i - 1])
            if len(before) and before.min() < s.same * hd[i] and stats[i - 1, 0] > stats[i, 0] + s.flash_luma:
                flashes.append((max(0, i - L - 1), i))
                continue
        cuts.append((int(i), float(rr[i])))
    return cuts, flashes


def _dissolves(sig, change, plain, fps, s: Settings, cuts, flashes):
    """[(frame, strength)]: one per gradual transition (see the module's docstring)."""
    n = len(sig)
    k = max(2, int(round(s.dis_s * fps)))
    h = max(1, k // 2)
    cs = np.vstack([np.zeros((1, sig.shape[1])), np.cumsum(sig, 0, dtype=np.float64)])

    def mean(a, b):
        a, b = max(0, a), min(n, b)
        return (cs[b] - cs[a]) / max(b - a, 1)
    found = []
    for i in range(k + h, n - k - h):
        if any(a - 2 <= i + k + h and i - k - h <= b + 2 for a, b in flashes):
            continue
        if any(abs(c - i) <= k + h for c, _ in cuts):
            continue
        before, after, mid = mean(i - k - h, i - k + 1), mean(i + k, i + k + h + 1), mean(i - h // 2, i + h // 2 + 1)
        dist = float(_tv(before, after))
        if dist < s.dis_min:
            continue
        d1, d2 = float(_tv(before, mid)), float(_tv(mid, after))
        if dist < s.mono * (d1 + d2) or min(d1, d2) < 0.15 * dist:
            continue
        unexplained = change[i - k + 1:i + k + 1].sum() / max(plain[i - k + 1:i + k + 1].sum(), 1e-6)
        if unexplained < s.explained:
            continue
        found.append((i, dist))
    out, group = [], []
    hd = np.r_[0.0, _tv(sig[1:], sig[:-1])]
    for i, d in found + [(None, 0.0)]:
        if group and (i is None or i - group[-1][0] > 2):
            i0, i1 = group[0][0] - k, group[-1][0] + k
            wgt = hd[i0 + 1:i1 + 1]
            mid = i0 + 1 + int(np.searchsorted(np.cumsum(wgt), wgt.sum() / 2))
            out.append((min(mid, n - 1), max(g[1] for g in group)))
            group = []
        if i is not None:
            group.append((i, d))
    return out


def _dips(sig, fps, s: Settings, taken):
    """[(frame, strength)]: a fade through black (or white): a run of uniform frames between
    two pictures that differ; the boundary is the run's middle."""
    n = len(sig)
    uniform = (sig[:, 0] + sig[:, 1] >= s.uniform) | (sig[:, GRAY_BINS - 1] + sig[:, GRAY_BINS - 2] >= s.uniform)
    k = max(2, int(round(s.dis_s * fps)))
    out, i = [], 0
    while i < n:
        if not uniform[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and uniform[j + 1]:
            j += 1
        a, b, i = i, j, j + 1
        if a == 0 or b == n - 1 or any(a - k <= c <= b + k for c in taken):
            continue
        before = sig[max(0, a - 2 * k):max(1, a - k)].mean(0)
        after = sig[min(n - 1, b + k):min(n, b + 2 * k)].mean(0)
        dist = float(_tv(before, after))
        if dist >= s.dip_min:
            out.append(((a + b + 1) // 2, dist))
    return out


def detect(times, sig, stats, change, plain, settings: Settings = Settings()) -> list[Boundary]:
    """The shot boundaries of a video from its per-frame signals (frame k at ``times[k]`` s;
    ``change[k]`` / ``plain[k]``: from frame k - 1 to k, 0 for k = 0)."""
    t = np.asarray(times, np.float64)
    n = len(t)
    if n < 4:
        return []
    t = t - t[0]
    fps = (n - 1) / t[-1] if t[-1] > 0 else 25.0
    sig, stats = np.asarray(sig, np.float64), np.asarray(stats, np.float64)
    plain = np.asarray(plain, np.float64)
    change = np.minimum(np.asarray(change, np.float64), plain)   # the flow only ever helps
    cuts, flashes = _hard_cuts(t, sig, stats, change, plain, fps, settings)
    found = [(i, "cut", st) for i, st in cuts]
    found += [(i, "dissolve", st) for i, st in _dissolves(sig, change, plain, fps, settings, cuts, flashes)]
    found += [(i, "fade", st) for i, st in _dips(sig, fps, settings, [f[0] for f in found])]
    found.sort()
    gap = settings.min_gap_s * fps
    out: list[tuple] = []
    for b in found:
        if out and b[0] - out[-1][0] < gap:
            if b[1] == out[-1][1] and b[2] > out[-1][2]:
                out[-1] = b
            continue
        out.append(b)
    return [Boundary(int(i), float(t[i]), kind, float(st)) for i, kind, st in out]
