"""What stat_mix.py does: fit a checkpoint's calibration and store it, build the reference set's
statistics, and report the fit against the data (SPEC 5b; the maths is in calibration.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vidscore import cli
from vidscore.generation import calibration
from vidscore.generation import response as response_mod
from vidscore.video import metadata as M


def build_reference(folder: Path, out: Path, exact: bool = False) -> dict:
    """Analyse the reference set (cached flow features) and write its pooled statistics."""
    from vidscore.generation import reference_videos
    from vidscore.video import analyse_video

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


def calibrate_checkpoint(src: Path, out: Path, ref: dict, ref_path: Path, data: str | None,
                         density_threshold: int, response_songs: int) -> tuple[dict, dict]:
    """Fit checkpoint ``src``'s calibration (its data statistics, or ``data``'s; the model's density
    response over ``response_songs`` songs per class unless 0) and write it with the calibration to
    ``out`` atomically; returns ``(stats, calibration)``."""
    import torch
    from vidscore.model.cmt import CHECKPOINT_FORMAT, model_from_checkpoint, read_checkpoint
    obj = read_checkpoint(src)
    if not (isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT):
        raise cli.UserError(f"{src} is not one of our checkpoints (the released CMT checkpoint keeps the "
                                "original's thresholds, fitted for its LPD data)")
    vocab = dict(obj.get("vocab") or {})
    if data:
        from vidscore.training.loop import data_preset, load_data
        data = load_data(data)
        preset = (obj.get("config") or {}).get("preset", "cmt")
        if data_preset(data) != preset:
            raise cli.UserError(f"--data {data} is {data_preset(data)} data but {src} is a {preset} model; "
                                "give the data it was trained on")
        vocab["data_stats"] = calibration.data_stats(data, np.flatnonzero(data["split"] == 0))
    stats = vocab.get("data_stats")
    if not stats:
        raise cli.UserError(f"{src} records no training-data statistics: pass --data TRAINING.npz")
    response = None
    if response_songs and stats.get("bar_notes"):
        from vidscore import compute
        compute.thread_policy(0)
        response = response_mod.density_response(model_from_checkpoint(obj, src).freeze(), songs=response_songs)
    elif response_songs:
        print(f"{src}: its data statistics have no notes per bar (older checkpoint): bar density fitted by "
              "onset positions; pass --data TRAINING.npz to fit by notes")
    cal = calibration.fit(stats, ref["flows"], ref["weights"], density_threshold,
                          reference={"file": ref_path.name, "videos": [v["video"] for v in ref.get("videos", [])],
                                     "bars": len(ref["flows"]), "beats": len(ref["weights"])},
                          response=response)
    vocab["calibration"] = cal
    obj["vocab"] = vocab
    with cli.atomic_path(out) as tmp:
        torch.save(obj, tmp)
    return stats, cal
