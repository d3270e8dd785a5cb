"""Make the bundled demo video procedurally (so the project may redistribute it).

A ball bounces on a floor while a bar sweeps across the frame: every bounce is a sharp
deceleration (a motion accent, i.e. a visual beat).  The first half bounces once a second, the
second half twice a second, so the clip has a change of pace that the music should follow.

    python src/make_demo_video.py --out videos/demo.mp4 [--seconds 20 --fps 30]
"""
from __future__ import annotations

import argparse
import math

from vidscore import cli


def render_demo(out: str, seconds: float = 20.0, fps: int = 30, width: int = 640, height: int = 360) -> str:
    import cv2
    import numpy as np

    n = int(round(seconds * fps))
    floor = int(height * 0.85)
    radius = height // 12
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([
        (40 + 60 * xx / width).astype(np.uint8),
        (30 + 40 * yy / height).astype(np.uint8),
        np.full((height, width), 70, np.uint8),
    ], axis=-1)
    with cli.atomic_path(out) as tmp:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise cli.UserError(f"OpenCV cannot write mp4 files here ({out}); check the opencv install")
        for i in cli.progress(range(n), desc="demo video", unit="frame"):
            t = i / fps
            period = 1.0 if t < seconds / 2 else 0.5          # change of pace half way
            phase = (t % period) / period                     # 0 at each bounce
            height_frac = 4 * phase * (1 - phase)             # parabola: floor -> top -> floor
            cy = int(floor - radius - height_frac * (floor - 2 * radius - 20))
            cx = int(width * (0.2 + 0.6 * (0.5 + 0.5 * math.sin(2 * math.pi * t / 8))))
            frame = background.copy()
            cv2.rectangle(frame, (0, floor), (width, height), (60, 90, 60), -1)
            sweep = int((t * 80) % (width + 40)) - 20         # a slow bar: steady motion
            cv2.rectangle(frame, (sweep, 30), (sweep + 14, floor - 10), (200, 170, 90), -1)
            cv2.circle(frame, (cx, cy), radius, (40, 80, 230), -1)
            cv2.circle(frame, (cx - radius // 3, cy - radius // 3), radius // 4, (200, 220, 255), -1)
            writer.write(frame)
        writer.release()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="videos/demo.mp4", help="output video (default: videos/demo.mp4)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length in seconds (default 20)")
    ap.add_argument("--fps", type=int, default=30, help="frames per second (default 30)")
    args = ap.parse_args()
    if args.seconds <= 0 or args.fps <= 0:
        raise cli.UserError("--seconds and --fps must be positive")
    print(render_demo(args.out, args.seconds, args.fps))


if __name__ == "__main__":
    cli.run(main)
