"""The --source choices of prepare_corpus.py: where each source's MIDI files come from, their genre
labels and the conversion stats the training set records (see docs/ on the training data)."""
from __future__ import annotations

import time
from pathlib import Path

from vidscore import cli
from vidscore import constants as D
from vidscore.training import corpus
from vidscore.training import dataset
from vidscore.training import freedoom
from vidscore.training import mma, mma_source

#: every --source name; "lpd" only alone, "overlay" with music21 and a drummed source
NAMES = ["music21", "midi", "lpd", *corpus.DEBIAN_MIDI_SOURCES, "freedoom", "mma", "overlay"]
#: the sources whose songs have drums (overlay takes its drum loops from them)
DRUMMED = {*corpus.DEBIAN_MIDI_SOURCES, "freedoom", "mma"}
#: the sources fetched from Debian's archive into .cache/debian/ (training.debian; `make sources`)
DEBIAN_PINS = {"freedoom": freedoom.PIN, "mma": mma.PIN}


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
    if source == "freedoom":
        return freedoom.source_files()
    if source == "mma":
        return mma_source.source_files(args)
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
    drummed = [f for f in files if source_of[f[0]] in DRUMMED]
    if not pitched or not drummed:
        raise cli.UserError(f"--source overlay needs music21 and a drummed source ({', '.join(sorted(DRUMMED))}) "
                            "among the sources")
    if args.overlays < 1:
        raise cli.UserError("--overlays must be at least 1")
    split = dataset.assign_split([sid for sid, _ in files], args.val_fraction)
    got = corpus.build_overlays([f for f in pitched if not split[f[0]]], [f for f in drummed if not split[f[0]]],
                                args.overlay_out, args.overlays)
    if not got:
        raise cli.UserError("no overlay could be made: the drummed songs have no drum loop")
    print(f"overlay: {len(got)} music21 pieces with a drum loop laid under them ({args.overlay_out})")
    return got


def gather(sources: list[str], args) -> tuple[list, dict, dict, dict]:
    """``(files, genre map, source of each id, extra stats)`` of ``sources`` (overlay last: it
    draws on the others)."""
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
    return files, genre_map, source_of, extra
