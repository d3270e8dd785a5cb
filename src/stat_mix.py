"""Fit a model's video -> class mapping to its training data and store it in its checkpoint.

    python src/stat_mix.py --ckpt exp/bundled/model.pt --in_place        # the bundled model
    python src/stat_mix.py --ckpt exp/x/loss_30_params.pt --out exp/x/calibrated.pt --data dataset/x.npz
    python src/stat_mix.py --rebuild_reference                            # re-analyse the reference set

The original's ``stat_mix.py`` fitted its thresholds "based on a set of videos" so that the
classes videos produce follow its training music's statistics.  This does the same for any
checkpoint (SPEC 5b, ``calibration.py``): the training data's distributions (bar density, Beat
strength per instrument, the tracks that carry the rhythm) come from the checkpoint
(``data_stats``, recorded by training and by ``export_checkpoint.py --data``) or from ``--data``;
the video side comes from the reference set's statistics (``src/vidscore/generation/calibration_reference.json``:
flow per bar and visual-beat weights of the demo and synthetic clips, see
``reference_videos.py``), so a fit needs no video analysis.  ``--rebuild_reference`` re-analyses
the reference set (flow features are cached) and rewrites that file.

Bar density is fitted by notes: the model first plays a few short songs at every density class
(``--response_songs``, about 15 s for the bundled model), and each reference bar gets the class
whose notes per bar match the data's bar at the same quantile (``calibration.
notes_matched_thresholds``).  ``--response_songs 0`` fits by onset positions only, as the
original did.

The checkpoint is written atomically to ``--out``; the input is overwritten only with
``--in_place``.  The released CMT checkpoint is refused: it keeps the original's thresholds.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from vidscore import cli
from vidscore.generation import calibrate, calibration

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="checkpoint to calibrate")
    ap.add_argument("--out", help="where to write the calibrated checkpoint (atomic; never the input "
                    "unless --in_place)")
    ap.add_argument("--in_place", action="store_true", help="overwrite --ckpt with the calibrated checkpoint")
    ap.add_argument("--data", help="training npz: (re)record its distributions instead of the checkpoint's")
    ap.add_argument("--reference", default=str(calibration.REFERENCE_FILE),
                    help="reference statistics JSON (default: the shipped src/vidscore/generation/calibration_reference.json)")
    ap.add_argument("--rebuild_reference", action="store_true",
                    help="re-analyse the reference videos and rewrite --reference first")
    ap.add_argument("--reference_dir", default=str(ROOT / ".cache" / "reference_videos"),
                    help="where the synthetic reference clips are written (default .cache/reference_videos)")
    ap.add_argument("--exact", action="store_true", help="--rebuild_reference: the original's 360p flow")
    ap.add_argument("--density_threshold", type=int, default=2,
                    help="fit for this --density_threshold (visual beats of a weaker original class are not forced)")
    ap.add_argument("--response_songs", type=int, default=8,
                    help="songs the model plays per density class to fit bar density by notes (0: by onset "
                         "positions, no generation)")
    args = ap.parse_args()
    if args.response_songs < 0:
        raise cli.UserError("--response_songs: give 0 or more songs")
    from vidscore import controls
    args.density_threshold = controls.parse_min_strength(args.density_threshold)   # the CLI's own check

    ref_path = Path(args.reference)
    if args.rebuild_reference:
        ref = calibrate.build_reference(Path(args.reference_dir), ref_path, args.exact)
        print(f"{ref_path}: {len(ref['videos'])} videos, {len(ref['flows'])} bars, {len(ref['weights'])} visual beats")
        if not args.ckpt:
            return
    if not args.ckpt:
        raise cli.UserError("--ckpt: name the checkpoint to calibrate (or only --rebuild_reference)")
    src = Path(args.ckpt)
    if not src.is_file():
        raise cli.UserError(f"{src} not found")
    if args.in_place == bool(args.out):
        raise cli.UserError("give either --out PATH or --in_place (overwrite --ckpt)")
    out = src if args.in_place else Path(args.out)
    cli.check_outputs([args.data, ref_path] + ([] if args.in_place else [src]), [out],
                      hint="choose another --out (inputs are never overwritten; --in_place rewrites --ckpt)")
    if not ref_path.is_file():
        raise cli.UserError(f"{ref_path} not found: run with --rebuild_reference")
    ref = calibration.load_reference(ref_path)

    stats, cal = calibrate.calibrate_checkpoint(src, out, ref, ref_path, args.data, args.density_threshold,
                                                 args.response_songs)
    print(calibrate.report(stats, cal, ref))
    print(f"{out}: calibration stored")


if __name__ == "__main__":
    cli.run(main)
