"""Is the music still music under the video's control?  (docs/calibration.md, "Control and music
quality", issue 19)

    python benchmarks/bench_quality.py [--ckpt exp/bundled/model.pt] [--songs 16] [--seed 1]
                                       [--data dataset/music21.npz] [--out benchmarks/results]

A fixed set of videos -- the demo and synthetic clips of slow, fast and accelerating motion
and of hard cuts (made here, unlike the calibration's reference set, with other speeds and
seeds) -- is analysed once; for each video ``--songs`` songs are generated (one batch, same
seed) under each setting:

* ``no control``: C 0 and no forced beats (``--C 0 --density_threshold 99``): the model's own music;
* ``before``: the control as it was before calibration -- the original's thresholds and forced
  tracks, and the sampler that does not keep the Bar's density count-down;
* ``original thresholds``: today's sampler with the original's thresholds (``--thresholds original``);
* ``calibrated``: the default pipeline (the checkpoint's calibration, C 0.7);
* ``calibrated, C 1``: the same with ``--C 1`` (how often bars realise the video's density).

Per setting, over all songs of all videos (mean): PCHE 1-bar and 4-bar, GPS, notes per bar,
polyphony per track (notes per onset of each instrument), the share of pitch mass in the
song's estimated key (Krumhansl, ``vidscore.music.representation.estimate_key``, natural minor
for minor keys), and against each setting's own video rows the hit rate on forced beats, the density
error and share of bars that realise the video's density, and the strength error.  The
training data (``--data``, 200 songs) is measured the same way where it applies.  Metrics are
``src/vidscore/evaluation/metrics.py``'s.  Writes ``<out>/quality.json``, ``<out>/quality.md``
(the table of docs/calibration.md) and ``<out>/quality.png``.  Runs on one thread.

The music section (issue 27, ``benchmarks/music_quality.py``, docs/quality_benchmark.md; it runs
first, ``--music_only`` runs it alone, ``--genre_songs 0`` skips it) composes as the CLI does, with the defaults and
with each ``--genre``, for ``--ckpt`` and ``--compare_ckpt``, and measures PCHE, GPS, SI,
repetition, kit share, drums throughout, tracks used and how separable the genres are, against
``--reference``; it writes ``<out>/quality_music.{json,md,png}``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "benchmarks")]
os.environ.setdefault("CMT_NO_PROGRESS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidscore.generation import calibration  # noqa: E402
from vidscore import constants as D  # noqa: E402
from vidscore.evaluation import report as evaluate  # noqa: E402
from vidscore.generation import generate as generation  # noqa: E402
from vidscore.evaluation import metrics  # noqa: E402
from vidscore.generation import job as pipeline  # noqa: E402
from vidscore.generation import reference_videos as RV  # noqa: E402
from vidscore.music import representation  # noqa: E402
from bench_controls import in_scale_share  # noqa: E402
import music_quality  # noqa: E402
from vidscore.model.cmt import load_checkpoint  # noqa: E402

T0 = time.perf_counter()
TRACKS = {D.DRUMS: "Drums", D.PIANO: "Piano", D.GUITAR: "Guitar", D.BASS: "Bass", D.STRINGS: "Strings"}
SETTINGS = ("no control", "before", "original thresholds", "calibrated", "calibrated, C 1")


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", flush=True)


def make_videos(folder: Path) -> dict[str, Path]:
    """The benchmark's videos (not the calibration's reference clips: other speeds and seeds)."""
    n = 12 * RV.FPS
    clips = {
        "slow": lambda: RV.pan(np.full(n, 0.3), 21),
        "fast": lambda: RV.pan(np.full(n, 6.0), 22),
        "accelerating": lambda: RV.pan(np.linspace(0.5, 10.0, n), 23),
        "cuts": lambda: RV.pan(np.full(n, 2.0), 24, cut_every=0.7),
    }
    out = {"demo": RV.DEMO}
    folder.mkdir(parents=True, exist_ok=True)
    for name, frames in clips.items():
        path = folder / f"{name}.mp4"
        if not path.is_file():
            RV._write(path, frames())
        out[name] = path
    return out


def plain(notes) -> np.ndarray:
    n = metrics.as_notes(notes)
    return np.stack([n["onset"], n["pitch"], n["duration"], n["instrument"]], 1) if len(n) else np.zeros((0, 4), np.int64)


def music_figures(notes, n_bars: int) -> dict:
    """The figures that do not need a video."""
    notes = metrics.as_notes(notes)
    out = {"pche_1bar": metrics.pitch_class_entropy(notes, 1), "pche_4bar": metrics.pitch_class_entropy(notes, 4),
           "gps": metrics.grooving_pattern_similarity(notes), "notes_per_bar": len(notes) / max(n_bars, 1)}
    p = plain(notes)
    key = representation.estimate_key(p) if len(p) else 0
    out["in_key"] = in_scale_share(p, key) if key else float("nan")
    for k, name in TRACKS.items():
        on = notes["onset"][notes["instrument"] == k]
        out[f"poly_{name}"] = len(on) / len(np.unique(on)) if len(on) else float("nan")
    return out


def setting_controls(model, name: str):
    """(mapping, Options, count_down) of a setting."""
    if name == "no control":
        return calibration.mapping_for(model, "calibrated", 99), pipeline.Options(C=0.0, min_strength=99), True
    if name == "before":
        return calibration.mapping_for(model, "original", 2), pipeline.Options(thresholds="original"), False
    if name == "original thresholds":
        return calibration.mapping_for(model, "original", 2), pipeline.Options(thresholds="original"), True
    if name == "calibrated":
        return calibration.mapping_for(model, "calibrated", 2), pipeline.Options(), True
    if name == "calibrated, C 1":
        return calibration.mapping_for(model, "calibrated", 2), pipeline.Options(C=1.0), True
    raise ValueError(name)


def run_setting(model, name: str, metas: dict, songs_per_video: int, seed: int) -> list[dict]:
    mapping, opts, count_down = setting_controls(model, name)
    controls = pipeline.make_controls(model, opts, mapping)
    controls.count_down = count_down
    if name == "before":
        controls.forced_tracks, controls.strength_max = generation.FORCED_TRACKS, None
    # control errors of "no control" are measured against the default (calibrated) rows
    judge = calibration.mapping_for(model, "calibrated", 2) if name == "no control" else mapping
    per = []
    for vname, meta in metas.items():
        rows = mapping.rows(meta)
        jrows = judge.rows(meta)
        n_bars = int((rows[:, 0] == D.BAR).sum())
        controls.tempo = float(meta["tempo"])
        songs = generation.generate(model, rows, pipeline.init_block(model, opts), songs_per_video,
                                    controls=controls, seed=seed)
        for s in songs:
            notes = metrics.notes_from_tokens(np.asarray(s.tokens))
            fig = music_figures(notes, n_bars)
            fig.update(metrics.control_errors(notes, jrows, judge.min_strength, tracks=s.tracks))
            fig["density_realised"] = 1.0 - fig["density_mismatch_rate"]
            fig["video"] = vname
            fig["forced_beats"] = len({f[:2] for f in s.forced})
            per.append(fig)
    return per


def mean(rows: list[dict], key: str) -> float:
    v = np.asarray([r[key] for r in rows if key in r and r[key] is not None and np.isfinite(r[key])], float)
    return float(v.mean()) if v.size else float("nan")


KEYS = [("pche_1bar", "PCHE 1-bar", 2), ("pche_4bar", "PCHE 4-bar", 2), ("gps", "GPS", 3),
        ("notes_per_bar", "notes / bar", 1), ("in_key", "in key", 2)] + \
       [(f"poly_{n}", f"poly. {n}", 2) for n in ("Piano", "Guitar", "Bass", "Strings", "Drums")] + \
       [("hit_rate", "hit rate", 2), ("density_error", "density err.", 3), ("density_realised", "bars at density", 2),
        ("strength_error", "strength err.", 3)]


def fmt(v, d):
    return "–" if v is None or not np.isfinite(v) else f"{v:.{d}f}"


def table(summary: dict) -> str:
    cols = list(summary)
    keys = [k for k in KEYS if any(np.isfinite(summary[c].get(k[0], float("nan"))) for c in cols)]
    lines = ["| setting | " + " | ".join(label for _, label, _ in keys) + " |",
             "|---|" + "---|" * len(keys)]
    for c in cols:
        lines.append(f"| {c} | " + " | ".join(fmt(summary[c].get(k), d) for k, _, d in keys) + " |")
    return "\n".join(lines)


def targets(summary: dict) -> list[str]:
    """The issue's targets: the default control against no control of the same model."""
    base, cal = summary["no control"], summary["calibrated"]
    rel = lambda k: cal[k] / base[k] - 1 if base[k] else float("nan")  # noqa: E731
    checks = [("PCHE-1 at most +10 %", rel("pche_1bar"), rel("pche_1bar") <= 0.10, "{:+.1%}"),
              ("GPS at least -10 %", rel("gps"), rel("gps") >= -0.10, "{:+.1%}"),
              ("notes per bar at most +50 %", rel("notes_per_bar"), rel("notes_per_bar") <= 0.50, "{:+.1%}"),
              ("hit rate >= 0.95", cal["hit_rate"], cal["hit_rate"] >= 0.95, "{:.3f}"),
              ("density error <= 0.107", cal["density_error"], cal["density_error"] <= 0.107, "{:.3f}"),
              ("strength error <= 0.05", cal["strength_error"], cal["strength_error"] <= 0.05, "{:.3f}"),
              ("C 1: >= 80 % of bars at the video's density", summary["calibrated, C 1"]["density_realised"],
               summary["calibrated, C 1"]["density_realised"] >= 0.80, "{:.1%}")]
    return [f"- {name}: {f.format(v)} ({'met' if ok else 'NOT met'})" for name, v, ok, f in checks]


def plot(summary: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("pche_1bar", "PCHE 1-bar (bits)"), ("gps", "GPS"), ("notes_per_bar", "notes per bar"),
              ("in_key", "share of pitch mass in key"), ("hit_rate", "hit rate (forced beats)"),
              ("density_realised", "bars at the video's density")]
    names = list(summary)
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    colors = ["#999999", "#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd"]
    for ax, (k, title) in zip(axes.ravel(), panels):
        vals = [summary[n].get(k, float("nan")) for n in names]
        ax.bar(range(len(names)), np.nan_to_num(vals), color=colors[:len(names)])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.suptitle("Control and music quality (benchmarks/bench_quality.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def music_section(args, out: Path) -> None:
    """Issue 27's "Measure the music" (benchmarks/music_quality.py, docs/quality_benchmark.md): its own
    files, quality_music.{md,json,png}."""
    ref = None if args.reference == "none" else args.reference or music_quality.default_reference()
    res = music_quality.run(args.ckpt, args.compare_ckpt, ref,
                            args.genre_songs, args.seed, args.music_video_s, Path(args.videos_dir),
                            args.music_videos, args.max_reference, log, args.music_keep)
    print(music_quality.write(res, out))
    log(f"music section: {res['wall_s']:.0f} s; wrote {out / 'quality_music.md'}, .json, .png")


def music_flags(ap) -> None:
    g = ap.add_argument_group("music section (issue 27; benchmarks/music_quality.py)")
    g.add_argument("--genre_songs", type=int, default=12, help="songs per video with the defaults and with each "
                   "--genre the checkpoint knows; 0: skip the section (default: %(default)s)")
    g.add_argument("--music_only", action="store_true", help="run only the music section")
    g.add_argument("--compare_ckpt", help="a second checkpoint measured the same way (the previous bundled model)")
    g.add_argument("--reference", help="training data for the music section: a training npz or a MIDI folder "
                   "(default: the first of " + ", ".join(music_quality.REFERENCES) + " that exists; none: no reference)")
    g.add_argument("--max_reference", type=int, default=200, help="reference songs sampled (default: %(default)s)")
    g.add_argument("--music_video_s", type=float, default=30.0, help="length of the section's synthetic clips "
                   "(default: %(default)s)")
    g.add_argument("--music_videos", help="compose for the videos of this folder instead (e.g. real clips)")
    g.add_argument("--music_keep", help="keep the section's songs (MIDI, JSON) under this folder")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=str(pipeline.DEFAULT_CKPT))
    ap.add_argument("--songs", type=int, default=16, help="songs per video and setting")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=str(ROOT / "dataset" / "bundled.npz"), help="training data to compare with (default: the bundled model's corpus)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--videos_dir", default=str(ROOT / ".cache" / "bench_quality_videos"))
    ap.add_argument("--scene_songs", type=int, default=4, help="scene cuts (issue 28): songs per video and setting; 0: skip")
    ap.add_argument("--scenes_only", action="store_true", help="run only the scene-cut section (benchmarks/scene_sections.py)")
    music_flags(ap)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.genre_songs > 0 and not args.scenes_only:
        music_section(args, out)
    if args.music_only:
        return
    model = load_checkpoint(args.ckpt).freeze()   # the traced step: the eager one's songs, faster
    # --- scene cuts (issue 28): sections at the cuts; its own files, quality_scenes.{md,json}
    if args.scene_songs > 0:
        sys.path.insert(0, str(ROOT / "tests"))          # video_fixtures, for the synthetic shots
        import scene_sections
        res = scene_sections.run(model, Path(args.videos_dir) / "scenes", args.scene_songs, args.seed, log)
        (out / "quality_scenes.md").write_text(scene_sections.markdown(res))
        (out / "quality_scenes.json").write_text(json.dumps(res, indent=1, default=float))
        print(scene_sections.markdown(res))
    if args.scenes_only:
        return
    from vidscore.video import analyse_video
    metas = {}
    for name, path in make_videos(Path(args.videos_dir)).items():
        metas[name] = analyse_video(str(path), progress=False)
        log(f"{name}: {metas[name]['duration']:.1f} s, {metas[name]['tempo']:.1f} bpm, "
            f"{len(metas[name]['flow_magnitude_per_bar'])} bars, {len(metas[name]['vbeats'])} visual beats")
    per, summary = {}, {}
    for name in SETTINGS:
        per[name] = run_setting(model, name, metas, args.songs, args.seed)
        summary[name] = {k: mean(per[name], k) for k, _, _ in KEYS}
        summary[name]["forced_beats"] = mean(per[name], "forced_beats")
        log(f"{name}: " + ", ".join(f"{k} {fmt(summary[name][k], d)}" for k, _, d in KEYS[:5]))
    if Path(args.data).is_file():
        ref, desc = evaluate.load_reference(args.data, 200, 0, None)
        rows = [music_figures(s.notes, metrics.n_bars(metrics.as_notes(s.notes))) for s in ref]
        summary["training data"] = {k: mean(rows, k) for k, _, _ in KEYS}
        log(f"training data: {len(ref)} songs")
    cal = (model.vocab or {}).get("calibration")
    head = (f"{Path(args.ckpt).name} on {len(metas)} videos ({', '.join(metas)}), {args.songs} songs per video "
            f"and setting, seed {args.seed}; calibration: "
            + (f"stored (forced tracks {cal['forced_tracks']}, strength clamp {cal['strength_max']})" if cal else "none stored"))
    md = "\n".join([head, "", table(summary), "", "Targets (issue 19: the default control against no control):",
                    *targets(summary), ""])
    (out / "quality.md").write_text(md)
    plot(summary, out / "quality.png")
    (out / "quality.json").write_text(json.dumps({
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": platform.platform(),
        "load_average": os.getloadavg(), "ckpt": args.ckpt, "songs_per_video": args.songs, "seed": args.seed,
        "videos": {k: {"tempo": v["tempo"], "duration": v["duration"]} for k, v in metas.items()},
        "summary": summary, "per_song": per, "wall_s": time.perf_counter() - T0}, indent=1, default=float))
    print(md)
    log(f"wrote {out / 'quality.md'}, quality.png, quality.json")


if __name__ == "__main__":
    main()
