"""CMT's training script, with its flags, onto the same code as ``main_cp.py --mode train``.

    cd src
    python train.py --name train_default -b 8 --gpus 0 1 2 3        # the original's data, dataset/lpd_5_prcem_mix_v8_10000.npz
    python train.py --name train_exp --train_data ../dataset/data.npz -b 8 --gpus 0 1
    python train.py --name finetune -p ../exp/loss_8_params.pt -e 10 # fine-tune a checkpoint

Checkpoints go to exp/<name>/, logs to logs/<name>.log (the repository's folders, from any
working folder).  Every other setting is the hyperparameter block of ``main_cp.py``, and any of
its flags may follow (``--preset small``, ``--max_len 2048``, ...).
"""
from __future__ import annotations

import argparse

from vidscore import cli
import main_cp
from vidscore import paths

ORIGINAL_DATA = "lpd_5_prcem_mix_v8_10000.npz"


def parse_args(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--name", help=f"experiment name: exp/<name>/, logs/<name>.log (default {main_cp.HP['name']})")
    ap.add_argument("-l", "--lr", type=float, help=f"initial learning rate (default {main_cp.HP['lr']})")
    ap.add_argument("-b", "--batch_size", type=int, help=f"songs per batch (default {main_cp.HP['batch_size']})")
    ap.add_argument("-p", "--path", help="start from this checkpoint: exp/<name>/last.pt resumes the run, "
                                         "any other checkpoint (e.g. the released loss_8_params.pt) is fine-tuned")
    ap.add_argument("-e", "--epochs", type=int, help=f"number of epochs (default {main_cp.HP['epochs']})")
    ap.add_argument("-t", "--train_data", default=f"../dataset/{ORIGINAL_DATA}",
                    help=f"training npz: the original's processed file (default dataset/{ORIGINAL_DATA}) "
                         "or one from midi2numpy_mix.py")
    ap.add_argument("-g", "--gpus", type=int, nargs="+", help="GPU ids (several: one process each)")
    args, rest = ap.parse_known_args(argv)
    hp = main_cp.parse_args(["--mode", "train", *rest])
    data = args.train_data
    if data == f"../dataset/{ORIGINAL_DATA}":
        data = str(paths.REPO / "dataset" / ORIGINAL_DATA)
    hp.update(train_data=data, **{k: v for k, v in (("name", args.name), ("lr", args.lr),
                                                     ("batch_size", args.batch_size), ("epochs", args.epochs))
                                  if v is not None})
    if args.gpus:
        hp.update(gid=",".join(str(g) for g in args.gpus))
    hp = main_cp.resolve_paths(hp)
    if args.path:
        ckpt = paths.repo_path(args.path)
        if not ckpt.is_file():
            raise cli.UserError(f"-p {args.path}: no such checkpoint")
        last = paths.repo_path(hp["exp_dir"]) / hp["name"] / "last.pt"
        if ckpt.resolve() == last.resolve():
            hp["resume"] = 1
        else:
            hp["init_ckpt"] = str(ckpt)
    return hp


def main() -> None:
    hp = parse_args()
    from vidscore.training import loop as training
    training.launch(hp)


if __name__ == "__main__":
    cli.run(main)
