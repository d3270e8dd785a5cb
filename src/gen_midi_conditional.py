"""CMT's inference script, with its flags, onto the same code as ``main_cp.py --mode inference``.

    cd src
    python gen_midi_conditional.py -f "../inference/test.npz" -c "../exp/loss_8_params.pt" -n 5

``-f`` is a file, a folder or a glob pattern of video npz files (``video2npz/video2npz.sh``)
or videos.  As the original, it writes MIDI only: inference/<name>_<k>.mid (the original wrote
<npz path>_<k>.mid beside the npz); ``--render 1`` also renders audio and the video.  Any flag
of ``main_cp.py``'s hyperparameter block may follow (``--C 0.7``, ``--seed 3``, ...).
"""
from __future__ import annotations

import argparse
import glob

from vidscore import cli
import main_cp
from vidscore import paths

ORIGINAL_CKPT = "loss_8_params.pt"


def parse_args(argv=None) -> tuple[dict, list[str]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-f", "--files", required=True, help="input npz of a video (a glob pattern, a folder, or a video)")
    ap.add_argument("-c", "--ckpt", default=None,
                    help=f"checkpoint (default exp/{ORIGINAL_CKPT} if present, else the bundled model)")
    ap.add_argument("-g", "--gpus", help="id of the GPU; only one is needed")
    ap.add_argument("-n", "--num_songs", type=int, default=1, help="number of songs per video")
    args, rest = ap.parse_known_args(argv)
    hp = main_cp.parse_args(["--mode", "inference", "--render", "0", *rest])
    if args.gpus is not None:
        if not args.gpus.isnumeric():
            raise cli.UserError(f"-g {args.gpus}: give one GPU id (inference needs only one)")
        hp.update(gid=args.gpus)
    ckpt = args.ckpt
    if ckpt is None and (paths.REPO / "exp" / ORIGINAL_CKPT).is_file():
        ckpt = str(paths.REPO / "exp" / ORIGINAL_CKPT)
    hp.update(mode="inference", ckpt=ckpt or "", num_songs=args.num_songs)
    hp = main_cp.resolve_paths(hp)
    pattern = str(paths.repo_path(args.files))
    files = sorted(glob.glob(pattern)) or [pattern]   # no match: the path itself, for its one-line error
    return hp, files


def main() -> None:
    hp, files = parse_args()
    if hp.get("gid"):
        import os

        import torch
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", hp["gid"])
        hp["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        if hp["device"] == "cpu":
            print(f"note: -g {hp['gid']}: torch sees no GPU, so the songs are composed on the CPU", flush=True)
    main_cp.inference(hp, videos=files)         # one batch, as a folder: a bad file does not stop the others


if __name__ == "__main__":
    cli.run(main)
