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
Debian packages openttd-openmsx and planetblupi-music-midi, genre Pop (see README, "Training
data").  Several sources give one npz whose metadata names each song's source.

overlay (with music21 and openmsx and/or blupi): ``--overlays`` music21 pieces of the training
split with a 4-bar drum loop of a training-split drummed song laid under them (written to
``--overlay_out``, default dataset/overlay_midi), genre Pop: the drummed songs' drums only ever
sit among other drums, and the overlays show the model drums among pitched parts.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cli
import corpus
import dataset
import dictionary_mix as D
import paths
from midi2numpy_mix import add_build_args, cache_dir_for, check_build_args, label_maps

MUSIC21_MAX_LEN = 2048


def source_files(source: str, args) -> tuple[list, dict, dict | None]:
    """``(files, genre map, conversion stats or None)`` of one source."""
    t0 = time.perf_counter()
    if source == "music21":
        midi_out = Path(args.midi_out or "dataset/music21_midi")
        files, genres, report = corpus.build_music21_midi(midi_out, cap=args.cap or None, workers=args.workers,
                                                          collections_=args.collections)
        print("\n".join(report.lines()))
        if not files:
            raise cli.UserError("no music21 piece could be converted; check --collections")
        return files, genres, {"what": "music21 -> MIDI", "midi_dir": str(midi_out), "cap": args.cap,
                               "converted": report.n_ok, "reused": report.cached,
                               "skipped": report.reason_counts(), "skipped_pieces": report.skipped,
                               "seconds": round(time.perf_counter() - t0, 2)}
    if source == "lpd":
        if not args.in_dir or not Path(args.in_dir).is_dir():
            raise cli.UserError("--source lpd needs --in_dir, the folder of lpd-5 .npz files")
        midi_out = Path(args.midi_out or "dataset/lpd_midi")
        report = corpus.convert_pianoroll_folder(args.in_dir, midi_out, workers=args.workers)
        print("\n".join(report.lines()))
        return dataset.find_midi_files(midi_out), {}, {
            "what": "pianoroll -> MIDI", "midi_dir": str(midi_out), "converted": report.n_ok,
            "reused": report.cached, "skipped": report.reason_counts(), "skipped_files": report.skipped,
            "seconds": round(time.perf_counter() - t0, 2)}
    if source in corpus.DEBIAN_MIDI_SOURCES:
        try:
            files, genres = corpus.debian_midi_files(source)
        except corpus.SkipFile as e:
            raise cli.UserError(f"--source {source}: {e}") from None
        src = corpus.DEBIAN_MIDI_SOURCES[source]
        return files, genres, {"what": f"General MIDI files of the Debian package {src.package}",
                               "midi_dir": src.folder, "genre": src.genre, "licence": src.licence}
    if not args.midi_dir:
        raise cli.UserError("--source midi needs --midi_dir, a folder of MIDI files")
    if not Path(args.midi_dir).is_dir():
        raise cli.UserError(f"--midi_dir {args.midi_dir} is not a folder; give the folder of your MIDI files")
    files = dataset.find_midi_files(args.midi_dir)
    if not files:
        raise cli.UserError(f"--midi_dir {args.midi_dir} holds no .mid/.midi files (its subfolders are searched too)")
    return files, {}, None


def overlay_files(files: list, source_of: dict, args) -> list:
    """The overlay source's files, from the training-split music21 pieces and drummed songs among
    ``files`` (the split every song will get, so no validation piece or drum part is seen in
    training through an overlay)."""
    pitched = [f for f in files if source_of[f[0]] == "music21"]
    drummed = [f for f in files if source_of[f[0]] in corpus.DEBIAN_MIDI_SOURCES]
    if not pitched or not drummed:
        raise cli.UserError("--source overlay needs music21 and openmsx and/or blupi among the sources")
    if args.overlays < 1:
        raise cli.UserError("--overlays must be at least 1")
    split = dataset.assign_split([sid for sid, _ in files], args.val_fraction)
    got = corpus.build_overlays([f for f in pitched if not split[f[0]]], [f for f in drummed if not split[f[0]]],
                                args.overlay_out, args.overlays)
    if not got:
        raise cli.UserError("no overlay could be made: the drummed songs have no drum loop")
    print(f"overlay: {len(got)} music21 pieces with a drum loop laid under them ({args.overlay_out})")
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description="Build a CMT training npz from music21's corpus, a MIDI folder "
                                             "or LPD pianorolls.")
    ap.add_argument("--source", nargs="+", default=["music21"],
                    choices=["music21", "midi", "lpd", *corpus.DEBIAN_MIDI_SOURCES, "overlay"],
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
    files, genre_map, source_of, extra = [], {}, {}, {}
    for source in [s for s in sources if s != "overlay"]:
        got, genres, conversion = source_files(source, args)
        files += got
        genre_map.update(genres)
        source_of.update({sid: source for sid, _ in got})
        if conversion:
            extra.setdefault("conversion", {})[source] = conversion
    if "overlay" in sources:
        got = overlay_files(files, source_of, args)
        files += got
        genre_map.update({sid: D.genre_id(corpus.OVERLAY_GENRE) for sid, _ in got})
        source_of.update({sid: "overlay" for sid, _ in got})
        extra.setdefault("conversion", {})["overlay"] = {
            "what": "music21 pieces with a drum loop of a drummed song laid under them", "midi_dir": args.overlay_out,
            "pieces": len(got), "genre": corpus.OVERLAY_GENRE}
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
