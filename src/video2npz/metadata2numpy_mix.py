#!/usr/bin/env python
"""metadata.json -> the inference npz (SPEC section 6): rows under "input", plus tempo and duration.

    python src/video2npz/metadata2numpy_mix.py --video clip.mp4 --meta_data inference/clip_metadata.json --out_dir inference
    python src/video2npz/metadata2numpy_mix.py --video videos/ --meta_data inference/meta/ --is_path 1 --out_dir inference

``--is_path 1`` (BMT's flag): ``--video`` is a folder of videos and ``--meta_data`` the folder of their
``<name>_metadata.json`` (older ``<name>.json`` files are read too); one npz per video, a bad one does not stop the others.  ``--metadata`` (the
originals' spelling) is the same as ``--meta_data``.
"""
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402

from vidscore import cli  # noqa: E402
from vidscore import paths  # noqa: E402
from vidscore.video import metadata  # noqa: E402
from vidscore.video.pipeline import list_videos  # noqa: E402

REPO = _HERE.parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="metadata.json -> inference npz with one row per bar and per visual beat: "
        "[bar-beat, density, strength, i_beat, n_beat, p_beat] (key 'input'), plus 'tempo' and 'duration'.")
    p.add_argument("--video", default=None,
                   help="the video the metadata belongs to: names the npz <out_dir>/<video name>.npz "
                   "(default: named after the JSON), and picks its entry from a combined metadata file")
    p.add_argument("--meta_data", "--metadata", dest="meta_data", required=True,
                   help="metadata JSON written by video2metadata.py (a folder of them with --is_path 1)")
    p.add_argument("--out_dir", default=str(REPO / "inference"), help="output folder (default inference/)")
    p.add_argument("--is_path", type=int, choices=(0, 1), default=None,
                   help="BMT's flag: 1 = --video and --meta_data are folders, 0 = files "
                   "(default: decided by whether --video is a folder)")
    return p.parse_args(argv)


def convert_one(video: Path | None, meta_path: Path, out_dir: Path, stem: str) -> str:
    out = metadata.npz_path(out_dir, stem)
    cli.check_outputs([meta_path] + ([video] if video else []), [out], hint="choose another --out_dir")
    meta = metadata.load_metadata(meta_path, video.name if video else None)
    rows = metadata.metadata_to_rows(meta)
    metadata.save_npz(out, rows, meta["tempo"], meta["duration"])
    n_bars = int((rows[:, metadata.ROW_BARBEAT] == metadata.BAR_TOKEN).sum()) if len(rows) else 0
    return (f"{out}: {len(rows)} rows ({n_bars} bars, {len(rows) - n_bars} visual beats), "
            f"tempo {float(meta['tempo']):.2f} bpm")


def main(argv=None):
    args = parse_args(argv)
    video = paths.repo_path(args.video) if args.video else None
    meta_path, out_dir = paths.repo_path(args.meta_data), paths.repo_path(args.out_dir)
    folder = video is not None and video.is_dir()
    cli.check_out_dir(out_dir)
    if args.is_path == 1 and video is None:
        raise cli.UserError("--is_path 1 needs --video, the folder of the videos")
    if video is not None and not video.exists():
        raise cli.UserError(f"--video {video} does not exist; give the video the metadata was made from")
    if args.is_path == 1 and not folder:
        raise cli.UserError(f"--is_path 1: --video {args.video} must be a folder of videos")
    if args.is_path == 0 and folder:
        raise cli.UserError(f"--is_path 0: --video {args.video} is a folder; pass --is_path 1 or a video file")
    if not folder:
        stem = video.stem if video else meta_path.stem.removesuffix("_metadata")
        print(convert_one(video, meta_path, out_dir, stem))
        return 0
    if not meta_path.is_dir():
        raise cli.UserError(f"--meta_data {args.meta_data}: with a folder of videos give the folder of their JSON files")
    videos = list_videos(video)
    if not videos:
        raise cli.UserError(f"{video}: no video files in this folder")
    failed = []
    for v in videos:
        try:
            meta_file = metadata.metadata_path(meta_path, v.stem)
            if not meta_file.exists() and (meta_path / f"{v.stem}.json").exists():
                meta_file = meta_path / f"{v.stem}.json"
            print(convert_one(v, meta_file, out_dir, v.stem))
        except cli.UserError as e:
            failed.append(f"{v.name} ({e})")
    if failed:
        raise cli.UserError(f"{len(failed)} of {len(videos)} videos failed: " + "; ".join(failed))
    return 0


if __name__ == "__main__":
    cli.run(main)
