"""Decoding: one pass over a video file, grayscale frames at the analysis size, with timestamps.

OpenCV's FFmpeg backend reads the file.  Frames are converted to gray and scaled
straight to the analysis resolution (height 360 in exact mode, 180 in fast mode; a
smaller video is never upscaled), so a 4K input costs one decode and one resize per
frame, nothing more.  Each frame carries its presentation time in seconds, which is
what makes variable-frame-rate files come out right (see :mod:`video2npz.timeline`).

Inputs that are not videos, have no video stream, are empty or truncated raise
:class:`cli.UserError` with a one-line reason; OpenCV's and FFmpeg's own log lines are
silenced so that the user sees only that line.
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from vidscore.cli import UserError

#: The frame height the original analysed at ("visbeat" max_height=360).
BASE_HEIGHT = 360

# FFmpeg inside OpenCV prints e.g. "moov atom not found" on stderr for broken files;
# -8 is AV_LOG_QUIET.  Read by OpenCV when it first opens a file with FFmpeg.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

#: A decoded video shorter than this fraction of its announced length is "truncated".
_TRUNCATION_RATIO = 0.9


@dataclass(frozen=True)
class VideoProps:
    """What the container announces about the video stream."""

    width: int
    height: int
    fps: float  # nominal frame rate (CAP_PROP_FPS); may be an average for VFR files
    frame_count: int  # announced number of frames (an estimate for some containers)


def analysis_size(width: int, height: int, exact: bool) -> tuple[int, int]:
    """(w, h) of the frames the flow runs on: height 360 (exact) or 180 (fast).

    The 360p height is capped at the source height (never upscale); fast mode halves it.
    The width keeps the aspect ratio.
    """
    base_h = min(height, BASE_HEIGHT)
    h = base_h if exact else max(1, int(round(base_h / 2)))
    w = max(1, int(round(width * h / height)))
    return w, h


@contextlib.contextmanager
def _quiet_opencv():
    """Keep OpenCV's own warnings (e.g. 'backend can't be used to capture by name') off stderr."""
    try:
        logging = cv2.utils.logging
        old = logging.getLogLevel()
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    except AttributeError:  # very old builds
        yield
        return
    try:
        yield
    finally:
        logging.setLogLevel(old)


def describe_unreadable(path: Path) -> str:
    """Why OpenCV could not open ``path``, guessed from the first bytes (for the error)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as e:
        return f"cannot read the file ({e.strerror})"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "a WAV audio file, with no video stream"
    if head[:3] == b"ID3" or head[:4] in (b"fLaC",) or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "an audio file (MP3/FLAC), with no video stream"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return "an audio-only MPEG-4 file (M4A), with no video stream"
        return _describe_mp4(path)
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "a text file, not a video"
    return "not a video OpenCV can read (unknown format, damaged, or truncated)"


def _describe_mp4(path: Path) -> str:
    """Walk the top-level boxes of an MP4/MOV file to say what is wrong with it."""
    size = path.stat().st_size
    boxes: dict[bytes, tuple[int, int]] = {}
    cut = False
    with open(path, "rb") as f:
        pos = 0
        while pos + 8 <= size:
            f.seek(pos)
            hdr = f.read(16)
            n, kind = int.from_bytes(hdr[:4], "big"), hdr[4:8]
            if n == 1 and len(hdr) == 16:
                n = int.from_bytes(hdr[8:16], "big")
            elif n == 0:
                n = size - pos
            if n < 8:
                break
            boxes.setdefault(kind, (pos, n))
            if pos + n > size:
                cut = True
                break
            pos += n
        if b"moov" not in boxes:
            why = "cut short" if cut or b"mdat" in boxes else "damaged"
            return f"an MP4/MOV file without its index (moov): the file is {why} (truncated download or copy?)"
        mpos, mlen = boxes[b"moov"]
        f.seek(mpos)
        moov = f.read(min(mlen, 64 << 20))
    if b"trak" not in moov:
        return "an MP4/MOV file with no tracks: it holds zero frames"
    if b"vide" not in moov:
        return "an MP4/MOV file with no video track (audio only?)"
    if cut:
        return "an MP4/MOV file cut short (truncated)"
    return "an MP4/MOV file OpenCV cannot decode (unsupported codec, or damaged)"


class Undecodable(UserError):
    """OpenCV decoded no frame of the file: a codec this build lacks (AV1 on most), or damage.
    ``props``: what the container announced (its size survives where the codec is missing)."""

    def __init__(self, message: str, props: "VideoProps"):
        super().__init__(message)
        self.props = props


def ffmpeg_copy_for_analysis(path, folder) -> Path | None:
    """A copy of ``path`` that OpenCV can read, made by ffmpeg for a file OpenCV cannot decode:
    H.264, at most ``BASE_HEIGHT`` lines (the most the analysis reads), frame times kept (VFR
    too), no sound.  None where ffmpeg is missing or cannot decode it either."""
    import shutil
    import subprocess
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        return None
    out = Path(folder) / "decoded.mkv"
    res = subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-y", "-i", str(path), "-map", "0:v:0", "-an", "-sn",
                          "-vf", f"scale=-2:'2*trunc(min(ih,{BASE_HEIGHT})/2)'", "-fps_mode", "passthrough",
                          "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-pix_fmt", "yuv420p", str(out)],
                         capture_output=True, text=True, errors="replace")
    return out if res.returncode == 0 and out.is_file() and out.stat().st_size > 0 else None


def undecodable_hint(path) -> str:
    """What to add when OpenCV decodes no frame: the codec ffprobe sees, when it sees one (a
    codec this OpenCV build lacks, e.g. AV1 without hardware), and how to convert the file."""
    from vidscore import rendering
    try:
        codec = rendering.video_codec(path)
    except (rendering.MissingProgram, rendering.RenderError, ValueError):
        return ""
    if not codec:
        return ""
    return (f" (its video codec is {codec}, which OpenCV cannot decode here; if it plays elsewhere, convert it: "
            f"ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4)")


class VideoSource:
    """An opened video file; iterate :meth:`frames` once to decode it.

    Raises :class:`cli.UserError` when the file does not exist, is empty, or OpenCV
    cannot open a video stream in it (not a video, audio only, damaged header).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise UserError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise UserError(f"{self.path}: not a regular file (give a video file)")
        if self.path.stat().st_size == 0:
            raise UserError(f"{self.path}: the file is empty, not a video")
        with _quiet_opencv():
            cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise UserError(f"{self.path}: {describe_unreadable(self.path)}")
        width = int(round(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        height = int(round(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        if width <= 0 or height <= 0:
            cap.release()
            raise UserError(f"{self.path}: has no video stream (audio only?)")
        if not (math.isfinite(fps) and 0 < fps < 1000):
            fps = 0.0  # unknown: derived from the timestamps later
        frame_count = int(count) if math.isfinite(count) and 0 < count < 1e9 else 0
        self._cap = cap
        self.props = VideoProps(width, height, fps, frame_count)
        self.size: tuple[int, int] | None = None  # analysis (w, h), known after the first frame
        self.frame_shape: tuple[int, int] | None = None  # decoded (h, w)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def frames(self, exact: bool, thumbs: bool = False) -> Iterator[tuple]:
        """Yield (time in seconds or NaN if unknown, uint8 gray frame at the analysis size), and
        with ``thumbs`` a third item, the colour thumbnail of the decoded frame
        (:func:`vidscore.video.scenes.thumbnail`: scene cuts and the picture's mood read it).

        The size (:attr:`size`, (w, h)) follows :func:`analysis_size` of the decoded
        frames, which is what counts when a rotation flag turns the picture.
        """
        from vidscore.video.scenes import thumbnail
        cap = self._cap
        if cap is None:
            raise RuntimeError("video already closed")
        size = None
        while True:
            if not cap.grab():
                break
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                break
            t_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            if frame.ndim == 3:
                code = cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY
                gray = cv2.cvtColor(frame, code)
            else:
                gray = frame
            if gray.dtype != np.uint8:  # e.g. 16-bit sources
                gray = cv2.convertScaleAbs(gray, alpha=255.0 / float(np.iinfo(gray.dtype).max))
            if size is None:
                size = self.size = analysis_size(gray.shape[1], gray.shape[0], exact)
                self.frame_shape = gray.shape[:2]
            if gray.shape[1] != size[0] or gray.shape[0] != size[1]:
                gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
            t = t_ms / 1000.0 if math.isfinite(t_ms) else math.nan
            yield (t, gray, thumbnail(frame)) if thumbs else (t, gray)

    def check_complete(self, n_decoded: int, last_time: float) -> None:
        """Raise a UserError if fewer frames came out than the container announced."""
        p = self.props
        if n_decoded == 0:
            raise Undecodable(f"{self.path}: contains no decodable video frames", p)
        if n_decoded < 2:
            raise UserError(f"{self.path}: has a single frame; a video needs at least 2 frames for motion")
        if p.frame_count <= 0:
            return
        # Compare durations, not counts: VFR containers estimate counts from the peak rate.
        fps = p.fps if p.fps > 0 else None
        if fps is None:
            return
        announced = p.frame_count / fps
        decoded = (last_time + 1.0 / fps) if math.isfinite(last_time) and last_time > 0 else n_decoded / fps
        decoded = max(decoded, n_decoded / fps)
        if decoded < _TRUNCATION_RATIO * announced - 2.0 / fps:
            raise UserError(
                f"{self.path}: decoding stopped after {n_decoded} of {p.frame_count} frames "
                f"({decoded:.2f} s of {announced:.2f} s); the file looks truncated or damaged"
            )
