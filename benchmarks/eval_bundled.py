"""Evaluate the bundled model: the demo video and a few procedurally made ones, against the corpus.

    python benchmarks/eval_bundled.py [--songs 3] [--ckpt exp/bundled/model.pt]

Generates ``--songs`` songs per video with the bundled model, then runs src/evaluate.py's
metrics against the training corpus (dataset/music21.npz, `make corpus`).  Writes the report
to benchmarks/results/eval_bundled/ and a summary table (Markdown) to stdout and
benchmarks/results/eval_bundled.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
os.environ.setdefault("CMT_NO_PROGRESS", "1")

from vidscore.evaluation import report as evaluate  # noqa: E402
from vidscore.generation import job as pipeline  # noqa: E402
from make_demo_video import render_demo  # noqa: E402
from vidscore.model.cmt import load_checkpoint  # noqa: E402
from video_fixtures import write_accelerating, write_jumping_square  # noqa: E402

def make_videos(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    vids = [Path(shutil.copy(ROOT / "videos" / "demo.mp4", folder / "demo.mp4"))]
    vids.append(Path(render_demo(str(folder / "bounce_slow.mp4"), seconds=24, fps=25)))
    vids.append(Path(write_jumping_square(folder / "square_0p5s.mp4", fps=30, seconds=16, period=0.5).path))
    vids.append(Path(write_jumping_square(folder / "square_0p75s.mp4", fps=30, seconds=18, period=0.75).path))
    vids.append(Path(write_accelerating(folder / "pan_accelerating.mp4", fps=30, seconds=16).path))
    return vids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=3)
    ap.add_argument("--ckpt", default=str(pipeline.DEFAULT_CKPT))
    ap.add_argument("--reference", default=str(ROOT / "dataset" / "music21.npz"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "eval_bundled"))
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    videos = make_videos(out / "videos")
    model = load_checkpoint(args.ckpt).freeze()   # the traced step: the eager one's songs, faster
    opts = pipeline.Options(out_dir=str(out / "songs"), num_songs=args.songs, seed=0, render=False)
    pipeline.run(videos, model, opts, log=print)
    report = evaluate.evaluate(str(out / "songs"), reference=args.reference, out=str(out / "report"),
                               max_reference=200, seed=0)
    sets = {k: report[k]["aggregate"] for k in ("generated", "reference") if report.get(k)}
    (out.parent / "eval_bundled.json").write_text(json.dumps(sets, indent=1))
    md = (out / "report" / "report.md").read_text()
    print(md[:4000])

if __name__ == "__main__":
    main()
