#!/usr/bin/env python
"""Analyse a video (or a folder of videos): visual beats, visual tempo, motion per bar.

Writes metadata.json as in SPEC section 6 (one JSON per video for a folder).

    python src/video2npz/video2metadata.py --video clip.mp4 --meta_data inference/clip_metadata.json
    python src/video2npz/video2metadata.py --video videos/ --meta_data inference/meta/
"""
import os
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402

from vidscore import cli  # noqa: E402
from vidscore.video import analysis, metadata, pipeline  # noqa: E402

REPO = _HERE.parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Video -> metadata.json: visual beats (times, bar, tick, weight), visual tempo, "
        "and the optical-flow motion speed per bar (SPEC section 6).")
    p.add_argument("--video", required=True, help="a video file, or a folder of videos")
    p.add_argument("--meta_data", default=None,
                   help="output JSON (a folder when --video is a folder); "
                   "default inference/<video name>_metadata.json, or inference/ for a folder")
    p.add_argument("--is_tempo", type=int, choices=(0, 1), default=0,
                   help="1: use --my_tempo instead of the tempo estimated from the video")
    p.add_argument("--my_tempo", type=float, default=None, help="user tempo in bpm (with --is_tempo 1)")
    p.add_argument("--is_path", nargs="?", const=1, default=None, type=int, choices=(0, 1),
                   help="accepted for compatibility with BMT; the path itself decides file or folder")
    p.add_argument("--exact", action="store_true",
                   help="optical flow on 360p frames, reproducing the original (about 4x slower); "
                   "default: 180p flow, which keeps the beats")
    p.add_argument("--visualize", action="store_true",
                   help="also write a PNG (envelope, chosen beats, flow per bar) beside each JSON")
    p.add_argument("--workers", type=int, default=None, help="optical-flow threads (default: one per core)")
    p.add_argument("--cache_dir", default=None,
                   help="feature cache folder (default $CMT_CACHE_DIR or .cache/video2npz)")
    p.add_argument("--no_cache", action="store_true", help="neither read nor write the feature cache")
    return p.parse_args(argv)


def _user_tempo(args):
    if args.is_tempo == 1:
        if args.my_tempo is None:
            raise cli.UserError("--is_tempo 1 needs --my_tempo BPM")
        return analysis.check_tempo(args.my_tempo)
    if args.my_tempo is not None:
        raise cli.UserError("--my_tempo is used only with --is_tempo 1")
    return None


def _outputs(out_json: Path, args) -> list[Path]:
    return [out_json] + ([out_json.with_suffix(".png")] if args.visualize else [])


def _analyse_one(video: Path, out_json: Path, args, tempo) -> str:
    cli.check_name_lengths(_outputs(out_json, args), video.name)
    a = analysis.analyse(video, exact=args.exact, tempo=tempo, cache_dir=args.cache_dir,
                         use_cache=not args.no_cache, workers=args.workers)
    meta = a.metadata
    pipeline.write_json(out_json, meta)
    if args.visualize:
        from vidscore.video import visualize

        visualize.plot_analysis(a, out_json.with_suffix(".png"))
    return (f"{video.name}: {len(meta['vbeats'])} visual beats, tempo {meta['tempo']:.2f} bpm "
            f"({meta['tempo_source']}), {len(meta['flow_magnitude_per_bar'])} bars, "
            f"{meta['duration']:.2f} s -> {out_json}")


def main(argv=None):
    args = parse_args(argv)
    if args.workers is not None and args.workers < 1:
        raise cli.UserError("--workers must be at least 1")
    tempo = _user_tempo(args)
    from vidscore import paths
    src = paths.repo_path(args.video)                  # videos/..., inference/...: the repository's folders
    meta_folder = bool(args.meta_data) and args.meta_data.endswith(("/", os.sep))   # "out/": a folder, made
    if args.meta_data:
        args.meta_data = str(paths.repo_path(args.meta_data))
    if not src.exists():
        raise cli.UserError(f"{src}: no such file or folder")
    if src.is_dir():
        videos = pipeline.list_videos(src)
        if not videos:
            raise cli.UserError(f"{src}: no video files in this folder "
                                f"(looked for {', '.join(sorted(pipeline.VIDEO_EXTENSIONS))})")
        out_dir = Path(args.meta_data) if args.meta_data else REPO / "inference"
        if out_dir.suffix.lower() == ".json" or out_dir.is_file():
            raise cli.UserError(f"--meta_data {out_dir}: give a folder when --video is a folder")
        cli.check_outputs(videos, [o for v in videos for o in _outputs(metadata.metadata_path(out_dir, v.stem), args)],
                          hint="choose another --meta_data folder")
        cli.check_out_dir(out_dir, "--meta_data")
        failed = []
        for v in videos:
            try:
                print(_analyse_one(v, metadata.metadata_path(out_dir, v.stem), args, tempo))
            except cli.UserError as e:
                failed.append(f"{v.name} ({e})")
        if failed:
            raise cli.UserError(f"{len(failed)} of {len(videos)} videos failed: " + "; ".join(failed))
        return 0
    out = Path(args.meta_data) if args.meta_data else metadata.metadata_path(REPO / "inference", src.stem)
    if out.is_dir() or meta_folder:
        out = metadata.metadata_path(out, src.stem)
    cli.check_outputs([src], _outputs(out, args), hint="choose another --meta_data")
    cli.check_out_dir(out.parent, "--meta_data folder")
    print(_analyse_one(src, out, args, tempo))
    return 0


if __name__ == "__main__":
    cli.run(main)
