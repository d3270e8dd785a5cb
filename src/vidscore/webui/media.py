"""Uploaded videos and what the browser plays.

* :func:`upload_extension` and :func:`probe_video` decide whether an upload is a video: by its
  extension first, then by opening it with OpenCV (the decoder the analysis uses) and reading
  a frame.  Either failure is a :class:`cli.UserError` whose one line the page shows.
* The pipeline's result videos carry the ORIGINAL video stream, often MPEG-4 Part 2 from
  OpenCV, which Chromium cannot play; :func:`make_preview` writes an H.264 (yuv420p) + AAC copy
  for the page, while the download offers the original file.
* :func:`streams` / :func:`describe` report what ffprobe sees in a file.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vidscore import cli
from vidscore import rendering
from vidscore.generation.job import VIDEO_EXTS

PREVIEW_ENCODER = rendering.H264[1]


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int
    duration: float | None  # seconds; None when the container does not say


def upload_extension(filename: str) -> str:
    """The lower-case extension of an uploaded file name, if it is a video extension."""
    ext = Path(filename or "").suffix.lower()
    if not filename:
        raise cli.UserError("choose a video file to upload first")
    if ext not in VIDEO_EXTS:
        raise cli.UserError(f"{Path(filename).name!r} is not a video file: upload one of "
                            f"{', '.join(sorted(VIDEO_EXTS))}")
    return ext


def probe_video(path: str | os.PathLike, shown_name: str = "the file") -> VideoInfo:
    """Open ``path`` with OpenCV and read one frame; raise UserError when that fails."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        ok = cap.isOpened()
        frame_ok, frame = cap.read() if ok else (False, None)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) if ok else 0.0
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if ok else 0
    finally:
        cap.release()
    if not (ok and frame_ok and frame is not None and fps > 0):
        raise cli.UserError(f"{shown_name} is not a video that can be read (no video frames found); "
                            "upload a video file such as .mp4 or .mov")
    h, w = frame.shape[:2]
    duration = frames / fps if frames > 0 else None
    return VideoInfo(width=int(w), height=int(h), fps=fps, frames=frames, duration=duration)


def missing_tools() -> list[str]:
    """What the soundtrack app needs and cannot find, each with how to get it (empty: all there)."""
    missing = []
    for prog in ("ffmpeg", "ffprobe", "fluidsynth"):
        if shutil.which(prog) is None:
            missing.append(f"{prog} (install with: {rendering.INSTALL})")
    try:
        rendering.find_soundfont()
    except rendering.MissingProgram as e:
        missing.append(str(e))
    if shutil.which("ffmpeg") and not has_encoder(PREVIEW_ENCODER):
        missing.append(f"an ffmpeg built with {PREVIEW_ENCODER} (Debian's ffmpeg package has it)")
    return missing


def has_encoder(name: str) -> bool:
    res = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True)
    return any(line.split()[1:2] == [name] for line in res.stdout.splitlines() if line.strip())


def make_preview(src: str | os.PathLike, dst: str | os.PathLike) -> str:
    """Write ``dst``: ``src`` re-encoded as H.264 (yuv420p, even size) + AAC in a fast-start MP4."""
    ffmpeg = rendering.need("ffmpeg")
    with cli.atomic_path(dst) as tmp:
        res = subprocess.run(
            [ffmpeg, "-v", "error", "-y", "-i", str(src), "-map", "0:v:0", "-map", "0:a:0?",
             "-vf", rendering.EVEN_SIZE, *rendering.H264, "-crf", "23", "-c:a", "aac", "-b:a", "160k",
             "-movflags", "+faststart", tmp],
            capture_output=True, text=True, errors="replace")
        if res.returncode != 0:
            raise rendering.RenderError(f"ffmpeg could not make the browser preview: {rendering.reason(res.stderr)}")
    return str(dst)


def streams(path: str | os.PathLike) -> list[dict]:
    """ffprobe's stream list for ``path``."""
    ffprobe = rendering.need("ffprobe")
    res = subprocess.run([ffprobe, "-v", "error", "-print_format", "json", "-show_streams", str(path)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"ffprobe cannot read {path}")
    return json.loads(res.stdout).get("streams", [])


def describe(path: str | os.PathLike) -> dict:
    """{"video": codec, "audio": codec or None, "sample_rate", "duration"} of a media file."""
    info = {"video": None, "audio": None, "sample_rate": None, "duration": None}
    for s in streams(path):
        kind = s.get("codec_type")
        if kind == "video" and info["video"] is None:
            info["video"] = s.get("codec_name")
            if s.get("duration"):
                info["duration"] = round(float(s["duration"]), 3)
        elif kind == "audio" and info["audio"] is None:
            info["audio"] = s.get("codec_name")
            info["sample_rate"] = int(s["sample_rate"]) if s.get("sample_rate") else None
    return info
