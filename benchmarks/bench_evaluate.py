"""Time of the evaluation metrics per song, by song length (issue 7).

    python benchmarks/bench_evaluate.py [--lengths 30,60,120,240] [--repeats 3]

Songs are made here (5 tracks, a 4-bar chord loop with random melody notes, 120 bpm, about
9 notes per second).  For each length: PCHE (1 and 4 bars) + GPS, the structureness
indicator with the default settings (every m/16-th start) and with every start (--si_exact),
and the rhythm / control metrics against a video of one visual beat per second.  Prints a
table (median of --repeats runs, seconds) and writes benchmarks/results/evaluate.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("CMT_NO_PROGRESS", "1")

import numpy as np  # noqa: E402

from vidscore import cli  # noqa: E402
from vidscore.evaluation import metrics as M  # noqa: E402


def make_song(seconds: float, tempo: float = 120.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_bars = int(round(seconds * tempo / 240.0))
    chords = [int(rng.integers(48, 60)) + np.array([0, 4, 7]) for _ in range(4)]
    rows = []
    for bar in range(n_bars):
        ch = chords[bar % 4]
        rows += [(bar * 16 + p, 36 if p % 8 == 0 else 38, 1, M.DRUMS) for p in range(0, 16, 4)]
        rows += [(bar * 16, int(p) + 12, 16, M.STRINGS) for p in ch]
        rows.append((bar * 16, int(ch[0]) - 12, 8, M.BASS))
        rows += [(bar * 16 + p, int(rng.choice(ch)) + 24, 2, M.PIANO) for p in range(0, 16, 2) if rng.random() < 0.6]
        rows += [(bar * 16 + p, int(ch[0]) + 12, 2, M.GUITAR) for p in (0, 8)]
    return M.as_notes(np.array(rows, dtype=np.int64))


def video_rows(seconds: float, tempo: float = 120.0) -> np.ndarray:
    n_beat = int(seconds * tempo / 15.0)
    rows = []
    for bar in range(n_beat // 16):
        rows.append([17, 5, 0, 16 * bar, n_beat, 1])
        rows += [[t + 1, 0, 3, 16 * bar + t, n_beat, 1] for t in (0, 8)]
    return np.array(rows)


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="30,60,120,240", help="song lengths in seconds")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "evaluate.json"))
    args = ap.parse_args()
    results = []
    exact = M.SISettings(start_spacing=0.0)
    for seconds in [float(s) for s in args.lengths.split(",")]:
        notes, rows = make_song(seconds), video_rows(seconds)
        beats = M.ticks_to_seconds(M.video_controls(rows)["beat_ticks"], 120.0)
        r = {"song_s": seconds, "notes": int(len(notes)),
             "si_frames": M.structureness(notes, 120.0)["si_frames"],
             "pche_gps_s": timed(lambda: (M.pitch_class_entropy(notes, 1), M.pitch_class_entropy(notes, 4),
                                          M.grooving_pattern_similarity(notes)), args.repeats),
             "si_default_s": timed(lambda: M.structureness(notes, 120.0), args.repeats),
             "si_exact_s": timed(lambda: M.structureness(notes, 120.0, exact), args.repeats),
             "rhythm_control_s": timed(lambda: (M.beat_alignment(beats, M.onset_times(notes, 120.0)),
                                                M.beat_alignment(M.onset_times(notes, 120.0), beats),
                                                M.control_errors(notes, rows)), args.repeats)}
        d, e = M.structureness(notes, 120.0), M.structureness(notes, 120.0, exact)
        r["si_default"] = [d[k] for k in M.SI_NAMES]
        r["si_exact"] = [e[k] for k in M.SI_NAMES]
        results.append(r)
    head = f"{'song (s)':>8} {'notes':>6} {'frames':>6} {'PCHE+GPS':>9} {'SI':>8} {'SI exact':>9} {'BA+ctrl':>8}"
    print(head)
    for r in results:
        print(f"{r['song_s']:8.0f} {r['notes']:6d} {r['si_frames']:6d} {r['pche_gps_s']:9.4f} "
              f"{r['si_default_s']:8.3f} {r['si_exact_s']:9.3f} {r['rhythm_control_s']:8.4f}")
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
           "repeats": args.repeats, "results": results}
    cli.write_text_atomic(args.out, json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
