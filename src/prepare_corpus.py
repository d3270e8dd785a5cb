"""Build a training set offline: from the scores music21 ships, General MIDI songs that Debian
packages install, a MIDI folder, or LPD pianorolls.

    python src/prepare_corpus.py --source music21 --out_name dataset/music21.npz
    python src/prepare_corpus.py --source music21 openmsx blupi --out_name dataset/bundled.npz
    python src/prepare_corpus.py --source midi --midi_dir DIR --out_name dataset/mine.npz
    python src/prepare_corpus.py --source lpd --in_dir lpd_5_cleansed --out_name dataset/lpd.npz

music21: pieces are converted to five-class MIDI under ``--midi_out`` (default
dataset/music21_midi, reused by later runs), then tokenised like any MIDI folder, with
genre Folk for the tune collections and Classical for the rest.  Writes the npz,
``<stem>_vocab.json`` and ``<stem>_stats.json`` (songs, tokens, bars, per-field vocab,
skipped pieces with reasons).  openmsx / blupi: the General MIDI songs (with drums) of the
Debian packages openttd-openmsx and planetblupi-music-midi, genre Pop (see docs/data.md,
"Drummed songs").  freedoom: the 66 distinct MIDI music lumps of Freedoom's two WADs (Debian package
freedoom, fetched into .cache/ by ``make sources``), each labelled Metal, Rock, Electronic,
NewAge or Pop by a rule on its instruments, drums and tempo (docs/corpus_freedoom.md).
mma: ``--mma_melodies`` music21 tunes, each arranged ``--mma_grooves`` times by MMA (Debian
package mma, fetched by ``make sources``) in grooves of different genre families (Rock, Pop, Jazz,
Latin, Country, Blues, Reggae, Folk, Ballad = NewAge, Electronic, RnB), labelled by the family
(docs/corpus_mma.md).
Several sources give one npz whose metadata names each song's source.

overlay (with music21 and a drummed source: openmsx, blupi, freedoom): ``--overlays`` music21
pieces of the training split with a 4-bar drum loop of a training-split drummed song laid under
them (written to ``--overlay_out``, default dataset/overlay_midi), genre Pop: the drummed songs'
drums only ever sit among other drums, and the overlays show the model drums among pitched parts.
"""
from __future__ import annotations

import argparse
import time

from vidscore import cli
from vidscore import paths
from vidscore.training import dataset
from vidscore.training import mma_chart, mma_source
from vidscore.training import sources as sources_mod
from vidscore.training.build_args import add_build_args, cache_dir_for, check_build_args, label_maps

MUSIC21_MAX_LEN = 2048


def main() -> int:
    ap = argparse.ArgumentParser(description="Build a CMT training npz from music21's corpus, a MIDI folder "
                                             "or LPD pianorolls.")
    ap.add_argument("--source", nargs="+", default=["music21"],
                    choices=sources_mod.NAMES,
                    help="where the music comes from (default music21); several may be combined, e.g. "
                         "music21 openmsx blupi (lpd only alone)")
    ap.add_argument("--out_name", default=None, help="output .npz (default dataset/<sources joined by _>.npz)")
    ap.add_argument("--midi_dir", help="--source midi: the folder of MIDI files")
    ap.add_argument("--in_dir", help="--source lpd: the folder of pypianoroll .npz files")
    ap.add_argument("--midi_out", help="where converted MIDI goes (default dataset/music21_midi or dataset/lpd_midi)")
    ap.add_argument("--cap", type=int, default=1000,
                    help="music21: at most this many pieces per collection (0 = all; default 1000)")
    ap.add_argument("--collections", nargs="*", help="music21: only these collections (e.g. bach essenFolksong)")
    ap.add_argument("--overlays", type=int, default=600,
                    help="overlay: how many music21 pieces get a drum loop laid under them (default 600)")
    ap.add_argument("--overlay_out", default="dataset/overlay_midi", help="overlay: where its MIDI files go")
    ap.add_argument("--mma_melodies", type=int, default=mma_source.DEFAULT_MELODIES,
                    help=f"mma: how many music21 tunes MMA arranges (0 = all; default {mma_source.DEFAULT_MELODIES})")
    ap.add_argument("--mma_grooves", type=int, default=mma_source.DEFAULT_GROOVES,
                    help=f"mma: arrangements per tune, each in another genre family "
                         f"(default {mma_source.DEFAULT_GROOVES})")
    ap.add_argument("--mma_families", nargs="*", choices=sorted(mma_chart.FAMILIES),
                    help="mma: only these genre families (default all; docs/corpus_mma.md)")
    add_build_args(ap, default_max_len=0)
    args = ap.parse_args()
    sources = list(dict.fromkeys(args.source))
    if "lpd" in sources and len(sources) > 1:
        raise cli.UserError("--source lpd cannot be combined with other sources; build it alone")
    if args.max_len == 0:
        args.max_len = MUSIC21_MAX_LEN if "music21" in sources else 10000
    if args.out_name is None:
        args.out_name = f"dataset/{'_'.join(sources)}.npz"
    args.out_name = str(paths.in_folder(args.out_name, "dataset"))
    check_build_args(args)
    if args.cap < 0:
        raise cli.UserError("--cap must be >= 0")
    t0 = time.perf_counter()
    user_genres, emotion_map = label_maps(args)
    files, genre_map, source_of, extra = sources_mod.gather(sources, args)
    if user_genres:
        genre_map.update(user_genres)
    if not files:
        raise cli.UserError("no MIDI files to tokenise")
    if extra.get("conversion") and len(extra["conversion"]) == 1 and len(sources) == 1:
        extra["conversion"] = next(iter(extra["conversion"].values()))
    stats = dataset.build_training_set(files, args.out_name, max_len=args.max_len, genre_map=genre_map,
                                       workers=args.workers, cache_dir=cache_dir_for(args),
                                       source=sources[0] if len(sources) == 1 else source_of,
                                       val_fraction=args.val_fraction, extra_stats=extra, preset=args.representation,
                                       emotion_map=emotion_map)
    print("\n".join(dataset.summary_lines(stats)))
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    cli.run(main)
