"""The freedoom source: the music lumps of Freedoom's two game data files (Debian ``freedoom``).

Freedoom's ``freedoom1.wad`` and ``freedoom2.wad`` hold the game's music as ``D_*`` lumps
(entries of the WAD file's directory).  :func:`read_wad` reads and checks a WAD directory;
:func:`build` fetches the package (:mod:`vidscore.training.debian`), keeps the ``D_*`` lumps
that are Standard MIDI files, drops lumps whose content is byte-identical to an earlier one,
writes each song to ``.cache/freedoom/<lump name>.mid`` and labels it with a genre by
:func:`genre_of`, a rule on the notes' General MIDI programs, drum density and tempo (see
docs/corpus_freedoom.md).  Freedoom is BSD-3-Clause (the package's copyright file).
"""
from __future__ import annotations

import hashlib
import re
import struct
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from vidscore import cli, paths
from vidscore import constants as D
from vidscore.music.representation import BadMidiError, midi_from_bytes
from vidscore.training import debian

LICENCE = "BSD-3-Clause"
WADS = ("usr/share/games/doom/freedoom1.wad", "usr/share/games/doom/freedoom2.wad")
PIN = debian.Pin(
    "freedoom", "0.12.1-2",
    files={WADS[0]: "84c3a912f2973892a8025d09d65f5053b1ee2304968a5a172526d683a185b885",
           WADS[1]: "c72de2af7e2d0c17f6213e751a167e2f1913278aaf37ae6957854fe3cd6588ca"},
    deb_sha256="c5b7cf1aa6dde8c980271981ce75b9b4a9e7b634b9db93d471f54bab7a8e1290")

HEADER = struct.Struct("<4sii")     # id (IWAD/PWAD), lump count, directory offset
ENTRY = struct.Struct("<ii8s")      # lump offset, lump size, name (NUL-padded)


class WadError(ValueError):
    """A file that is not a readable WAD; ``str(e)`` is a one-line reason."""


@dataclass(frozen=True)
class Lump:
    name: str
    offset: int
    size: int


def read_wad(data: bytes) -> list[Lump]:
    """The directory of a WAD file's bytes, in file order; WadError if it is not a WAD, is
    truncated, or an entry points outside the file."""
    if len(data) < HEADER.size:
        raise WadError(f"truncated: {len(data)} bytes, shorter than the 12-byte WAD header")
    ident, count, at = HEADER.unpack_from(data)
    if ident not in (b"IWAD", b"PWAD"):
        raise WadError(f"not a WAD file (starts with {ident!r}, not IWAD or PWAD)")
    if count < 0 or at < HEADER.size:
        raise WadError(f"bad header: {count} lumps, directory at offset {at}")
    if at + count * ENTRY.size > len(data):
        raise WadError(f"truncated: the directory of {count} lumps at offset {at} ends at byte "
                       f"{at + count * ENTRY.size}, beyond the file's {len(data)} bytes")
    lumps = []
    for i in range(count):
        offset, size, raw = ENTRY.unpack_from(data, at + i * ENTRY.size)
        name = raw.split(b"\0", 1)[0].decode("ascii", "replace")
        if offset < 0 or size < 0 or offset + size > len(data):
            raise WadError(f"lump {i} ({name}) at offset {offset} with {size} bytes lies beyond the "
                           f"file's {len(data)} bytes (truncated?)")
        lumps.append(Lump(name, offset, size))
    return lumps


# ----------------------------------------------------------------------------- genre rule

def song_features(midi) -> dict:
    """What :func:`genre_of` decides on: drum notes per beat, the shares of the pitched notes
    played by distortion/overdrive guitars (GM programs 29-30), all guitars (24-31) and synths
    (80-103, leads, pads and effects), and the tempo (BPM) that lasts the most ticks."""
    end = max((n.end for i in midi.instruments for n in i.notes), default=0)
    beats = max(end / midi.ticks_per_beat, 1.0)
    programs, drums = Counter(), 0
    for inst in midi.instruments:
        if inst.is_drum:
            drums += len(inst.notes)
        else:
            programs[inst.program] += len(inst.notes)
    pitched = max(sum(programs.values()), 1)

    def share(lo, hi):
        return sum(v for p, v in programs.items() if lo <= p <= hi) / pitched

    changes = sorted(midi.tempo_changes, key=lambda t: t.time)
    lasting = Counter()
    for t, nxt in zip(changes, changes[1:] + [None]):
        lasting[round(t.tempo)] += max((nxt.time if nxt else end) - t.time, 0)
    tempo = max(lasting, key=lambda k: (lasting[k], -k)) if lasting else 120
    return {"drums_per_beat": drums / beats, "distortion": share(29, 30), "guitar": share(24, 31),
            "synth": share(80, 103), "tempo": tempo}


DRUMLESS = 1.0        # fewer drum notes per beat than this: no groove, labelled NewAge (ambient)
DISTORTION = 0.3      # at least this share of distorted guitar: Metal at METAL_TEMPO BPM or more, else Rock
METAL_TEMPO = 130
SYNTH = 0.3           # synth-led (and not distorted): Electronic
GUITAR = 0.3          # guitar-led (clean): Rock


def genre_of(features: dict) -> str:
    """A genre name of constants.GENRES from :func:`song_features`, by the first rule that holds:
    drumless -> NewAge; distorted guitar -> Metal (fast) or Rock; synths -> Electronic;
    guitars -> Rock; else (drummed orchestral and mixed songs) Pop, the label the other
    drummed game-music sources carry."""
    if features["drums_per_beat"] < DRUMLESS:
        return "NewAge"
    if features["distortion"] >= DISTORTION:
        return "Metal" if features["tempo"] >= METAL_TEMPO else "Rock"
    if features["synth"] >= SYNTH:
        return "Electronic"
    if features["guitar"] >= GUITAR:
        return "Rock"
    return "Pop"


# ----------------------------------------------------------------------------- the source

@dataclass
class Song:
    id: str            # freedoom/<lump name>
    path: Path         # the MIDI file in the cache
    wad: str
    lump: str
    sha256: str
    genre: str
    seconds: float
    features: dict
    same_as: list      # "<wad>:<lump>" of later byte-identical lumps left out


def music_lumps(path: Path) -> list[tuple[str, bytes]]:
    """``[(name, bytes)]`` of the ``D_*`` lumps of a WAD file (UserError if it is not a WAD)."""
    data = Path(path).read_bytes()
    try:
        lumps = read_wad(data)
    except WadError as e:
        raise cli.UserError(f"{path}: {e}") from None
    return [(lp.name, data[lp.offset:lp.offset + lp.size]) for lp in lumps if lp.name.upper().startswith("D_")]


def _seconds(midi) -> float:
    end = max((n.end for i in midi.instruments for n in i.notes), default=0)
    return float(midi.get_tick_to_time_mapping()[end]) if end else 0.0


def songs_of(wads: list[Path], out_dir: Path) -> tuple[list[Song], list[dict]]:
    """The unique Standard MIDI ``D_*`` lumps of ``wads`` (in order), written to
    ``out_dir/<lump>.mid`` (atomically, skipped when already there with the same bytes), and
    the lumps left out as ``[{"id", "reason"}]`` (MUS format, unreadable MIDI)."""
    songs, skipped, by_hash = [], [], {}
    for wad in wads:
        for name, data in music_lumps(wad):
            where = f"{Path(wad).name}:{name}"
            digest = hashlib.sha256(data).hexdigest()
            if digest in by_hash:
                by_hash[digest].same_as.append(where)
                continue
            if data[:4] == b"MUS\x1a":
                skipped.append({"id": where, "reason": "MUS format lump (not converted to MIDI)"})
                continue
            try:
                midi = midi_from_bytes(data)
            except BadMidiError as e:
                skipped.append({"id": where, "reason": str(e)})
                continue
            sid = f"freedoom/{name}"
            if any(s.id == sid for s in songs):       # the same name with other music in another WAD
                sid = f"freedoom/{Path(wad).stem}_{name}"
            path = out_dir / f"{re.sub(r'[^A-Za-z0-9_-]', '_', sid.split('/', 1)[1])}.mid"   # a name is 8 bytes
            if not (path.is_file() and path.read_bytes() == data):
                with cli.atomic_path(path) as tmp:
                    Path(tmp).write_bytes(data)
            feats = song_features(midi)
            by_hash[digest] = Song(sid, path, Path(wad).name, name, digest, genre_of(feats), _seconds(midi),
                                   feats, [])
            songs.append(by_hash[digest])
    return songs, skipped


def build(out_dir: Path | None = None) -> tuple[list[Song], list[dict]]:
    """Fetch (or reuse) the checked package and extract its songs into ``out_dir`` (default
    ``.cache/freedoom/``), with ``songs.tsv`` there listing each song's lump, sha256, genre,
    seconds and the rule's features; see :func:`songs_of`."""
    root = debian.fetch(PIN)
    out_dir = Path(out_dir or paths.CACHE / "freedoom")
    songs, skipped = songs_of([root / w for w in WADS], out_dir)
    keys = list(songs[0].features) if songs else []
    rows = ["\t".join(["id", "wad", "lump", "sha256", "genre", "seconds", *keys, "same_as"])]
    rows += ["\t".join([s.id, s.wad, s.lump, s.sha256, s.genre, f"{s.seconds:.1f}",
                        *(f"{s.features[k]:.3g}" for k in keys), ",".join(s.same_as)]) for s in songs]
    cli.write_text_atomic(out_dir / "songs.tsv", "\n".join(rows) + "\n")
    return songs, skipped


def source_files() -> tuple[list, dict, dict]:
    """``(files, genre map, conversion stats)`` of ``--source freedoom`` (training.sources)."""
    t0 = time.perf_counter()
    out_dir = paths.CACHE / "freedoom"
    songs, skipped = build(out_dir)
    if not songs:
        raise cli.UserError("--source freedoom: no Standard MIDI music lump in the freedoom WADs")
    genres = Counter(s.genre for s in songs)
    print(f"freedoom: {len(songs)} songs ({sum(s.seconds for s in songs) / 3600:.2f} h) from "
          f"{len(songs) + len(skipped) + sum(len(s.same_as) for s in songs)} D_ lumps, "
          f"{len(skipped)} skipped; " + ", ".join(f"{g} {n}" for g, n in sorted(genres.items())))
    return [(s.id, s.path) for s in songs], {s.id: D.genre_id(s.genre) for s in songs}, {
        "what": f"the D_* music lumps of {' and '.join(Path(w).name for w in WADS)} (Debian package freedoom)",
        "package": f"freedoom {PIN.version}",
        "midi_dir": out_dir.relative_to(paths.REPO).as_posix() if out_dir.is_relative_to(paths.REPO) else out_dir.name,
        "licence": LICENCE, "genres": dict(sorted(genres.items())), "genre_rule": "freedoom.genre_of",
        "duplicates": {s.id: s.same_as for s in songs if s.same_as}, "skipped": skipped,
        "music_hours": round(sum(s.seconds for s in songs) / 3600, 3), "seconds": round(time.perf_counter() - t0, 2)}
