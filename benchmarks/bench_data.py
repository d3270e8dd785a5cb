"""Throughput of the data tools on the offline corpus (files/s, tokens/s), on this machine.

    python benchmarks/bench_data.py [--midi_dir dataset/music21_midi] [--n 600] [--workers 2]

* midi2numpy: MIDI folder -> training npz (tokenise with no cache, then again from the cache).
* pianoroll2midi: LPD-style pianorolls (made once from the same MIDI files with pypianoroll,
  resolution 24, five named tracks, under benchmarks/data/) -> MIDI.

The originals managed about 5 files/s (midi2numpy) and 3 files/s (pianoroll2midi) on
LPD songs, which are longer than most pieces here: compare tokens/s and notes/s too.
Prints a table and writes benchmarks/results/bench_data.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("CMT_NO_PROGRESS", "1")

import numpy as np  # noqa: E402

from vidscore import cli  # noqa: E402
from vidscore.training import corpus  # noqa: E402
from vidscore.training import dataset  # noqa: E402
from vidscore import constants as D  # noqa: E402


def make_pianorolls(files, out_dir: Path, resolution: int = 24) -> int:
    """LPD-like .npz pianorolls of MIDI files (five tracks in LPD order, empty ones included)."""
    import miditoolkit
    import pypianoroll

    made = 0
    for sid, path in files:
        dst = out_dir / f"{sid}.npz"
        if dst.exists():
            made += 1
            continue
        m = miditoolkit.MidiFile(str(path))
        scale = resolution / m.ticks_per_beat
        end = int(max(n.end for i in m.instruments for n in i.notes) * scale) + 1
        rolls = {name: np.zeros((end, 128), dtype=bool) for name in D.INSTRUMENTS}
        for inst in m.instruments:
            cls = corpus.instrument_class(inst.name, inst.program, inst.is_drum)
            if not cls:
                continue
            roll = rolls[D.INSTRUMENTS[cls - 1]]
            for n in inst.notes:
                s, e = int(n.start * scale), max(int(n.end * scale), int(n.start * scale) + 1)
                roll[s:e - 1 if e - s > 1 else e, n.pitch] = True  # leave a gap so repeated notes stay apart
        downbeat = np.zeros(end, dtype=bool)
        downbeat[::4 * resolution] = True
        tracks = [pypianoroll.BinaryTrack(name=name, program=D.PROGRAMS[name], is_drum=(name == "Drums"),
                                          pianoroll=rolls[name]) for name in D.INSTRUMENTS]
        mt = pypianoroll.Multitrack(name=sid, resolution=resolution, tempo=np.full(end, 120.0),
                                    downbeat=downbeat, tracks=tracks)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with cli.atomic_path(dst) as tmp:
            pypianoroll.save(tmp, mt)
        made += 1
    return made


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--midi_dir", default=str(ROOT / "dataset" / "music21_midi"))
    ap.add_argument("--n", type=int, default=600, help="files to use (spread over the folder; default 600)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_data.json"))
    args = ap.parse_args()
    files = dataset.find_midi_files(args.midi_dir)
    if not files:
        raise SystemExit(f"no MIDI under {args.midi_dir}: run `make corpus` first")
    step = max(1, len(files) // args.n)
    files = files[::step][:args.n]
    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for workers in sorted({1, args.workers}):
            t0 = time.perf_counter()
            stats = dataset.build_training_set(files, tmp / f"b{workers}.npz", workers=workers, cache_dir=None,
                                               max_len=10000)
            dt = time.perf_counter() - t0
            rows.append({"tool": "midi2numpy_mix (no cache)", "workers": workers, "files": len(files), "seconds": dt,
                         "files_per_s": len(files) / dt, "tokens_per_s": stats["tokens"] / dt,
                         "notes_per_s": stats["notes"] / dt, "tokens_per_file": stats["tokens"] / stats["songs"]})
        cache = tmp / "cache"
        dataset.build_training_set(files, tmp / "warm.npz", workers=args.workers, cache_dir=cache)
        t0 = time.perf_counter()
        stats = dataset.build_training_set(files, tmp / "warm2.npz", workers=args.workers, cache_dir=cache)
        dt = time.perf_counter() - t0
        rows.append({"tool": "midi2numpy_mix (cached)", "workers": args.workers, "files": len(files), "seconds": dt,
                     "files_per_s": len(files) / dt, "tokens_per_s": stats["tokens"] / dt,
                     "notes_per_s": stats["notes"] / dt, "tokens_per_file": stats["tokens"] / stats["songs"]})
        rolls = ROOT / "benchmarks" / "data" / "pianorolls"
        make_pianorolls(files, rolls)
        n_notes = stats["notes"]
        for workers in sorted({1, args.workers}):
            out = tmp / f"midi{workers}"
            t0 = time.perf_counter()
            rep = corpus.convert_pianoroll_folder(rolls, out, workers=workers)
            dt = time.perf_counter() - t0
            n = rep.n_ok + len(rep.skipped)
            rows.append({"tool": "pianoroll2midi", "workers": workers, "files": n, "seconds": dt,
                         "files_per_s": n / dt, "tokens_per_s": None, "notes_per_s": n_notes / dt,
                         "tokens_per_file": None})
            shutil.rmtree(out)
    print(f"{'tool':28s} {'workers':>7s} {'files':>6s} {'seconds':>8s} {'files/s':>8s} {'tokens/s':>9s} "
          f"{'notes/s':>8s}")
    for r in rows:
        tok = f"{r['tokens_per_s']:9.0f}" if r["tokens_per_s"] else f"{'-':>9s}"
        print(f"{r['tool']:28s} {r['workers']:7d} {r['files']:6d} {r['seconds']:8.2f} {r['files_per_s']:8.1f} "
              f"{tok} {r['notes_per_s']:8.0f}")
    print(f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
          "(other processes share these cores; figures are lower bounds)")
    result = {"machine": f"{os.cpu_count()} CPUs", "load_average_before_after": [load_before, os.getloadavg()[0]],
              "midi_dir": str(args.midi_dir), "rows": rows,
              "original_files_per_s": {"midi2numpy_mix": 5, "pianoroll2midi": 3}}
    cli.write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
