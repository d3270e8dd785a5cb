"""The expensive part: decode once, run one Farneback flow per frame pair, in parallel.

The main thread decodes and scales frames; a pool of worker threads (two on a 2-core
machine) each runs one flow at a time with OpenCV limited to one thread, which is how
OpenCV's single-threaded Farneback kernel uses the cores best (it releases the GIL).
The result, :class:`FlowFeatures`, is what the cache stores: per grid sample the
directogram row and the motion speed, plus the facts about the file.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from vidscore import cli
from vidscore.video import decode, flow, scenes, timeline

#: Bump when anything that changes the cached features changes.
FEATURES_VERSION = 3


@dataclass
class FlowFeatures:
    """Per-grid-sample results of the flow pass (what the cache holds)."""

    fps: float  # grid rate
    directogram: np.ndarray  # (T, 128): row 0 = flow(f0, f0) = 0, row t = flow(f[t-1], f[t]); T = n_grid - 1
    motion: np.ndarray  # (T,): motion speed of flow(f[t], f[t+1]), 360p pixels per frame
    info: dict = field(default_factory=dict)  # width, height, n_frames, flow size, vfr, ...
    #: per decoded frame (not on the grid): "times" (s from the first frame), "sig" and "stats"
    #: (:func:`scenes.frame_signature`), "change" and "plain" (:func:`scenes.pair_change` from the
    #: frame before; 0 for the first): what scene cuts and the picture's mood read.  Empty for
    #: features made before they existed.
    frames: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.directogram) / self.fps


def default_workers() -> int:
    """Flow threads: one per core (two on the reference machine), at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def flow_settings(exact: bool) -> dict:
    """Everything that shapes the features of a given file (part of the cache key)."""
    p = flow.FarnebackParams().as_dict()
    p["levels"] = "floor(log2(min(h, w))) - 4"
    return {
        "version": FEATURES_VERSION,
        "mode": "exact" if exact else "fast",
        "base_height": decode.BASE_HEIGHT,
        "farneback": p,
        "bins": flow.N_BINS,
        "border": flow.BORDER,
        "speed_units": "360p pixels per frame",
        "moving_pixels": flow.MOVING_PIXELS,
        "scene_signals": scenes.signal_settings(),
    }


_malloc_tuned = False


def _tune_malloc() -> None:
    """Raise glibc's mmap/trim thresholds so per-frame buffers are reused, not re-faulted.

    The flow and histogram buffers (hundreds of kB each) are otherwise mmap'ed and
    unmapped for every frame pair; measured ~12% faster (SPEC 6).  Linux/glibc only.
    """
    global _malloc_tuned
    if _malloc_tuned or not sys.platform.startswith("linux"):
        return
    _malloc_tuned = True
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 64 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 256 * 1024 * 1024)


@contextlib.contextmanager
def _opencv_threads(n: int):
    old = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(old)


def extract(path, *, exact: bool = False, workers: int | None = None, progress: bool = True,
            scene_signals: bool = True) -> FlowFeatures:
    """Decode ``path`` once and compute the flow features of every frame pair, and with
    ``scene_signals`` (the default; off only to time what they cost) the per-frame signals of
    :mod:`scenes`.  A file OpenCV cannot decode at all (AV1 on most builds) is read through a
    copy ffmpeg makes (:func:`decode.ffmpeg_copy_for_analysis`).

    Raises :class:`cli.UserError` for files that are not usable videos.
    """
    try:
        return _extract(path, exact=exact, workers=workers, progress=progress, scene_signals=scene_signals)
    except decode.Undecodable as e:
        with tempfile.TemporaryDirectory(prefix="cmt-decode-") as folder:
            copy = decode.ffmpeg_copy_for_analysis(path, folder)
            if copy is None:      # ffmpeg cannot either: say which codec, and how to convert it
                raise decode.Undecodable(f"{e}{decode.undecodable_hint(path)}", e.props) from None
            features = _extract(copy, exact=exact, workers=workers, progress=progress, scene_signals=scene_signals)
        features.info["decoded_by"] = "ffmpeg (OpenCV cannot decode this file's codec)"
        if e.props.width > 0 and e.props.height > 0:          # the file's size, not the copy's
            features.info["width"], features.info["height"] = e.props.width, e.props.height
        return features


def _frame_bar(path, props, progress: bool):
    """The analysis' progress bar over the video's frames."""
    return cli.progress(total=props.frame_count or None, unit="frame", desc=os.path.basename(str(path))[:30],
                        disable=(not progress) or os.environ.get("CMT_NO_PROGRESS") == "1", leave=False)


def _extract(path, *, exact: bool, workers: int | None, progress: bool, scene_signals: bool = True) -> FlowFeatures:
    workers = workers or default_workers()
    _tune_malloc()
    with decode.VideoSource(path) as src:
        props = src.props
        times: list[float] = []
        speeds: list[float] = [0.0]
        rows: list[np.ndarray] = [np.zeros(flow.N_BINS)]
        max_pending = 3 * workers
        bar = _frame_bar(path, props, progress)
        pending: deque = deque()
        moving_max = 0.0
        per_frame: list[tuple] = []      # (change, plain, sig, stats) of each frame

        def collect(fut) -> None:
            nonlocal moving_max
            s, r, mv, *scene = fut.result()
            speeds.append(s)
            rows.append(r)
            per_frame.extend(scene)
            moving_max = max(moving_max, mv)
            bar.update(1)

        with bar, _opencv_threads(1), ThreadPoolExecutor(max_workers=workers,
                                                         thread_name_prefix="flow") as pool:
            try:
                prev = params = speed_scale = None     # (set at the first frame)
                for t, gray, *thumb in src.frames(exact, thumbs=scene_signals):
                    times.append(t)
                    if prev is not None:
                        also = scenes.pair_signals(thumb[0]) if scene_signals else None
                        pending.append(pool.submit(flow.pair_features, prev, gray, params, exact, speed_scale, also))
                        while len(pending) > max_pending:
                            collect(pending.popleft())
                    else:  # first frame: the analysis size is now known
                        params = flow.FarnebackParams.for_size(*src.size)
                        speed_scale = decode.BASE_HEIGHT / src.size[1]  # report speed in 360p pixels
                        if scene_signals:
                            per_frame.append((0.0, 0.0, *scenes.frame_signature(gray, thumb[0])))
                        bar.update(1)
                    prev = gray
                while pending:
                    collect(pending.popleft())
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
        last = times[-1] if times else float("nan")
        src.check_complete(len(times), last)
        size, shape = src.size, src.frame_shape
    return _assemble(path, props, times, rows, speeds, per_frame, size, shape, exact, moving_max)


def _assemble(path, props, times, rows, speeds, per_frame, size, shape, exact: bool, moving_max: float) -> FlowFeatures:
    """The features of the decoded frames: the flow's on the time grid, the scene signals per frame."""
    height, width = shape
    tl = timeline.build_timeline(np.array(times), props.fps, str(path))
    d_grid = timeline.to_grid(np.vstack(rows), tl)
    s_grid = timeline.to_grid(np.array(speeds), tl)
    info = {
        "width": width,
        "height": height,
        "n_frames": len(times),
        "source_fps": props.fps,
        "vfr": not tl.uniform,
        "flow_width": size[0],
        "flow_height": size[1],
        "mode": "exact" if exact else "fast",
        "moving_fraction_max": moving_max,
    }
    # The original's alignment: n = frames - 1 samples, sample 0 = flow(f0, f0) = 0,
    # sample t = flow(f[t-1], f[t]); the last frame only feeds the motion speed list.
    frames = {}
    if per_frame:
        change, plain, sig, stats = zip(*per_frame)
        frames = {"times": np.asarray(tl.times, np.float64), "sig": np.asarray(sig, np.float32),
                  "stats": np.asarray(stats, np.float32), "change": np.asarray(change, np.float32),
                  "plain": np.asarray(plain, np.float32)}
    return FlowFeatures(
        fps=tl.fps,
        directogram=np.ascontiguousarray(d_grid[:-1]),
        motion=np.ascontiguousarray(s_grid[1:]),
        info=info,
        frames=frames,
    )
