#!/usr/bin/env python
"""metadata.json -> the inference npz (SPEC section 6): rows under "input", plus tempo and duration.

    python src/video2npz/metadata2numpy_mix.py --video clip.mp4 --meta_data inference/clip.json --out_dir inference
"""
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402

import cli  # noqa: E402
from video2npz import metadata  # noqa: E402

REPO = _HERE.parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="metadata.json -> inference npz with one row per bar and per visual beat: "
        "[bar-beat, density, strength, i_beat, n_beat, p_beat] (key 'input'), plus 'tempo' and 'duration'.")
    p.add_argument("--video", default=None,
                   help="the video the metadata belongs to: names the npz <out_dir>/<video name>.npz "
                   "(default: named after the JSON), and picks its entry from a combined metadata file")
    p.add_argument("--meta_data", required=True, help="metadata JSON written by video2metadata.py")
    p.add_argument("--out_dir", default=str(REPO / "inference"), help="output folder (default inference/)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    video_name = Path(args.video).name if args.video else None
    stem = Path(args.video).stem if args.video else Path(args.meta_data).stem
    out = Path(args.out_dir) / f"{stem}.npz"
    cli.check_outputs([args.meta_data, args.video], [out], hint="choose another --out_dir")
    cli.check_out_dir(args.out_dir)
    meta = metadata.load_metadata(args.meta_data, video_name)
    rows = metadata.metadata_to_rows(meta)
    metadata.save_npz(out, rows, meta["tempo"], meta["duration"])
    n_bars = int((rows[:, 0] == metadata.BAR_TOKEN).sum()) if len(rows) else 0
    print(f"{out}: {len(rows)} rows ({n_bars} bars, {len(rows) - n_bars} visual beats), "
          f"tempo {float(meta['tempo']):.2f} bpm")
    return 0


if __name__ == "__main__":
    cli.run(main)
