"""What each inference control does with the bundled model (the table of docs/bundled_model.md,
"What each control does with it").

    python benchmarks/bench_controls.py [--ckpt exp/bundled/model.pt] [--songs 32] [--seed 0]
                                        [--out benchmarks/results] [--video videos/demo.mp4]

Analyses the video once, then generates ``--songs`` songs (one batch, same seed) for the
no-control baseline (what ``main_cp.py`` does without flags: C 0.7, density_threshold 2, all
the model's instruments, its default key and genre) and for each control setting, over the
same video rows.  For every setting it compares the figure that shows the control's effect
with the baseline's:

* --instruments: share of notes in the requested classes;
* --key: share of the duration-weighted pitched note mass in the key's diatonic scale
  (natural minor for minor keys) and how often the Krumhansl-Schmuckler estimate
  (representation.estimate_key) names the requested key;
* --genre: notes per bar, pitch range, instrument shares;
* --density_threshold (min_strength): forced visual beats, strength / time control errors;
* --C: density control error;
* --my_tempo: MIDI tempo, bars and the music's length (a few songs are generated for it too).

Writes ``<out>/controls.json`` (every figure, per song where it is per song, settings,
date, machine), ``<out>/controls.md`` (that table) and ``<out>/controls.png``.
Takes about two minutes on one thread (the analysis of the demo video included).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("CMT_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidscore import compute  # noqa: E402
from vidscore import constants as D  # noqa: E402
from vidscore.generation import generate as generation  # noqa: E402
from vidscore.evaluation import metrics  # noqa: E402
from vidscore.generation import job as pipeline  # noqa: E402
from vidscore.music import representation  # noqa: E402
from vidscore.model.cmt import load_checkpoint  # noqa: E402
from vidscore.music.midi_write import tokens_to_midi  # noqa: E402

T0 = time.perf_counter()

# Settings compared with the baseline (the pipeline's defaults).
INSTRUMENT_SETS = {"Piano": (D.PIANO,), "Bass+Strings": (D.BASS, D.STRINGS)}
KEYS = ["G major", "C major", "D major", "E minor", "A# major"]   # names as D.KEY_NAMES spells them (all trained keys: --key refuses others)
GENRES = ["Classical", "Folk", "Pop"]   # each one the model knows, but its default, is a setting
MIN_STRENGTHS = [1, 2, 3, 4, 5]
CS = [0.0, 0.7, 1.0]
TEMPOS = [60.0, 90.0, 180.0]                  # user tempi (the video's own is estimated)
DEFAULT_C, DEFAULT_MIN_STRENGTH = 0.7, 2      # pipeline.Options defaults


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", flush=True)


# ----------------------------------------------------------------------------- helpers (local)

MAJOR_STEPS, MINOR_STEPS = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)


def scale_pcs(key_id: int) -> list[int]:
    """Pitch classes of a key's diatonic scale (natural minor for minor keys); key ids as D.KEY_NAMES."""
    tonic, minor = (key_id - 1) % 12, key_id > 12
    return sorted((tonic + s) % 12 for s in (MINOR_STEPS if minor else MAJOR_STEPS))


def in_scale_share(notes: np.ndarray, key_id: int) -> float:
    """Share of the duration-weighted pitched note mass whose pitch class is in the key's scale."""
    hist = representation.pitch_class_histogram(notes)
    return float(hist[scale_pcs(key_id)].sum() / hist.sum()) if hist.sum() > 0 else float("nan")


def strength_counts(beats: np.ndarray) -> dict:
    return {int(k): int(v) for k, v in zip(*np.unique(beats[:, 2], return_counts=True))}


def key_id(name: str) -> int:
    return D.KEY_NAMES.index(name)


def mean_se(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0


# ----------------------------------------------------------------------------- generation

def generate(model, meta: dict, opts: pipeline.Options, n: int, seed: int):
    """Songs for one setting, exactly as pipeline.run builds its video rows (the checkpoint's
    calibration), controls and init block; returns (songs, seconds, rows, min_strength of the rows)."""
    from vidscore.generation import calibration
    mapping = calibration.mapping_for(model, opts.thresholds, opts.min_strength)
    rows = mapping.rows(meta)
    controls = pipeline.make_controls(model, opts, mapping)
    t = time.perf_counter()
    songs = generation.generate(model, rows, pipeline.init_block(model, opts), n, controls=controls, seed=seed)
    return songs, time.perf_counter() - t, rows, mapping.min_strength


def describe(songs, rows: np.ndarray, opts: pipeline.Options, keys: list[int], min_strength: int) -> dict:
    """Per-song figures of one setting, and their means."""
    n_bars = int((rows[:, 0] == D.BAR).sum())
    all_beats = metrics.video_controls(rows, 0)["kept_ticks"]   # every visual beat
    per = {k: [] for k in ("n_notes", "notes_per_bar", "pitch_mean", "pitch_range", "pitch_p5_p95",
                           "duration_mean", "notes_per_onset", "pche", "estimated_key", "forced_tokens",
                           "forced_beats", "hit_rate_all_beats", "density_error", "density_mae",
                           "density_mismatch_rate", "strength_error", "strength_mismatch_rate", "hit_rate",
                           "time_error", "n_tokens")}
    per.update({f"in_scale_{k}": [] for k in keys})
    instr_counts = np.zeros(len(D.INSTRUMENTS) + 1, dtype=np.int64)
    pc_mass = np.zeros(12)
    for s in songs:
        tokens = np.asarray(s.tokens, dtype=np.int64)
        notes = representation.tokens_to_notes(tokens)
        pitched = notes[notes[:, 3] != D.DRUMS]
        instr_counts += np.bincount(notes[:, 3], minlength=len(instr_counts))
        pc_mass += representation.pitch_class_histogram(notes)
        per["n_tokens"].append(len(tokens))
        per["n_notes"].append(len(notes))
        per["notes_per_bar"].append(len(notes) / n_bars)
        per["pitch_mean"].append(float(pitched[:, 1].mean()) if len(pitched) else float("nan"))
        per["pitch_range"].append(float(np.ptp(pitched[:, 1])) if len(pitched) else float("nan"))
        per["pitch_p5_p95"].append(float(np.subtract(*np.percentile(pitched[:, 1], [95, 5])))
                                   if len(pitched) else float("nan"))
        per["duration_mean"].append(float(notes[:, 2].mean()) if len(notes) else float("nan"))
        per["notes_per_onset"].append(len(notes) / max(1, len({(int(a), int(b)) for a, b in notes[:, [0, 3]]})))
        per["pche"].append(metrics.pitch_class_entropy(metrics.as_notes(notes)))
        per["estimated_key"].append(int(representation.estimate_key(notes)))
        per["forced_tokens"].append(len(s.forced))
        per["forced_beats"].append(len({(f[0], f[1]) for f in s.forced}))
        per["hit_rate_all_beats"].append(metrics.hit_rate(all_beats, metrics.as_notes(notes)))
        errs = metrics.control_errors_from_tokens(tokens, rows, min_strength, tracks=s.tracks)
        for k, v in errs.items():
            per[k].append(v if v is not None else float("nan"))
        for k in keys:
            per[f"in_scale_{k}"].append(in_scale_share(notes, k))
    total = max(1, int(instr_counts.sum()))
    out = {"per_song": per,
           "instrument_share": {D.INSTRUMENTS[i - 1]: instr_counts[i] / total for i in range(1, len(instr_counts))},
           "pitch_class_mass": dict(zip(("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"),
                                        (pc_mass / max(pc_mass.sum(), 1e-9)).round(4))),
           "estimated_keys": {D.KEY_NAMES[k]: per["estimated_key"].count(k)
                              for k in sorted(set(per["estimated_key"]))},
           "mean": {}, "se": {}}
    for k, v in per.items():
        if k == "estimated_key":
            continue
        out["mean"][k], out["se"][k] = mean_se(v)
    return out


def run_setting(name: str, model, meta, opts, args, keys, results: dict) -> dict:
    songs, secs, rows, min_strength = generate(model, meta, opts, args.songs, args.seed)
    d = describe(songs, rows, opts, keys, min_strength)
    d["generation_seconds"] = secs
    d["settings"] = {"C": opts.C, "min_strength": opts.min_strength,
                     "instruments": list(opts.instruments) if opts.instruments else None,
                     "key": opts.key, "genre": opts.genre}
    results[name] = d
    m = d["mean"]
    log(f"{name:<22} {secs:5.1f} s  {m['notes_per_bar']:.1f} notes/bar, density err {m['density_error']:.3f}, "
        f"strength err {m['strength_error']:.3f}, forced beats {m['forced_beats']:.0f}")
    return d


# ----------------------------------------------------------------------------- report

MD_NOTES = """
Key scale = the diatonic scale (natural minor for minor keys), pitched note mass weighted by
duration; Krumhansl estimate = `representation.estimate_key`.  Strength error =
`metrics.strength_error` (mean |notes - strength| / strength) at the beats the setting forces;
hit = share of all the video's visual beats (any strength) with a note onset at that 16th.
Density error = `metrics.density_error`.  Made by `benchmarks/bench_controls.py`.
"""


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def pct_se(d: dict, key: str) -> str:
    return f"{100 * d['mean'][key]:.1f} % (±{100 * d['se'][key]:.1f})"


def agree(d: dict, kid: int) -> tuple[float, str]:
    est = d["per_song"]["estimated_key"]
    k = sum(e == kid for e in est)
    return k / len(est), f"{k}/{len(est)}"


def build_table(res: dict, tempo_rows: list[dict], n_songs: int, known_keys: list[int],
                default_genre: str = "Folk") -> tuple[list[dict], str]:
    base = res["baseline"]
    rows = []

    def add(control, setting, metric, without, with_, w_num=None, x_num=None):
        rows.append({"control": control, "setting": setting, "metric": metric, "without": without,
                     "with": with_, "without_value": w_num, "with_value": x_num})

    for name, ids in INSTRUMENT_SETS.items():
        d = res[f"instruments={name}"]
        w = sum(base["instrument_share"][D.INSTRUMENTS[i - 1]] for i in ids)
        x = sum(d["instrument_share"][D.INSTRUMENTS[i - 1]] for i in ids)
        add("--instruments", name, f"% of notes that are {name.replace('+', ' or ')}", pct(w), pct(x), w, x)
    for kname in KEYS:
        kid = key_id(kname)
        d = res[f"key={kname}"]
        note = "" if kid in known_keys else " (not in training keys)"
        default = " (default)" if kid == base["settings"]["key_default"] else ""
        (wa, ws), (xa, xs) = agree(base, kid), agree(d, kid)
        add("--key", kname + default + note,
            "% of pitched note mass in the key's scale; songs whose Krumhansl estimate is the key",
            f"{pct_se(base, f'in_scale_{kid}')}; {ws}", f"{pct_se(d, f'in_scale_{kid}')}; {xs}",
            base["mean"][f"in_scale_{kid}"], d["mean"][f"in_scale_{kid}"])
        rows[-1].update(without_agreement=wa, with_agreement=xa)
    fmt = lambda d: (f"{d['mean']['notes_per_bar']:.1f} notes/bar, range {d['mean']['pitch_range']:.0f} st, "
                     f"mean pitch {d['mean']['pitch_mean']:.0f}, "
                     + "/".join(f"{100 * d['instrument_share'][n]:.0f}" for n in D.INSTRUMENTS) + " % D/P/G/B/S")
    for name in [k for k in res if k.startswith("genre=")]:
        add("--genre", f"{name.split('=', 1)[1]} (default {default_genre})",
            "notes/bar, pitch range, mean pitch, instrument shares", fmt(base), fmt(res[name]))
    for ms in MIN_STRENGTHS:
        if ms == DEFAULT_MIN_STRENGTH:
            continue
        d = res[f"min_strength={ms}"]
        f = lambda d: (f"{d['mean']['forced_beats']:.0f} beats; strength err {d['mean']['strength_error']:.2f}; "
                       f"hit {100 * d['mean']['hit_rate_all_beats']:.0f} %")
        add("--density_threshold", f"{ms} (default 2)",
            "forced visual beats; strength error at them; % of all visual beats with an onset", f(base), f(d),
            base["mean"]["forced_beats"], d["mean"]["forced_beats"])
    for c in CS:
        if c == DEFAULT_C:
            continue
        d = res[f"C={c:g}"]
        f = lambda d: f"{d['mean']['density_error']:.3f} (±{d['se']['density_error']:.3f}); {100 * d['mean']['density_mismatch_rate']:.0f} % bars off"
        add("--C", f"{c:g} (default 0.7)", "density error (mean abs. difference / 16); share of bars off",
            f(base), f(d), base["mean"]["density_error"], d["mean"]["density_error"])
    est = tempo_rows[0]
    for t in tempo_rows[1:]:
        f = lambda r: f"{r['midi_tempo']:.0f} bpm, {r['n_bars']} bars, music {r['music_seconds']:.1f} s"
        add("--my_tempo", f"{t['tempo']:.0f} (estimated {est['tempo']:.0f})", "MIDI tempo, bars, end of the last note (the mp4's audio is cut to the video)",
            f(est), f(t), est["music_seconds"], t["music_seconds"])
    md = ["| control | setting | metric | without (default) | with |", "|---|---|---|---|---|"]
    md += [f"| {r['control']} | {r['setting']} | {r['metric']} | {r['without']} | {r['with']} |" for r in rows]
    return rows, "\n".join(md) + "\n"


def plot(res: dict, tempo_rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = res["baseline"]
    grey, col = "#9a9a9a", "#2b6cb0"
    fig, axs = plt.subplots(2, 4, figsize=(18, 8.5))

    def pair(ax, labels, without, with_, ylabel, ttl, err_w=None, err_x=None, fmt="{:.0f}"):
        x = np.arange(len(labels))
        ax.bar(x - 0.2, without, 0.4, color=grey, label="without (default)", yerr=err_w, capsize=2)
        ax.bar(x + 0.2, with_, 0.4, color=col, label="with control", yerr=err_x, capsize=2)
        for xi, a, b in zip(x, without, with_):
            ax.text(xi - 0.2, a, fmt.format(a), ha="center", va="bottom", fontsize=7)
            ax.text(xi + 0.2, b, fmt.format(b), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(ttl, fontsize=9)
        ax.set_ylim(0, 120)
        ax.legend(fontsize=7, loc="upper center", ncol=2, frameon=False)

    names = list(INSTRUMENT_SETS)
    w = [100 * sum(base["instrument_share"][D.INSTRUMENTS[i - 1]] for i in INSTRUMENT_SETS[n]) for n in names]
    x = [100 * sum(res[f"instruments={n}"]["instrument_share"][D.INSTRUMENTS[i - 1]] for i in INSTRUMENT_SETS[n])
         for n in names]
    pair(axs[0, 0], names, w, x, "% of notes", "--instruments: notes in the requested classes")

    kids = [key_id(k) for k in KEYS]
    pair(axs[0, 1], KEYS, [100 * base["mean"][f"in_scale_{k}"] for k in kids],
         [100 * res[f"key={n}"]["mean"][f"in_scale_{k}"] for n, k in zip(KEYS, kids)],
         "% of pitched note mass", "--key: mass in the requested key's scale",
         [100 * base["se"][f"in_scale_{k}"] for k in kids],
         [100 * res[f"key={n}"]["se"][f"in_scale_{k}"] for n, k in zip(KEYS, kids)])
    pair(axs[0, 2], KEYS, [100 * agree(base, k)[0] for k in kids],
         [100 * agree(res[f"key={n}"], k)[0] for n, k in zip(KEYS, kids)],
         "% of songs", "--key: Krumhansl estimate = requested key")

    # key matrix: in-scale share of each generated setting (rows) for each key's scale (columns)
    ax = axs[0, 3]
    mat = np.array([[100 * res[f"key={n}"]["mean"][f"in_scale_{k}"] for k in kids] for n in KEYS])
    im = ax.imshow(mat, cmap="Blues", vmin=50, vmax=100)
    for i in range(len(KEYS)):
        for j in range(len(KEYS)):
            ax.text(j, i, f"{mat[i, j]:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if mat[i, j] > 85 else "black")
    ax.set_xticks(range(len(KEYS)), [k.replace(" major", "").replace(" minor", "m") for k in KEYS], fontsize=8)
    ax.set_yticks(range(len(KEYS)), [f"--key {k}" for k in KEYS], fontsize=8)
    ax.set_xlabel("scale measured", fontsize=8)
    ax.set_title("--key: % mass in each scale (rows: requested)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)

    ax = axs[1, 0]
    genres = [k for k in res if k.startswith("genre=")]
    labels = ["notes/bar", "pitch range (st)", "mean pitch - 40"] + [f"% {n}" for n in D.INSTRUMENTS]
    figures = lambda d: [d["mean"]["notes_per_bar"], d["mean"]["pitch_range"], d["mean"]["pitch_mean"] - 40] + \
        [100 * d["instrument_share"][n] for n in D.INSTRUMENTS]   # noqa: E731
    xx = np.arange(len(labels))
    width = 0.8 / (1 + len(genres))
    ax.bar(xx - 0.4 + width / 2, figures(base), width, color=grey, label="default genre")
    for j, name in enumerate(genres):
        ax.bar(xx - 0.4 + width * (j + 1.5), figures(res[name]), width, label=name.split("=", 1)[1])
    ax.set_xticks(xx, labels, fontsize=7, rotation=30, ha="right")
    ax.set_title("--genre: descriptive figures", fontsize=9)
    ax.legend(fontsize=7)

    ax = axs[1, 1]
    ms = MIN_STRENGTHS
    d = [res[f"min_strength={m}"] for m in ms]
    xx = np.arange(len(ms))
    ax.bar(xx - 0.2, [v["mean"]["hit_rate_all_beats"] * 100 for v in d], 0.4, color=col,
           label="% of all visual beats with an onset")
    ax.bar(xx + 0.2, [v["mean"]["strength_error"] * 100 for v in d], 0.4, color="#d69e2e",
           label="strength error x100 (kept beats)")
    for xi, v in zip(xx, d):
        ax.text(xi, max(v["mean"]["hit_rate_all_beats"], v["mean"]["strength_error"]) * 100 + 2,
                f"{v['mean']['forced_beats']:.0f} forced", ha="center", fontsize=7)
    ax.set_xticks(xx, [f"{m}{' (default)' if m == DEFAULT_MIN_STRENGTH else ''}" for m in ms], fontsize=8)
    ax.set_ylim(0, 115)
    ax.set_title("--density_threshold (min strength of forced beats)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")

    ax = axs[1, 2]
    d = [res[f"C={c:g}"] for c in CS]
    xx = np.arange(len(CS))
    ax.bar(xx, [v["mean"]["density_error"] for v in d], 0.5, color=[col if c != DEFAULT_C else grey for c in CS],
           yerr=[v["se"]["density_error"] for v in d], capsize=3)
    top = max(v["mean"]["density_error"] + v["se"]["density_error"] for v in d)
    for xi, v in zip(xx, d):
        ax.text(xi, v["mean"]["density_error"] + v["se"]["density_error"] + 0.01 * top,
                f"{v['mean']['density_error']:.3f}\n{100 * v['mean']['density_mismatch_rate']:.0f} % bars off",
                ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, 1.25 * top)
    ax.set_xticks(xx, [f"C={c:g}{' (default)' if c == DEFAULT_C else ''}" for c in CS], fontsize=8)
    ax.set_ylabel("density error (mean |Δ| / 16)", fontsize=8)
    ax.set_title("--C: density control error", fontsize=9)

    ax = axs[1, 3]
    xx = np.arange(len(tempo_rows))
    ax.bar(xx - 0.2, [r["n_bars"] for r in tempo_rows], 0.4, color=grey, label="bars")
    ax.bar(xx + 0.2, [r["music_seconds"] for r in tempo_rows], 0.4, color=col, label="music length (s)")
    ax.axhline(tempo_rows[0]["video_seconds"], color="k", lw=0.8, ls="--", label="video length (s)")
    for xi, r in zip(xx, tempo_rows):
        ax.text(xi + 0.2, r["music_seconds"] + 0.3, f"{r['music_seconds']:.1f} s", ha="center", fontsize=7)
    ax.set_ylim(0, 1.3 * max(max(r["music_seconds"], r["n_bars"]) for r in tempo_rows))
    ax.set_xticks(xx, [f"{r['tempo']:.0f} bpm{' (est.)' if i == 0 else ''}" for i, r in enumerate(tempo_rows)],
                  fontsize=8)
    ax.set_title("--my_tempo: bars and end of the last note", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", ncol=3, frameon=False)

    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main

def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=str(pipeline.DEFAULT_CKPT))
    ap.add_argument("--songs", type=int, default=32, help="songs per setting, generated as one batch (default 32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--video", default=str(ROOT / "videos" / "demo.mp4"))
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: token-by-token generation of a small model gains little "
                         "from more, and loses much when the cores are shared)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    log(f"loading {args.ckpt}")
    model = load_checkpoint(args.ckpt)
    dtype = compute.prepare(model, "auto")   # the CLI's default precision, and the traced step
    vocab = model.vocab or {}
    known_keys = list(vocab.get("keys") or [])
    default_key = pipeline.init_block(model, pipeline.Options())[1, 1]
    log(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, dtype {dtype}, "
        f"instruments {vocab.get('instruments')}, genres {vocab.get('genres')}, default key "
        f"{D.KEY_NAMES[default_key]}, known keys {len(known_keys)}")
    for k in KEYS:
        if key_id(k) not in known_keys:
            log(f"note: {k} (id {key_id(k)}) is not among the keys the model was trained with; "
                "main_cp.py --key accepts it all the same, so it is measured as an untrained embedding")

    results: dict = {}
    tempo_rows: list[dict] = []
    from vidscore.video import analyse_video, metadata_to_rows
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        log(f"analysing {args.video} (cold cache)")
        meta = analyse_video(args.video, cache_dir=str(cache), progress=False)
        rows = metadata_to_rows(meta)
        n_bars = int((rows[:, 0] == D.BAR).sum())
        beats = rows[rows[:, 0] != D.BAR]
        log(f"video: {meta['duration']:.1f} s, {meta['tempo']:.1f} bpm, {n_bars} bars, {len(beats)} visual beats "
            f"(strengths {strength_counts(beats)})")

        log("warm-up generation (first call pays one-off kernel set-up)")
        t = time.perf_counter()
        generate(model, meta, pipeline.Options(), 1, args.seed)
        warmup = time.perf_counter() - t
        log(f"warm-up took {warmup:.1f} s")

        kids = [key_id(k) for k in KEYS]
        settings = {"baseline": pipeline.Options()}
        for name, ids in INSTRUMENT_SETS.items():
            settings[f"instruments={name}"] = pipeline.Options(instruments=ids)
        for k in KEYS:
            settings[f"key={k}"] = pipeline.Options(key=key_id(k))
        default_genre = D.GENRES[vocab.get("default_genre", 0)]
        for g in GENRES:
            if g != default_genre and (not vocab.get("genres") or D.genre_id(g) in vocab["genres"]):
                settings[f"genre={g}"] = pipeline.Options(genre=D.genre_id(g))
        for ms in MIN_STRENGTHS:
            settings[f"min_strength={ms}"] = pipeline.Options(min_strength=ms)
        for c in CS:
            settings[f"C={c:g}"] = pipeline.Options(C=c)
        log(f"{len(settings)} settings x {args.songs} songs, seed {args.seed}")
        for name, opts in settings.items():
            run_setting(name, model, meta, opts, args, kids, results)
        results["baseline"]["settings"]["key_default"] = int(default_key)

        log("user tempo: re-analysing with --my_tempo (flow features from the cache) and generating")
        n_t = min(args.songs, 4)
        for tempo in [None] + TEMPOS:
            m = analyse_video(args.video, tempo=tempo, cache_dir=str(cache), progress=False)
            songs, _, r, _ = generate(model, m, pipeline.Options(tempo=tempo), n_t, args.seed)
            mid = tokens_to_midi(np.asarray(songs[0].tokens), Path(tmp) / "t.mid", float(m["tempo"]))
            ends = [metrics.song_end_seconds(metrics.as_notes(representation.tokens_to_notes(
                np.asarray(s.tokens))), float(m["tempo"])) for s in songs]
            row = {"tempo": float(m["tempo"]), "tempo_source": "user" if tempo else "estimated",
                   "midi_tempo": float(mid.tempo_changes[0].tempo), "n_bars": int((r[:, 0] == D.BAR).sum()),
                   "n_beat_ticks": int(r[0, 4]), "visual_beats": int((r[:, 0] != D.BAR).sum()),
                   "grid_seconds": int((r[:, 0] == D.BAR).sum()) * 240.0 / float(m["tempo"]),
                   "music_seconds": float(np.mean(ends)), "music_seconds_per_song": ends,
                   "video_seconds": float(m["duration"]), "songs": n_t}
            tempo_rows.append(row)
            log(f"tempo {row['tempo']:.0f} bpm ({row['tempo_source']}): MIDI {row['midi_tempo']:.1f} bpm, "
                f"{row['n_bars']} bars, {row['visual_beats']} visual beats, music {row['music_seconds']:.1f} s "
                f"of a {row['video_seconds']:.1f} s video")

    table, md = build_table(results, tempo_rows, args.songs, known_keys, D.GENRES[vocab.get("default_genre", 0)])
    total = time.perf_counter() - T0
    report = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "run_seconds": total,
        "warmup_seconds": warmup,
        "settings": {"ckpt": str(args.ckpt), "songs": args.songs, "seed": args.seed, "video": str(args.video),
                     "dtype": str(dtype).replace("torch.", ""), "defaults": {"C": DEFAULT_C,
                     "min_strength": DEFAULT_MIN_STRENGTH, "instruments": vocab.get("instruments"),
                     "key": D.KEY_NAMES[default_key], "genre": D.GENRES[vocab.get("default_genre", 0)]},
                     "scale": "diatonic (natural minor for minor keys), duration-weighted pitch-class mass, "
                              "drums excluded",
                     "notes": "baseline = pipeline defaults; every setting changes one control; all settings "
                              "share the video rows and the seed (one batch of songs each)"},
        "model": {"vocab": vocab, "known_key_names": [D.KEY_NAMES[k] for k in known_keys],
                  "parameters": sum(p.numel() for p in model.parameters())},
        "video": {"duration": float(meta["duration"]), "tempo": float(meta["tempo"]), "n_bars": n_bars,
                  "visual_beats": int(len(beats)),
                  "strength_counts": strength_counts(beats)},
        "table": table,
        "results": results,
        "key_names": {str(k): D.KEY_NAMES[k] for k in range(len(D.KEY_NAMES))},
        "tempo": tempo_rows,
    }
    (out / "controls.json").write_text(json.dumps(_plain(report), indent=1, allow_nan=False))
    (out / "controls.md").write_text(
        f"Controls with the bundled model on {Path(args.video).name} ({meta['duration']:.0f} s, {n_bars} bars), "
        f"{args.songs} songs per setting, seed {args.seed}; *without* = the default pipeline "
        f"(C 0.7, density_threshold 2, all instruments, {D.KEY_NAMES[default_key]}, "
        f"{D.GENRES[vocab.get('default_genre', 0)]}); ± = standard error over songs.\n\n" + md + MD_NOTES)
    plot(results, tempo_rows, out / "controls.png",
         f"Inference controls, bundled model, {Path(args.video).name}, {args.songs} songs per setting, seed {args.seed}")
    print()
    print(md)
    log(f"wrote {out / 'controls.json'}, controls.md, controls.png; total {total:.0f} s")


def _plain(o):
    """JSON-ready copy: NumPy scalars and arrays to Python, NaN to null."""
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, np.ndarray)):
        return [_plain(v) for v in o]
    if isinstance(o, (bool, np.bool_)):
        return bool(o)
    if isinstance(o, (int, np.integer)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    return o


if __name__ == "__main__":
    main()
