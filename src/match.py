"""The retrieval baseline (SPEC section 7): the songs of a token library that best fit a video.

    python src/match.py inference/demo.npz dataset/music21.npz [--top 5]
    cd src && python match.py ../inference/test.npz ../dataset/lpd_5_prcem_mix_v8_10000.npz   # CMT's file works too

Scores every song by 1 / (MSE of per-bar density + MSE of per-position strength) against the
video's controls and prints the best ones.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from vidscore import cli


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video_npz", help="a video npz (src/video2npz/video2npz.sh, or inference/NAME.npz)")
    ap.add_argument("music_npz", help="a training npz (midi2numpy_mix.py / prepare_corpus.py)")
    ap.add_argument("--top", type=int, default=5, help="how many songs to print (default 5)")
    args = ap.parse_args()
    from vidscore import paths
    args.video_npz, args.music_npz = paths.repo_path(args.video_npz), paths.repo_path(args.music_npz)
    from vidscore.generation import retrieval
    from vidscore.music.representation import load_training_npz
    from vidscore.video.metadata import load_video_npz

    for p in (args.video_npz, args.music_npz):
        if not Path(p).is_file():
            raise cli.UserError(f"{p} not found")
    if args.top < 1:
        raise cli.UserError("--top must be at least 1")
    rows, _, _ = load_video_npz(args.video_npz)
    from vidscore.training import original_npz
    try:
        data = (original_npz.read(args.music_npz) if original_npz.is_original(args.music_npz)
                else load_training_npz(args.music_npz))
        x, seq_len = data["x"], data["seq_len"]
    except original_npz.OriginalNpzError as e:
        raise cli.UserError(str(e)) from None
    except Exception as e:  # noqa: BLE001
        raise cli.UserError(f"{args.music_npz} is not a training npz ({e})") from None
    meta = data.get("metadata") or [{} for _ in range(len(x))]
    songs = [x[i, :seq_len[i]] for i in range(len(x))]
    best = retrieval.rank(rows, songs, args.top)
    print(f"{'rank':>4}  {'score':>9}  song")
    for r, (i, score) in enumerate(best, 1):
        m = meta[i] if i < len(meta) else {}
        print(f"{r:>4}  {score:9.4f}  {m.get('id', i)}  {m.get('source', '')}")


if __name__ == "__main__":
    cli.run(main)
