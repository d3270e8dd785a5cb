"""The ``mma`` source of prepare_corpus.py: music21 melodies arranged by MMA in a worker pool.

Per melody (:func:`arrange_job`): the music21 piece converted to MIDI once (``corpus``'s converter,
kept under ``.cache/mma/melodies-v<converter version>/``), its melody and a chord per bar
(:func:`mma_chart.harmonise`), ``per_melody`` arrangements in different genre families seeded by
the melody id (:func:`mma_chart.plan_songs`), each a chart rendered by MMA and arranged with the
melody (:func:`mma.arrange`).  A song is cached under ``.cache/mma/songs/`` by the sha256 of its
chart, melody and lead, so a rebuild renders only what changed.  See docs/corpus_mma.md.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

from vidscore import cli
from vidscore import constants as D
from vidscore.training import corpus
from vidscore.training import mma
from vidscore.training import mma_chart as C
from vidscore.music.representation import BadMidiError, extract_notes, load_midi

MELODY_COLLECTIONS = tuple(sorted(corpus.FOLK_COLLECTIONS))   # the tune books: single-line melodies
DEFAULT_MELODIES = 1200
DEFAULT_GROOVES = 3
MIN_BARS, MAX_BARS = 4, 128


def _melody(unit, melody_dir: Path):
    """``(midi, track, notes, n_bars)`` of a music21 unit, converted once into ``melody_dir``
    (a failure's reason is kept beside it, so a rerun does not parse the piece again)."""
    dst, skip = melody_dir / f"{unit.uid}.mid", melody_dir / f"{unit.uid}.skip"
    if skip.is_file():
        raise corpus.SkipFile(skip.read_text(encoding="utf-8").strip())
    try:
        corpus.convert_music21_job((unit, str(dst)))
    except corpus.SkipFile as e:
        cli.write_text_atomic(skip, f"{e}\n")
        raise
    midi = load_midi(dst)
    track = mma.melody_track(midi)
    solo = type(midi)(ticks_per_beat=midi.ticks_per_beat)
    solo.instruments = [track]
    notes, _ = extract_notes(solo, min_track_notes=1, check_time_signature=False)
    n_bars = int(-(-(notes[:, 0] + notes[:, 2].clip(1)).max() // D.TICKS_PER_BAR))
    if not MIN_BARS <= n_bars <= MAX_BARS:
        raise corpus.SkipFile(f"melody of {n_bars} bars (arranged: {MIN_BARS} to {MAX_BARS})")
    return midi, track, notes, n_bars


def arrange_job(job: tuple) -> dict:
    """Worker: ``(unit, settings)`` -> ``{"songs": [...], "failed": [(song id, reason)]}``; each song
    ``{"id", "path", "family", "cached", "seconds", "bars", "drums"}``.  ``settings``: ``home``,
    ``melody_dir``, ``song_dir``, ``per_melody`` and ``styles`` (:func:`load_styles`)."""
    unit, s = job
    midi, track, notes, n_bars = _melody(unit, Path(s["melody_dir"]))
    bar_chords = C.harmonise(notes, n_bars)
    melody_sha = hashlib.sha256(Path(s["melody_dir"], f"{unit.uid}.mid").read_bytes()).hexdigest()
    songs, failed = [], []
    for plan in C.plan_songs(unit.uid, s["styles"], s["per_melody"]):
        sid = C.song_id(unit.uid, plan)
        chart = C.chart_text(sid, plan, bar_chords)
        key = hashlib.sha256(f"{mma.ARRANGER_VERSION}\n{melody_sha}\n{plan.lead}\n{chart}".encode()).hexdigest()
        dst = Path(s["song_dir"], key[:2], f"{key}.mid")
        t0, cached = time.perf_counter(), dst.is_file()
        try:
            if not cached:
                rendered = mma.render(Path(s["home"]), chart)
                sig = {(t.numerator, t.denominator) for t in rendered.time_signature_changes}
                if sig - {(4, 4)}:
                    raise corpus.SkipFile(f"groove not in 4/4 ({plan.groove}: {sorted(sig)})")
                song = mma.arrange(rendered, track, midi.ticks_per_beat, C.intro_bars(plan), plan.lead)
                with cli.atomic_path(dst) as tmp:
                    song.dump(tmp)
            else:
                song = load_midi(dst)
        except (corpus.SkipFile, BadMidiError) as e:
            failed.append((sid, str(e)))
            continue
        songs.append({"id": sid, "path": str(dst), "family": plan.family, "cached": cached,
                      "seconds": time.perf_counter() - t0, "bars": song.max_tick / (4 * song.ticks_per_beat),
                      "drums": any(i.is_drum and i.notes for i in song.instruments)})
    return {"songs": songs, "failed": failed}


# ---------------------------------------------------------------------------------
# the whole source
# ---------------------------------------------------------------------------------

def select_melodies(n: int, collections=MELODY_COLLECTIONS) -> list:
    """``n`` (0: all) music21 tunes of 16-sixteenth bars from ``collections``, chosen by a salted
    hash of their ids (adding tunes to music21 never changes which of the old ones are chosen)."""
    units, _ = corpus.music21_units(list(collections))
    units.sort(key=lambda u: hashlib.sha1(f"mma-melody:{u.uid}".encode()).hexdigest())
    return units[:n] if n else units


def build_songs(n_melodies: int = DEFAULT_MELODIES, per_melody: int = DEFAULT_GROOVES, families=None,
                workers: int | None = None, home: Path | None = None, units: list | None = None):
    """Arrange ``n_melodies`` melodies (:func:`select_melodies`; or the music21 ``units`` given)
    ``per_melody`` times each in a worker pool.  Returns ``(files, genre map, report, stats)``:
    ``[(song id, path)]`` sorted, ``{song id: genre id}``, the JobReport (a melody or a song that
    fails is skipped with its reason) and figures per family (:func:`song_stats`)."""
    home = home or mma.fetch()
    styles = mma.load_styles(home, families, workers)
    settings = {"home": str(home), "melody_dir": str(mma.cache_root() / f"melodies-v{corpus.CONVERTER_VERSION}"),
                "song_dir": str(mma.cache_root() / "songs"), "per_melody": per_melody, "styles": styles}
    report = corpus.JobReport("mma songs")
    songs = []
    for (unit, _), ok, value in corpus.run_jobs(arrange_job, [(u, settings) for u in units or select_melodies(n_melodies)],
                                                workers=workers, desc="mma"):
        if not ok:
            report.skip(unit.uid, value)
            continue
        for song in value["songs"]:
            report.ok(cached=song["cached"])
            songs.append(song)
        for sid, reason in value["failed"]:
            report.skip(sid, reason)
    songs.sort(key=lambda s: s["id"])
    report.skipped.sort(key=lambda s: s["id"])
    files = [(s["id"], Path(s["path"])) for s in songs]
    genres = {s["id"]: C.family_genre_id(s["family"]) for s in songs}
    return files, genres, report, song_stats(songs, styles)


def song_stats(songs: list[dict], styles: dict) -> dict:
    """Per family: grooves it can use, songs, share with drums, mean bars; render time of new songs."""
    fams = {}
    for name, ss in sorted(styles.items()):
        mine = [s for s in songs if s["family"] == name]
        fams[name] = {"genre": C.FAMILIES[name].genre, "libraries": len(ss), "grooves": sum(len(s.mains) for s in ss),
                      "songs": len(mine), "with_drums": round(sum(s["drums"] for s in mine) / max(len(mine), 1), 3),
                      "mean_bars": round(sum(s["bars"] for s in mine) / max(len(mine), 1), 1)}
    new = [s["seconds"] for s in songs if not s["cached"]]
    return {"families": fams, "rendered": len(new),
            "render_seconds_mean": round(sum(new) / len(new), 3) if new else None}


def source_files(args) -> tuple[list, dict, dict]:
    """``(files, genre map, conversion stats)`` of ``--source mma`` (prepare_corpus's options
    ``--mma_melodies``, ``--mma_grooves``, ``--mma_families``, ``--workers``)."""
    t0 = time.perf_counter()
    families = args.mma_families or sorted(C.FAMILIES)
    if args.mma_melodies < 0:
        raise cli.UserError("--mma_melodies must be >= 0 (0 = every melody)")
    if not 1 <= args.mma_grooves <= len(families):
        raise cli.UserError(f"--mma_grooves must be 1..{len(families)} (one arrangement per family at most)")
    files, genres, report, stats = build_songs(args.mma_melodies, args.mma_grooves, families, args.workers)
    print("\n".join(report.lines()))
    for name, f in stats["families"].items():
        print(f"  {name:10s} {f['genre']:10s} {f['songs']:5d} songs  {f['grooves']:3d} grooves  "
              f"drums {100 * f['with_drums']:5.1f} %  {f['mean_bars']:5.1f} bars")
    if not files:
        raise cli.UserError("no melody could be arranged by MMA (see the reasons above)")
    return files, genres, {"what": "music21 melodies arranged by MMA", "package": f"mma {mma.PIN.version}",
                           "licence": "GPL-2.0-or-later (MMA and its grooves); the melodies' own terms",
                           "melodies": args.mma_melodies, "grooves_per_melody": args.mma_grooves,
                           "songs": report.n_ok, "reused": report.cached, "skipped": report.reason_counts(),
                           "skipped_items": report.skipped, **stats, "seconds": round(time.perf_counter() - t0, 2)}
