"""Do the bundled model's songs have drums, and do the drums carry the visual beats?

    python benchmarks/bench_drums.py [--ckpt exp/bundled/model.pt] [--videos videos/demo.mp4] [--songs 16]

With the default settings (no --genre, --instruments, ...), composes ``--songs`` songs per
video (MIDI only) and measures, from the written MIDI and the forced beats each song's JSON
lists: the share of songs with a drum track (an is_drum track: MIDI channel 10) and the share
of the visual beats forced on Drums that have a drum onset at their 16th; and which drum
sounds they are: the share of the songs' drum notes on the training data's commonest drum
sounds (those making up half of its drum notes; ``--data``).  Writes
benchmarks/results/drums.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]
os.environ.setdefault("CMT_NO_PROGRESS", "1")

import miditoolkit  # noqa: E402
import torch  # noqa: E402

from vidscore import constants as D  # noqa: E402
from vidscore.generation import job as pipeline  # noqa: E402
from vidscore.model.cmt import load_checkpoint  # noqa: E402


def song_drums(mid: Path, report: Path) -> dict:
    midi = miditoolkit.MidiFile(str(mid))
    kit = [n for i in midi.instruments if i.is_drum for n in i.notes]
    sixteenth = midi.ticks_per_beat // D.TICKS_PER_BEAT
    onsets = {n.start // sixteenth for n in kit}
    forced = [f for f in json.loads(report.read_text())["forced_beats"] if f[3] == D.DRUMS]
    hits = sum(16 * bar + bb - 1 in onsets for bar, bb, _, _ in forced)
    return {"drum_track": bool(kit), "drum_notes": len(kit), "drum_pitches": [n.pitch for n in kit],
            "forced_on_drums": len(forced), "hit": hits,
            "forced_tracks": sorted({D.INSTRUMENTS[f[3] - 1] for f in json.loads(report.read_text())["forced_beats"]})}


def data_drum_pitches(path: Path) -> collections.Counter:
    """The drum sounds (GM percussion keys) of a training npz's Drums notes."""
    import numpy as np
    from vidscore.training.loop import load_data
    data = load_data(str(path))
    out = collections.Counter()
    for i in range(len(data["x"])):
        x = np.asarray(data["x"][i][:int(data["seq_len"][i])])
        sel = (x[:, D.COL_TYPE] == D.TYPE_NOTE) & (x[:, D.COL_INSTRUMENT] == D.DRUMS)
        out.update((x[sel, D.COL_PITCH] - 1).tolist())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=str(ROOT / "exp" / "bundled" / "model.pt"))
    ap.add_argument("--videos", nargs="+", default=[str(ROOT / "videos" / "demo.mp4")])
    ap.add_argument("--songs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--genre", default="", help="a genre instead of the default (e.g. Folk)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "drums.json"))
    ap.add_argument("--data", default=str(ROOT / "dataset" / "bundled.npz"),
                    help="training npz whose drum sounds the songs' are compared with")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    model = load_checkpoint(args.ckpt).float().freeze()   # the traced step: the eager one's songs, faster
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        genre = D.genre_id(args.genre) if args.genre else None
        opts = pipeline.Options(out_dir=tmp, num_songs=args.songs, seed=args.seed, render=False, genre=genre)
        pipeline.run([Path(v) for v in args.videos], model, opts, log=lambda *a: None)
        for v in args.videos:
            for k in range(args.songs):
                base = Path(tmp) / f"{Path(v).stem}_{k}"
                rows.append({"video": Path(v).name, "song": k, **song_drums(base.with_suffix(".mid"),
                                                                            base.with_suffix(".json"))})
    n_forced = sum(r["forced_on_drums"] for r in rows)
    summary = {"ckpt": args.ckpt, "default_genre": D.GENRES[(model.vocab or {}).get("default_genre", 0)],
               "genre": args.genre or None, "drum_notes_per_song": sum(r["drum_notes"] for r in rows) / max(len(rows), 1),
               "songs": len(rows), "songs_with_drums": sum(r["drum_track"] for r in rows),
               "forced_on_drums": n_forced, "hit": sum(r["hit"] for r in rows),
               "hit_rate": round(sum(r["hit"] for r in rows) / n_forced, 4) if n_forced else None,
               "seconds": round(time.time() - t0, 1), "load_average": os.getloadavg(), "per_song": rows}
    gen = collections.Counter(p for r in rows for p in r["drum_pitches"])
    if Path(args.data).is_file():
        # the data's commonest drum sounds, covering half of its drum notes (kick, snares, hi-hat
        # for the bundled corpus): what share of the songs' drum notes are these sounds?
        data = data_drum_pitches(Path(args.data))
        core, cum = [], 0
        for p, c in data.most_common():
            if cum >= 0.5 * sum(data.values()):
                break
            core.append(p)
            cum += c
        summary["data_core_kit"] = core
        summary["core_kit_share"] = {"data": round(cum / max(sum(data.values()), 1), 3),
                                     "songs": round(sum(gen[p] for p in core) / max(sum(gen.values()), 1), 3)}
    summary["commonest_drum_pitches"] = gen.most_common(8)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    print("| songs | with a drum track | drum notes per song | visual beats forced on Drums | with a drum onset at their 16th |")
    print("|---|---|---|---|---|")
    share = summary["songs_with_drums"] / max(len(rows), 1)
    print(f"| {len(rows)} | {summary['songs_with_drums']} ({100 * share:.0f} %) | {summary['drum_notes_per_song']:.0f} | "
          f"{n_forced} | "
          f"{summary['hit']} ({100 * (summary['hit_rate'] or 0):.1f} %) |")
    if "core_kit_share" in summary:
        k = summary["core_kit_share"]
        print(f"drum notes on the data's commonest sounds {summary['data_core_kit']}: songs {100 * k['songs']:.0f} %, "
              f"data {100 * k['data']:.0f} %; the songs' commonest: {summary['commonest_drum_pitches']}")
    print(f"({summary['seconds']} s, load average {summary['load_average'][0]:.1f}; written {args.out})")


if __name__ == "__main__":
    main()
