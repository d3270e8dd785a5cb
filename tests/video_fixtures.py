"""Synthetic test videos written with OpenCV (mp4v), with their ground truth.

Shared by the video-analysis tests and any other test that needs a real video file.
Every writer returns the path it wrote; those with a ground truth return a small
dataclass holding it, which is itself path-like (``os.fspath``, ``Path(x)`` and
``str(x)`` give the file), so it can be passed wherever a path is expected.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

FOURCC = "mp4v"


def _writer(path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), fps, size)
    if not vw.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    return vw


def texture(width: int, height: int, seed: int = 0, blur: float = 3.0) -> np.ndarray:
    """A smooth random colour texture (BGR uint8): something optical flow can track."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), blur)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)


class _PathLike:
    path: Path

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


@dataclass(repr=False)
class JumpingSquare(_PathLike):
    path: Path
    fps: float
    n_frames: int
    jump_frames: list[int] = field(default_factory=list)  # first frame at each new place

    @property
    def jump_times(self) -> list[float]:
        return [k / self.fps for k in self.jump_frames]


def write_jumping_square(path, fps: float = 30, seconds: float = 6, period: float = 0.5,
                         size: tuple[int, int] = (640, 360), square: int = 60, seed: int = 1) -> JumpingSquare:
    """A white square on a still grey background, jumping to a new place every ``period`` s."""
    w, h = size
    n = int(round(fps * seconds))
    rng = np.random.default_rng(seed)
    n_places = int(np.ceil(seconds / period)) + 1
    margin = square
    xs = rng.integers(margin, w - margin - square, n_places)
    ys = rng.integers(margin, h - margin - square, n_places)
    vw = _writer(path, fps, size)
    jumps = []
    last_place = 0
    for k in range(n):
        place = int(np.floor(k / fps / period + 1e-9))
        if place != last_place:
            jumps.append(k)
            last_place = place
        frame = np.full((h, w, 3), 90, np.uint8)
        x, y = int(xs[place]), int(ys[place])
        frame[y : y + square, x : x + square] = 255
        vw.write(frame)
    vw.release()
    return JumpingSquare(Path(path), fps, n, jumps)


def write_static(path, fps: float = 30, seconds: float = 4, size: tuple[int, int] = (640, 360),
                 seed: int = 2) -> Path:
    """The same textured picture in every frame."""
    w, h = size
    img = texture(w, h, seed)
    vw = _writer(path, fps, size)
    for _ in range(int(round(fps * seconds))):
        vw.write(img)
    vw.release()
    return Path(path)


@dataclass(repr=False)
class Accelerating(_PathLike):
    path: Path
    fps: float
    n_frames: int
    speeds: np.ndarray  # horizontal displacement (pixels of the written frame) from frame k-1 to k


def write_accelerating(path, fps: float = 30, seconds: float = 8, size: tuple[int, int] = (640, 360),
                       v0: float = 0.25, v1: float = 6.0, seed: int = 3) -> Accelerating:
    """A texture panning left with a speed growing linearly from v0 to v1 pixels/frame."""
    w, h = size
    n = int(round(fps * seconds))
    speeds = np.linspace(v0, v1, n)
    speeds[0] = 0.0
    offsets = np.cumsum(speeds)
    big = texture(int(w + offsets[-1] + 8), h, seed)
    vw = _writer(path, fps, size)
    for k in range(n):
        m = np.float32([[1, 0, -offsets[k]], [0, 1, 0]])
        frame = cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        vw.write(frame)
    vw.release()
    return Accelerating(Path(path), fps, n, speeds)


def write_moving(path, fps: float = 30, seconds: float = 2, size: tuple[int, int] = (640, 360),
                 speed: float = 3.0, seed: int = 4) -> Path:
    """A texture panning at a constant speed (a plain valid video of any size)."""
    w, h = size
    n = int(round(fps * seconds))
    big = texture(int(w + speed * n + 8), h, seed)
    vw = _writer(path, fps, size)
    for k in range(n):
        x = int(round(speed * k))
        vw.write(np.ascontiguousarray(big[:, x : x + w]))
    vw.release()
    return Path(path)
