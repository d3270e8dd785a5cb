"""Fit a model's video -> class mapping to its training data and store it in its checkpoint.

    python src/stat_mix.py --ckpt exp/bundled/model.pt --in_place        # the bundled model
    python src/stat_mix.py --ckpt exp/x/loss_30_params.pt --out exp/x/calibrated.pt --data dataset/x.npz
    python src/stat_mix.py --rebuild_reference                            # re-analyse the reference set

The original's ``stat_mix.py`` fitted its thresholds "based on a set of videos" so that the
classes videos produce follow its training music's statistics.  This does the same for any
checkpoint (SPEC 5b, ``calibration.py``): the training data's distributions (bar density, Beat
strength per instrument, the tracks that carry the rhythm) come from the checkpoint
(``data_stats``, recorded by training and by ``export_checkpoint.py --data``) or from ``--data``;
the video side comes from the reference set's statistics (``src/calibration_reference.json``:
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
import json
from pathlib import Path

import numpy as np

import calibration
import cli
from video2npz import metadata as M

ROOT = Path(__file__).resolve().parents[1]


def build_reference(folder: Path, out: Path, exact: bool = False) -> dict:
    """Analyse the reference set (cached flow features) and write its pooled statistics."""
    import reference_videos
    from video2npz import analyse_video

    videos = reference_videos.make(folder)
    flows, weights, listing = [], [], []
    for v in cli.progress(videos, desc="reference set", unit="video"):
        meta = analyse_video(str(v), exact=exact, progress=False)
        f = [float(x) for x in meta["flow_magnitude_per_bar"]]
        w = [float(b["weight"]) for b in meta["vbeats"]]
        flows += f
        weights += w
        listing.append({"video": v.name, "duration": round(float(meta["duration"]), 2),
                        "tempo": round(float(meta["tempo"]), 2), "bars": len(f), "beats": len(w)})
    ref = {"about": "calibration reference set (src/reference_videos.py): flow per bar (360p pixels per frame) "
                    "and visual-beat weights pooled over its videos, analysed with "
                    + ("the exact 360p flow" if exact else "the default 180p flow"),
           "videos": listing, "flows": flows, "weights": weights}
    cli.write_text_atomic(out, json.dumps(ref, indent=1))
    return ref


def class_shares(values, thresholds, n: int) -> np.ndarray:
    c = np.bincount([M.classify(v, thresholds) for v in values], minlength=n).astype(float)
    return c / max(c.sum(), 1)


def report(stats: dict, cal: dict, ref: dict) -> str:
    dens = np.asarray(stats["bar_density"], float)
    dens /= max(dens.sum(), 1)
    lines = ["bar density class (onsets per bar): data share | reference videos, calibrated | original"]
    cal_s = class_shares(ref["flows"], cal["density_thresholds"], calibration.N_DENSITY)
    org_s = class_shares(ref["flows"], M.DENSITY_THRESHOLDS, calibration.N_DENSITY)
    for k in range(calibration.N_DENSITY):
        if dens[k] or cal_s[k] or org_s[k]:
            lines.append(f"  {k:2d}: {100 * dens[k]:5.1f} % | {100 * cal_s[k]:5.1f} % | {100 * org_s[k]:5.1f} %")
    mean = lambda s: float((np.arange(len(s)) * s).sum())  # noqa: E731
    lines.append(f"  mean onsets per bar: data {mean(dens):.2f}, calibrated {mean(cal_s):.2f}, original {mean(org_s):.2f}")
    resp = cal.get("density_response")
    if resp and stats.get("bar_notes"):
        notes = np.asarray(stats["bar_notes"], float)
        asked = float(np.dot(cal_s, resp))
        lines.append(f"  fitted by {cal.get('density_fit', 'positions')}: notes per bar the model plays per class "
                     + " ".join(f"{k}:{r:.1f}" for k, r in enumerate(resp) if cal_s[k] or dens[k]))
        lines.append(f"  mean notes per bar: data {float((np.arange(len(notes)) * notes).sum() / max(notes.sum(), 1)):.1f}, "
                     f"the model on the reference videos, calibrated (expected) {asked:.1f}")
    pooled = calibration.pooled_strength(stats, cal["forced_tracks"])
    pooled = pooled / max(pooled.sum(), 1)
    kept = [w for w in ref["weights"] if w >= cal["strength_thresholds"][0]]
    s_cal = class_shares(kept, cal["strength_thresholds"], calibration.N_STRENGTH)
    s_org = class_shares(kept, M.STRENGTH_THRESHOLDS, calibration.N_STRENGTH)
    lines.append(f"forced tracks {cal['forced_tracks']}; strength clamp {cal['strength_max']}")
    lines.append("strength of the kept visual beats: data share (forced tracks) | calibrated | original")
    for k in range(1, calibration.N_STRENGTH):
        d = pooled[k] if k < len(pooled) else 0.0
        if d or s_cal[k] or s_org[k]:
            lines.append(f"  {k:2d}: {100 * d:5.1f} % | {100 * s_cal[k]:5.1f} % | {100 * s_org[k]:5.1f} %")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="checkpoint to calibrate")
    ap.add_argument("--out", help="where to write the calibrated checkpoint (atomic; never the input "
                    "unless --in_place)")
    ap.add_argument("--in_place", action="store_true", help="overwrite --ckpt with the calibrated checkpoint")
    ap.add_argument("--data", help="training npz: (re)record its distributions instead of the checkpoint's")
    ap.add_argument("--reference", default=str(calibration.REFERENCE_FILE),
                    help="reference statistics JSON (default: the shipped src/calibration_reference.json)")
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
    import controls
    args.density_threshold = controls.parse_min_strength(args.density_threshold)   # the CLI's own check

    ref_path = Path(args.reference)
    if args.rebuild_reference:
        ref = build_reference(Path(args.reference_dir), ref_path, args.exact)
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

    import torch
    from model import CHECKPOINT_FORMAT, model_from_checkpoint, read_checkpoint
    obj = read_checkpoint(src)
    if not (isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT):
        raise cli.UserError(f"{src} is not one of our checkpoints (the released CMT checkpoint keeps the "
                                "original's thresholds, fitted for its LPD data)")
    vocab = dict(obj.get("vocab") or {})
    if args.data:
        from training import data_preset, load_data
        data = load_data(args.data)
        preset = (obj.get("config") or {}).get("preset", "cmt")
        if data_preset(data) != preset:
            raise cli.UserError(f"--data {args.data} is {data_preset(data)} data but {src} is a {preset} model; "
                                "give the data it was trained on")
        vocab["data_stats"] = calibration.data_stats(data, np.flatnonzero(data["split"] == 0))
    stats = vocab.get("data_stats")
    if not stats:
        raise cli.UserError(f"{src} records no training-data statistics: pass --data TRAINING.npz")
    response = None
    if args.response_songs and stats.get("bar_notes"):
        import compute
        compute.thread_policy(0)
        response = calibration.density_response(model_from_checkpoint(obj, src).freeze(), songs=args.response_songs)
    elif args.response_songs:
        print(f"{src}: its data statistics have no notes per bar (older checkpoint): bar density fitted by "
              "onset positions; pass --data TRAINING.npz to fit by notes")
    cal = calibration.fit(stats, ref["flows"], ref["weights"], args.density_threshold,
                          reference={"file": ref_path.name, "videos": [v["video"] for v in ref.get("videos", [])],
                                     "bars": len(ref["flows"]), "beats": len(ref["weights"])},
                          response=response)
    vocab["calibration"] = cal
    obj["vocab"] = vocab
    with cli.atomic_path(out) as tmp:
        torch.save(obj, tmp)
    print(report(stats, cal, ref))
    print(f"{out}: calibration stored")


if __name__ == "__main__":
    cli.run(main)
