"""The picture's mood: valence and arousal estimated from brightness, colour, saturation and motion.

A heuristic, not a trained model (no labelled video is at hand to fit or check one):

* the picture's figures, over the whole video: mean brightness B and saturation S of the
  colour thumbnails (HSV, 0..1), the share of warm (red..yellow) minus cool (green..blue)
  saturated pixels W (-1..1), the motion speed (360p pixels per frame) squashed as
  M = m / (m + 2) (0..1), and the cuts per minute squashed as R = r / (r + 20);
* valence = clip(2 (0.69 (B - 0.5) + 0.22 (S - 0.3) + 0.2 W), -1, 1);
* arousal = clip(2 (-0.31 (B - 0.5) + 0.6 (S - 0.3) + 0.8 (M - 0.4) + 0.3 (R - 0.2)), -1, 1).

The brightness and saturation weights are Valdez and Mehrabian's (1994) regressions of
pleasure and arousal on colour; motion and cutting rate raising arousal follow Hanjalic and
Xu's (2005) affective video model; the warm-cool term, the offsets (a mid-grey, mildly
saturated, gently moving picture is neutral) and the factor 2 are ours, set by hand.  What
it gives is a default for music that has no better one: the user's key, genre, emotion or
tempo always wins.
"""
from __future__ import annotations

import math

import numpy as np

from vidscore.video.scenes import STATS

#: the motion speed (360p pixels per frame) and the cut rate (per minute) at which M and R are 0.5
MOTION_HALF, CUTS_HALF = 2.0, 20.0


def picture(stats, motion, duration_s: float, n_cuts: int = 0) -> dict:
    """The picture's figures (see the module's docstring) from the per-frame ``stats``
    (:data:`vidscore.video.scenes.STATS` columns) and the motion speed per grid frame."""
    st = np.asarray(stats, np.float64).reshape(-1, len(STATS))
    col = {name: (float(st[:, k].mean()) if len(st) else 0.0) for k, name in enumerate(STATS)}
    m = float(np.mean(motion)) if len(motion) else 0.0
    rate = 60.0 * n_cuts / duration_s if duration_s > 0 else 0.0
    return {"brightness": col["brightness"], "saturation": col["saturation"],
            "warmth": col["warm"] - col["cool"], "motion": m, "cuts_per_minute": rate}


def valence_arousal(pic: dict) -> tuple[float, float]:
    """(valence, arousal), each in [-1, 1], of :func:`picture`'s figures."""
    b, s, w = pic["brightness"], pic["saturation"], pic["warmth"]
    mot = pic["motion"] / (pic["motion"] + MOTION_HALF) if pic["motion"] > 0 else 0.0
    cuts = pic["cuts_per_minute"] / (pic["cuts_per_minute"] + CUTS_HALF) if pic["cuts_per_minute"] > 0 else 0.0
    v = 2.0 * (0.69 * (b - 0.5) + 0.22 * (s - 0.3) + 0.2 * w)
    a = 2.0 * (-0.31 * (b - 0.5) + 0.6 * (s - 0.3) + 0.8 * (mot - 0.4) + 0.3 * (cuts - 0.2))
    clip = lambda x: float(min(1.0, max(-1.0, x))) if math.isfinite(x) else 0.0  # noqa: E731
    return clip(v), clip(a)


def estimate(stats, motion, duration_s: float, n_cuts: int = 0) -> dict:
    """The metadata's ``"mood"``: the picture's figures and the valence and arousal they give."""
    pic = picture(stats, motion, duration_s, n_cuts)
    v, a = valence_arousal(pic)
    return {"valence": round(v, 4), "arousal": round(a, 4), **{k: round(x, 4) for k, x in pic.items()}}
