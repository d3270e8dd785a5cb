"""Beat alignment heard in the rendered audio, and what stems cost (docs/stems_and_audio_beats.md).

    python benchmarks/bench_audio.py [--ckpt exp/bundled/model.pt] [--video videos/demo.mp4]
                                     [--songs 4] [--seed 1] [--out benchmarks/results]

The main job (``vidscore.generation.job.run``, the CLI's defaults) composes ``--songs`` songs for
the video under two settings: ``calibrated`` (the defaults) and ``no control`` (``--C 0
no beat forced``: the model's own music on the same video).  Each song is rendered twice:
by FluidSynth alone (the mix ``--stems 0`` writes) and as stems with their mix (``--stems 1``).
Per setting (mean over the songs): beat coverage and beat hit of the onsets heard in the WAV
(``vidscore.evaluation.audio_beats``, +-70 ms) against all the video's visual beats and against
the beats the song was forced to accent, with their chance levels, and the detector against
the song's own MIDI note onsets (recall and precision, an independent route); per song the render time of
both ways, the number of stems, max |sum of stems - mix| in samples, and how far the stems' mix is
from FluidSynth's own render of the whole song (length, peak and RMS difference).  Writes
``<out>/audio.json`` and ``<out>/audio.md``.  Runs on one thread.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]
os.environ.setdefault("CMT_NO_PROGRESS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from vidscore import rendering, stems  # noqa: E402
from vidscore.evaluation import audio_beats as A  # noqa: E402
from vidscore.evaluation import metrics as M  # noqa: E402
from vidscore.evaluation import report as R  # noqa: E402
from vidscore.generation import job as pipeline  # noqa: E402

T0 = time.perf_counter()
SETTINGS = {"calibrated": {}, "no control": {"C": 0.0, "min_strength": 99}}   # (99: no beat is forced)
KEYS = ("beat_coverage", "beat_coverage_chance", "beat_hit", "beat_hit_chance", "forced_coverage",
        "forced_hit", "forced_hit_chance", "n_audio_onsets")


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", flush=True)


def forced_times(report: dict) -> np.ndarray:
    """Grid times of the beats the song was forced to accent ([bar, bar-beat 1..16, ...])."""
    return np.array(sorted({(16 * f[0] + f[1] - 1) * 15.0 / report["tempo"] for f in report["forced_beats"]}))


def song_figures(base: Path, beats: np.ndarray, duration: float) -> dict:
    report = json.loads(base.with_suffix(".json").read_text())
    t = time.perf_counter()
    rendering.render_wav(base.with_suffix(".mid"), base.with_name(base.name + "_direct.wav"))
    direct_s = time.perf_counter() - t
    t = time.perf_counter()
    parts = stems.render_with_stems(base.with_suffix(".mid"), base.with_suffix(".wav"))
    stems_s = time.perf_counter() - t
    mix = np.asarray(rendering.read_wav(base.with_suffix(".wav"))[0], np.int64)
    total = sum(np.asarray(rendering.read_wav(p)[0], np.int64) for p in parts)
    direct = np.asarray(rendering.read_wav(base.with_name(base.name + "_direct.wav"))[0], np.int64)
    n = min(len(mix), len(direct))
    out = A.audio_beat_scores(base.with_suffix(".wav"), beats, duration)
    forced = A.audio_beat_scores(base.with_suffix(".wav"), forced_times(report), duration)
    out.update(forced_coverage=forced["beat_coverage"], forced_hit=forced["beat_hit"],
               forced_hit_chance=forced["beat_hit_chance"], n_forced=len(forced_times(report)),
               direct_render_s=direct_s, stems_render_s=stems_s, n_stems=len(parts),
               stems=[Path(p).stem.rsplit("_", 1)[-1] for p in parts],
               max_abs_sum_minus_mix=int(np.abs(total - mix).max()),
               stem_lengths_equal=all(len(rendering.read_wav(p)[0]) == len(mix) for p in parts),
               length_vs_direct=int(len(mix) - len(direct)),
               max_abs_mix_minus_direct=int(np.abs(mix[:n] - direct[:n]).max()),
               rms_mix_minus_direct_rel=float(np.sqrt(np.mean((mix[:n] - direct[:n]) ** 2.0))
                                              / max(np.sqrt(np.mean(mix.astype(float) ** 2)), 1e-9)),
               **detector_check(base, duration),
               direct_coverage=A.audio_beat_scores(base.with_name(base.name + "_direct.wav"), beats,
                                                   duration)["beat_coverage"])
    return out


def detector_check(base: Path, duration: float) -> dict:
    """The detector against the song's own MIDI (an independent route): the share of the MIDI's
    distinct note onsets with an audio onset within the tolerance (recall), and of audio onsets
    near a note onset (precision), up to the video's end."""
    notes, tempo = R.load_midi(base.with_suffix(".mid"))
    midi = M.onset_times(notes, tempo)
    midi = midi[midi <= duration]
    audio, _ = A.wav_onsets(base.with_suffix(".wav"))
    audio = audio[audio <= duration + A.TOLERANCE_S]
    return {"midi_onsets": int(len(midi)), "detector_recall": A.beat_coverage(midi, audio),
            "detector_precision": A.beat_hit(midi, audio)}


def mean(rows, key):
    v = np.asarray([r[key] for r in rows if np.isfinite(r[key])], float)
    return float(v.mean()) if v.size else float("nan")


def table(summary: dict) -> str:
    head = ["setting", "coverage (chance)", "hit (chance)", "forced: coverage", "forced: hit (chance)",
            "onsets (MIDI)", "detector recall / precision", "render s: mix / stems", "stems", "max |sum - mix|"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['beat_coverage']:.3f} ({s['beat_coverage_chance']:.3f}) | {s['beat_hit']:.3f} "
                     f"({s['beat_hit_chance']:.3f}) | {s['forced_coverage']:.3f} | {s['forced_hit']:.3f} "
                     f"({s['forced_hit_chance']:.3f}) | {s['n_audio_onsets']:.0f} ({s['midi_onsets']:.0f}) | "
                     f"{s['detector_recall']:.3f} / {s['detector_precision']:.3f} | {s['direct_render_s']:.2f} / "
                     f"{s['stems_render_s']:.2f} | {s['n_stems']:.1f} | {s['max_abs_sum_minus_mix']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=str(pipeline.DEFAULT_CKPT))
    ap.add_argument("--video", default=str(ROOT / "videos" / "demo.mp4"))
    ap.add_argument("--songs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--work", default=str(ROOT / ".cache" / "bench_audio"))
    args = ap.parse_args()
    model = pipeline.load_model(args.ckpt, threads=1)
    video = Path(args.video)
    per, summary = {}, {}
    for name, flags in SETTINGS.items():
        hp = {"out_dir": str(Path(args.work) / name.replace(" ", "_")), "num_songs": args.songs, "seed": args.seed,
              "render": 0}
        opts = dataclasses.replace(pipeline.options_from_hp(hp, model), **flags)
        pipeline.run([video], model, opts, log=lambda m: None)
        meta = json.loads((Path(opts.out_dir) / f"{video.stem}_metadata.json").read_text())
        beats = np.array([b["start_time"] for b in meta["vbeats"]])
        per[name] = [song_figures(Path(opts.out_dir) / f"{video.stem}_{k}", beats, meta["duration"])
                     for k in range(args.songs)]
        summary[name] = {k: mean(per[name], k) for k in (*KEYS, "direct_render_s", "stems_render_s", "n_stems",
                                                         "midi_onsets", "detector_recall", "detector_precision")}
        summary[name]["max_abs_sum_minus_mix"] = max(r["max_abs_sum_minus_mix"] for r in per[name])
        log(f"{name}: coverage {summary[name]['beat_coverage']:.3f}, hit {summary[name]['beat_hit']:.3f}, "
            f"stems {summary[name]['stems_render_s']:.2f} s vs {summary[name]['direct_render_s']:.2f} s")
    head = (f"{Path(args.ckpt).name} on {video.name} ({meta['duration']:.0f} s, {meta['tempo']:.1f} bpm, "
            f"{len(beats)} visual beats), {args.songs} songs per setting, seed {args.seed}, tolerance "
            f"{A.TOLERANCE_S * 1000:.0f} ms")
    md = "\n".join([head, "", table(summary), ""])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "audio.md").write_text(md)
    (out / "audio.json").write_text(json.dumps({
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": platform.platform(),
        "load_average": os.getloadavg(), "ckpt": args.ckpt, "video": str(video), "songs": args.songs,
        "seed": args.seed, "summary": summary, "per_song": per, "wall_s": time.perf_counter() - T0},
        indent=1, default=float))
    print(md)
    log(f"wrote {out / 'audio.md'} and audio.json")


if __name__ == "__main__":
    main()
