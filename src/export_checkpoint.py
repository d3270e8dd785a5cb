"""Export a checkpoint for shipping: weights only (no optimizer state), optionally in fp16.

    python src/export_checkpoint.py --ckpt exp/bundled/loss_130_params.pt --out exp/bundled/model.pt --half

Works on our checkpoints and on the released CMT file (which it converts to our format).  The
checkpoint keeps its provenance (``--data`` records that corpus's checksum and sources) and holds
no absolute path of the machine that made it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from vidscore import cli


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="checkpoint to export")
    ap.add_argument("--out", required=True, help="where to write the exported checkpoint")
    ap.add_argument("--half", action="store_true", help="store floating-point weights in fp16 (half the size)")
    ap.add_argument("--data", help="training npz: (re)record the labels it was trained with (instruments, "
                    "genres, keys) and its distributions for calibration (bar density, Beat strength per "
                    "instrument, rhythm tracks: see src/stat_mix.py) in the checkpoint's vocabulary")
    ap.add_argument("--default_genre", help="the genre inference uses when none is chosen (a genre of the "
                    "training data; default: the checkpoint's, or with --data the commonest of the data)")
    args = ap.parse_args()
    from vidscore.model.cmt import load_checkpoint, save_checkpoint

    src, out = Path(args.ckpt), Path(args.out)
    if not src.is_file():
        raise cli.UserError(f"{src} not found")
    cli.check_outputs([src, args.data], [out], hint="--out must differ from --ckpt and --data (inputs are never "
                      "overwritten)")
    model = load_checkpoint(src)
    info = dict(model.checkpoint_info or {})
    if args.data:
        import numpy as np

        from vidscore.generation import calibration
        from vidscore.training.loop import check_representation, label_vocab, load_data
        data = load_data(args.data)
        check_representation(model, data, src, "--ckpt")
        train_idx = np.flatnonzero(data["split"] == 0)
        model.vocab = {**(model.vocab or {}), **label_vocab(data, train_idx, default_genre=args.default_genre),
                       "data_stats": calibration.data_stats(data, train_idx)}
    elif args.default_genre:
        from vidscore import constants as D
        try:
            gid = D.genre_id(args.default_genre)
        except KeyError:
            raise cli.UserError(f"--default_genre {args.default_genre!r} is not a genre "
                                f"({', '.join(D.GENRES[1:])})") from None
        known = (model.vocab or {}).get("genres")
        if known is not None and gid not in known:
            raise cli.UserError(f"--default_genre {D.GENRES[gid]}: the checkpoint was trained on "
                                f"{', '.join(D.GENRES[g] for g in known)}")
        model.vocab = {**(model.vocab or {}), "default_genre": gid}
    from vidscore.training import provenance
    if args.data:     # the corpus it was trained on: its checksum and sources (the rest as trained)
        prov = provenance.provenance(data, args.data)
        trained = (model.vocab or {}).get("provenance") or {}
        model.vocab["provenance"] = {**prov, **{k: trained[k] for k in ("code_commit", "command", "fine_tuned_from")
                                                 if k in trained}}
    extra = provenance.portable({**(info.get("extra") or {}), "exported_from": src.name})
    save_checkpoint(out, model, vocab=provenance.portable(model.vocab), epoch=info.get("epoch"),
                    step=info.get("step"), val_loss=info.get("val_loss"), extra=extra, half=args.half)
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    cli.run(main)
