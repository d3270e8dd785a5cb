"""The music section of bench_quality.py (issue 27, "Measure the music"): is it music worth hearing,
against the training data and against the previous model?  docs/quality_benchmark.md.

For the model under test (``--ckpt``) and, with ``--compare_ckpt``, a second one (the previous
bundled model), songs are made the way ``main_cp.py`` makes them -- the CLI's loading step
(``--dtype auto``: int8 on the CPU), :func:`vidscore.generation.job.run` with its defaults (the
calibrated control, the picture's mood, sections at the cuts), no rendering -- on the
section's videos: the demo and the benchmark's four motions (slow, fast, accelerating, cuts;
the same speeds and seeds as bench_quality's clips) made ``--music_video_s`` long, or the
videos of ``--music_videos``.  Per video ``--genre_songs`` songs (one batch, seed ``--seed``)
with the defaults and with each ``--genre`` the checkpoint knows.  The songs are read back from
their MIDI files and measured by ``evaluate.py``'s per-song metrics (PCHE, GPS, SI, repetition,
kit share, drums throughout, tracks used, hit rate; ``vidscore.evaluation``), and the genres'
separability by :mod:`vidscore.evaluation.genre_separability`.  The training data
(``--reference``: a training npz or a MIDI folder, through ``evaluate.load_reference``) is
measured the same way, its genre labels from its metadata (or a ``songs.tsv`` / ``genres.tsv``
beside MIDI files).  Writes ``quality_music.json``, ``quality_music.md`` and
``quality_music.png`` (a piano roll per genre, the confusion matrices).
"""
from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from vidscore import compute, constants as D
from vidscore.evaluation import genre_separability as G
from vidscore.evaluation import report as evaluate
from vidscore.generation import job, reference_videos as RV

ROOT = Path(__file__).resolve().parents[1]
KEYS = [("pche_1bar", "PCHE 1-bar", 2), ("gps", "GPS", 3), ("si_short", "SI 3-8 s", 3), ("si_mid", "SI 8-15 s", 3),
        ("repetition", "repetition", 2), ("repetition_pooled", "repetition (pooled)", 2), ("kit_share", "kit share (notes)", 2),
        ("drum_bar_share", "bars with drums", 2), ("drums_throughout", "drums throughout", 2),
        ("tracks_used", "tracks used", 2), ("notes_per_bar", "notes / bar", 1), ("hit_rate", "hit rate", 2)]
REFERENCES = ("dataset/bundled_overlay.npz", "dataset/music21.npz", ".cache/freedoom")


def default_reference() -> str | None:
    """The first of :data:`REFERENCES` that exists (the bundled model's corpus first)."""
    return next((str(ROOT / p) for p in REFERENCES if (ROOT / p).exists()), None)


def make_videos(folder: Path, seconds: float) -> list[Path]:
    """The demo and bench_quality's four motions (its speeds and seeds), ``seconds`` long each."""
    n = int(seconds * RV.FPS)
    clips = {"slow": lambda: RV.pan(np.full(n, 0.3), 21), "fast": lambda: RV.pan(np.full(n, 6.0), 22),
             "accelerating": lambda: RV.pan(np.linspace(0.5, 10.0, n), 23),
             "cuts": lambda: RV.pan(np.full(n, 2.0), 24, cut_every=0.7)}
    folder.mkdir(parents=True, exist_ok=True)
    out = [RV.DEMO]
    for name, frames in clips.items():
        path = folder / f"{name}_{seconds:g}s.mp4"
        if not path.is_file():
            RV._write(path, frames())
        out.append(path)
    return out


def compose(ckpt: str, videos: list[Path], songs: int, seed: int, work: Path, log) -> dict:
    """Songs of one checkpoint: {"dtype", "genres", "sets": {condition: [evaluate.Song]}, "wall_s"}
    with the conditions "default" and each genre name the checkpoint knows."""
    t0 = time.perf_counter()
    model = job.load_model(ckpt, dtype="auto")
    dtype = compute.default_precision(next(model.parameters()).device)
    genres = [g for g in (model.vocab or {}).get("genres") or [] if 0 < g < len(D.GENRES)]
    conditions = {"default": None, **{D.GENRES[g]: g for g in genres}}
    sets = {}
    for name, gid in conditions.items():
        t = time.perf_counter()
        opts = job.Options(out_dir=str(work / name.replace("/", "_")), num_songs=songs, seed=seed, render=False,
                           genre=gid)
        job.run(videos, model, opts, log=lambda *_: None, keep_going=True)
        sets[name] = evaluate.load_generated(opts.out_dir)[0]
        log(f"{short(ckpt)}: {name}: {len(sets[name])} songs in {time.perf_counter() - t:.0f} s")
    return {"ckpt": rel(ckpt), "dtype": dtype, "genres": list(conditions)[1:], "sets": sets,
            "wall_s": time.perf_counter() - t0}


def measure(songs: list, videos: bool, settings: evaluate.Settings) -> list[dict]:
    """evaluate.py's per-song rows (against the song's video when ``videos``), with notes per bar."""
    rows = []
    for s in songs:
        video = evaluate.find_video(s, None, int(s.sidecar.get("min_strength", settings.min_strength))) if videos else None
        row = evaluate.song_metrics(s, video, settings)
        row["notes_per_bar"] = row["n_notes"] / max(row["n_bars"], 1)
        row["genre"] = s.sidecar.get("genre") or ((s.sidecar.get("mood") or {}).get("chose") or {}).get("genre")
        rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Means over songs; the kit share over all drum notes pooled; the share of songs using each track."""
    agg = evaluate.aggregate(rows, [k for k, _, _ in KEYS if k != "kit_share"])
    out = {k: v["mean"] for k, v in agg.items()}
    drums = sum(r.get("drum_notes", 0) for r in rows)
    out["kit_share"] = sum(r.get("kit_notes", 0) for r in rows) / drums if drums else float("nan")
    out["songs"] = len(rows)
    out["songs_with_drums"] = float(np.mean([r.get("drum_notes", 0) > 0 for r in rows])) if rows else float("nan")
    return out


def separate(songs_by_genre: dict) -> dict | None:
    """Leave-one-out separability of the songs of each genre (None with fewer than 2 genres)."""
    labels = [g for g, songs in songs_by_genre.items() for _ in songs]
    if len(set(labels)) < 2:
        return None
    x = G.feature_matrix([s.notes for songs in songs_by_genre.values() for s in songs])
    res = G.separability(x, labels)
    res.pop("predicted")
    return res


def reference_genres(path: Path, songs: list) -> dict:
    """genre -> songs of the reference: a training npz's metadata "genre", or for MIDI files a
    ``songs.tsv`` / ``genres.tsv`` (id and genre columns; an id's last part is the file's stem)
    in the folder.  Songs without a label are left out."""
    table = {}
    for name in ("songs.tsv", "genres.tsv"):
        f = path / name if path.is_dir() else None
        if f is None or not f.is_file():
            continue
        with f.open(encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh, delimiter="\t") if r]
        head, body = (rows[0], rows[1:]) if rows and "genre" in rows[0] else (["id", "genre"], rows)
        i, j = (head.index("id") if "id" in head else 0), head.index("genre")
        table.update({r[i].rsplit("/", 1)[-1]: r[j] for r in body if len(r) > max(i, j)})
    out: dict = {}
    for s in songs:
        g = s.sidecar.get("genre") or table.get(Path(s.name).stem)
        if g:
            out.setdefault(g, []).append(s)
    return out


def model_figures(comp: dict, settings: evaluate.Settings) -> dict:
    rows = {name: measure(songs, True, settings) for name, songs in comp["sets"].items()}
    summary = {name: summarise(r) for name, r in rows.items()}
    if comp["genres"]:
        summary["all genres"] = summarise([r for g in comp["genres"] for r in rows[g]])
    sep = separate({g: comp["sets"][g] for g in comp["genres"]})
    return {"ckpt": comp["ckpt"], "dtype": comp["dtype"], "genres": comp["genres"], "summary": summary,
            "separability": sep, "compose_wall_s": comp["wall_s"], "per_song": rows}


def reference_figures(path: str, max_songs: int, settings: evaluate.Settings, log) -> dict:
    songs, source = evaluate.load_reference(path, max_songs, 0, None)
    rows = measure(songs, False, settings)
    by_genre = reference_genres(Path(path), songs)
    log(f"reference: {len(songs)} songs of {path}, genres {({g: len(v) for g, v in by_genre.items()})}")
    return {"path": rel(path), "source": {**source, "path": rel(source["path"])}, "summary": {"all": summarise(rows)},
            "genre_songs": {g: len(v) for g, v in by_genre.items()}, "separability": separate(by_genre),
            "songs": songs}


def run(ckpt: str, compare_ckpt: str | None, reference: str | None, songs: int, seed: int, video_s: float,
        videos_dir: Path, music_videos: str | None, max_reference: int, log, keep: str | None = None) -> dict:
    """The whole section; returns the figures (and, under "rolls", what the picture needs).  The songs
    are written into a temporary folder, or under ``keep``/<model|compare>/<condition>/ to keep."""
    t0 = time.perf_counter()
    videos = (job.collect_inputs(music_videos) if music_videos else make_videos(videos_dir / "music", video_s))
    settings = evaluate.Settings()
    res = {"videos": [str(Path(v).name) for v in videos], "songs_per_video": songs, "seed": seed,
           "video_s": None if music_videos else video_s, "models": {}}
    rolls = {}
    for tag, path in (("model", ckpt), ("compare", compare_ckpt)):
        if not path:
            continue
        with tempfile.TemporaryDirectory(prefix="bench_music_") as tmp:
            comp = compose(path, videos, songs, seed, Path(keep) / tag if keep else Path(tmp), log)
            t = time.perf_counter()
            res["models"][tag] = model_figures(comp, settings)
            res["models"][tag]["measure_wall_s"] = time.perf_counter() - t
        if tag == "model":   # per condition the first song of the first video (the demo)
            first = f"{Path(videos[0]).stem}_0"
            rolls = {name: next((s for s in ss if s.name == first), ss[0]) for name, ss in comp["sets"].items() if ss}
    if reference:
        t = time.perf_counter()
        ref = reference_figures(reference, max_reference, settings, log)
        ref["wall_s"] = time.perf_counter() - t
        ref.pop("songs")
        res["reference"] = ref
        rep = ref["summary"]["all"].get("repetition")
        for m in res["models"].values():
            m["repetition_vs_reference"] = (m["summary"]["default"]["repetition"] / rep if rep else float("nan"))
    res["wall_s"] = time.perf_counter() - t0
    res["rolls"] = rolls
    return res


# ----------------------------------------------------------------------------- outputs

def rel(path: str) -> str:
    """``path`` relative to the repository when it lies inside it (no machine's paths in the results)."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(path)


def short(path: str) -> str:
    """A checkpoint's folder and name (exp/bundled/model.pt -> bundled/model.pt)."""
    return "/".join(Path(path).parts[-2:])


def fmt(v, d: int = 2) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{d}f}"


def _table(columns: dict) -> list[str]:
    """``columns``: row label -> summary dict; one markdown table of :data:`KEYS`."""
    L = ["| songs | n | " + " | ".join(label for _, label, _ in KEYS) + " |", "|---|---|" + "---|" * len(KEYS)]
    for name, summ in columns.items():
        L.append(f"| {name} | {summ.get('songs', 0)} | " + " | ".join(fmt(summ.get(k), d) for k, _, d in KEYS) + " |")
    return L


def _separability_lines(name: str, sep: dict | None) -> list[str]:
    if not sep:
        return [f"- {name}: fewer than two genres, not measured"]
    per = ", ".join(f"{g} {v['recall']:.0%} (n {v['n']})" for g, v in sep["per_class"].items())
    conf = "; ".join(f"{g}: " + " ".join(str(c) for c in row) for g, row in zip(sep["classes"], sep["confusion"]))
    return [f"- {name}: leave-one-out accuracy **{sep['accuracy']:.0%}** (chance {sep['chance']:.0%}, "
            f"{sep['n']} songs); per genre (recall): {per}; confusion (rows made with, columns predicted, order "
            f"{', '.join(sep['classes'])}): {conf}"]


def targets(m: dict, ref: dict | None) -> list[str]:
    """Issue 27's "done when" on the default songs (the control's cost is the controls section's)."""
    d = m["summary"]["default"]
    sep = m["separability"] or {"per_class": {}}
    good = [g for g, v in sep["per_class"].items() if v["recall"] >= 0.8]
    rel = m.get("repetition_vs_reference", float("nan"))
    checks = [(">= 90 % of songs have drums throughout", f"{d['drums_throughout']:.0%}", d["drums_throughout"] >= 0.9),
              (">= 85 % of drum notes on kit sounds", f"{d['kit_share']:.0%}", d["kit_share"] >= 0.85),
              ("repetition >= 0.7 x the training data's", fmt(rel), bool(ref) and rel >= 0.7),
              (">= 4 genres told apart >= 80 % of the time (target 6)", f"{len(good)} ({', '.join(good) or 'none'})",
               len(good) >= 4)]
    return [f"- {name}: {v} ({'met' if ok else 'NOT met'})" for name, v, ok in checks]


def markdown(res: dict) -> str:
    L = ["# Music quality (bench_quality.py, issue 27)", "",
         f"Videos: {', '.join(res['videos'])}" + (f" ({res['video_s']:g} s synthetic clips and the demo)"
                                                   if res.get("video_s") else "")
         + f"; {res['songs_per_video']} songs per video and genre, seed {res['seed']}; "
         f"the section took {res['wall_s']:.0f} s.", ""]
    columns = {}
    for tag, m in res["models"].items():
        label = f"{short(m['ckpt'])} ({tag}, {m['dtype']})"
        L.append(f"- {tag}: `{m['ckpt']}`, genres {', '.join(m['genres']) or 'none'}; composing "
                 f"{m['compose_wall_s']:.0f} s, measuring {m['measure_wall_s']:.0f} s")
        columns.update({f"{label}: {name}": summ for name, summ in m["summary"].items()})
    ref = res.get("reference")
    if ref:
        L.append(f"- training data: `{ref['path']}`, {ref['source']['used']} of {ref['source']['available']} "
                 f"songs (seed 0), genres {ref['genre_songs']}; {ref['wall_s']:.0f} s")
        columns["training data"] = ref["summary"]["all"]
    L += [""] + _table(columns) + ["", "## Genre separability (nearest centroid, standardised features: "
                                    + ", ".join(G.FEATURES) + ")", ""]
    for tag, m in res["models"].items():
        L += _separability_lines(f"{tag} ({short(m['ckpt'])})", m["separability"])
    if ref:
        L += _separability_lines("training data (by its labels)", ref["separability"])
    for tag, m in res["models"].items():
        L += ["", f"## Targets ({tag}: default songs)", ""]
        if ref:
            L.append(f"- repetition: {fmt(m['summary']['default']['repetition'])} against the training data's "
                     f"{fmt(ref['summary']['all']['repetition'])}")
        L += targets(m, ref)
    return "\n".join(L) + "\n"


def plot(res: dict, path: Path) -> None:
    """A piano roll per condition of the model under test, and its confusion matrices."""
    from vidscore.evaluation import plots
    rolls = [(f"{name}: {s.name}", s.notes, s.tempo) for name, s in res["rolls"].items()]
    confusions = [(f"{tag}: {m['separability']['accuracy']:.0%} right", m["separability"]["classes"],
                   m["separability"]["confusion"]) for tag, m in res["models"].items() if m["separability"]]
    ref = res.get("reference") or {}
    if ref.get("separability"):
        sep = ref["separability"]
        confusions.append((f"training data (its labels): {sep['accuracy']:.0%} right", sep["classes"],
                           sep["confusion"]))
    plots.plot_rolls_and_confusions(str(path), rolls, confusions,
                                    f"{short(res['models']['model']['ckpt'])}: one song per --genre")


def _clean(v):
    """JSON-ready: numpy numbers as numbers, non-finite numbers as null, paths as strings."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.integer, bool)):
        return v if isinstance(v, bool) else int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if np.isfinite(v) else None
    return str(v) if isinstance(v, Path) else v


def write(res: dict, out: Path) -> str:
    """quality_music.png, .md and .json under ``out``; returns the markdown."""
    import datetime as dt
    import json
    import os
    import platform
    from vidscore import cli
    plot(res, out / "quality_music.png")
    res = {k: v for k, v in res.items() if k != "rolls"}
    keep = ("name", "video", "genre", "tempo", "n_bars", "n_notes", "drum_notes", "kit_notes", *(k for k, _, _ in KEYS))
    res["models"] = {tag: {**m, "per_song": {c: [{k: r.get(k) for k in keep if k in r} for r in rows]
                                             for c, rows in m["per_song"].items()}}
                     for tag, m in res["models"].items()}
    md = markdown(res)
    cli.write_text_atomic(out / "quality_music.md", md)
    head = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": platform.platform(),
            "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    cli.write_text_atomic(out / "quality_music.json", json.dumps(_clean({**head, **res}), indent=1, allow_nan=False))
    return md
