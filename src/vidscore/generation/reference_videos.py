"""The reference set of videos that calibration is fitted over (``stat_mix.py``, SPEC 5b).

No real footage can be shipped or fetched offline, so the set is the bundled demo
(``videos/demo.mp4``: a bouncing ball, once then twice a second, and a sweeping bar) and
synthetic clips of known motion (16 s each), made here with OpenCV: a still picture, pans at
0.2, 0.5, 2, 4, 8 and 14 pixels per frame, a pan whose speed swings, an accelerating pan, a pan with hard cuts every second, and a square that jumps twice a
second.  Together they span motion from none to fast (0 to ~14 pixels of 360p per frame) and
beats from none to sharp.  Clips are written once into a folder and reused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vidscore import cli, paths

FPS = 25
SIZE = (320, 180)          # small frames: the analysis scales everything to 360p units anyway
DEMO = paths.REPO / "videos" / "demo.mp4"


def _texture(w: int, h: int, seed: int) -> np.ndarray:
    import cv2
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2.0)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)


def _write(path: Path, frames) -> Path:
    import cv2
    with cli.atomic_path(path) as tmp:
        vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
        if not vw.isOpened():
            raise cli.UserError(f"OpenCV cannot write {path}")
        for f in frames:
            vw.write(np.ascontiguousarray(f))
        vw.release()
    return path


def pan(speeds, seed: int, cut_every: float | None = None):
    """Frames of a texture panning left by ``speeds[k]`` pixels from frame k-1 to k (a new
    texture every ``cut_every`` seconds: a hard cut)."""
    import cv2
    w, h = SIZE
    offsets = np.cumsum(speeds)
    big = {0: _texture(int(w + offsets[-1] + 8), h, seed)}
    for k, off in enumerate(offsets):
        part = int(k / (cut_every * FPS)) if cut_every else 0
        if part not in big:
            big[part] = _texture(int(w + offsets[-1] + 8), h, seed + 100 * part)
        m = np.float32([[1, 0, -off], [0, 1, 0]])
        yield cv2.warpAffine(big[part], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def jumping_square(seconds: float, period: float, seed: int):
    w, h = SIZE
    rng = np.random.default_rng(seed)
    side = h // 6
    places = rng.integers(side, [w - 2 * side, h - 2 * side], size=(int(seconds / period) + 2, 2))
    for k in range(int(seconds * FPS)):
        frame = np.full((h, w, 3), 90, np.uint8)
        x, y = places[int(k / FPS / period)]
        frame[y:y + side, x:x + side] = 255
        yield frame


def clips(seconds: float = 16.0) -> dict:
    """name -> (description, frame generator factory)."""
    n = int(seconds * FPS)
    return {
        "still": ("a still picture", lambda: pan(np.zeros(n), 1)),
        "very_slow_pan": ("a pan at 0.2 px/frame", lambda: pan(np.full(n, 0.2), 8)),
        "slow_pan": ("a pan at 0.5 px/frame", lambda: pan(np.full(n, 0.5), 2)),
        "medium_pan": ("a pan at 2 px/frame", lambda: pan(np.full(n, 2.0), 3)),
        "brisk_pan": ("a pan at 4 px/frame", lambda: pan(np.full(n, 4.0), 9)),
        "fast_pan": ("a pan at 8 px/frame", lambda: pan(np.full(n, 8.0), 4)),
        "very_fast_pan": ("a pan at 14 px/frame", lambda: pan(np.full(n, 14.0), 10)),
        "varying_pan": ("a pan whose speed swings between 0.5 and 11 px/frame every 4 s",
                        lambda: pan(5.75 - 5.25 * np.cos(np.arange(n) * 2 * np.pi / (4 * FPS)), 11)),
        "accelerating_pan": ("a pan from 0.2 to 8 px/frame", lambda: pan(np.linspace(0.2, 8.0, n), 5)),
        "cuts": ("a 1 px/frame pan with a hard cut every second", lambda: pan(np.full(n, 1.0), 6, cut_every=1.0)),
        "jumping_square": ("a square jumping twice a second", lambda: jumping_square(seconds, 0.5, 7)),
    }


def make(folder, names=None) -> list[Path]:
    """Write the synthetic clips into ``folder`` (those already there are kept); returns the
    reference set's files: the demo first, then the clips."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = [DEMO] if DEMO.is_file() else []
    for name, (_, frames) in clips().items():
        if names and name not in names:
            continue
        path = folder / f"{name}.mp4"
        if not path.is_file():
            _write(path, frames())
        out.append(path)
    return out
