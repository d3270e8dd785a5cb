"""The freedoom source: WAD directories read from bytes the test writes, the genre rule on
MIDI the test makes, and the Debian fetcher's checks on a .deb the test builds."""
import hashlib
import io
import shutil
import struct
import subprocess
from collections import Counter

import mido
import pytest

from vidscore import cli, paths
from vidscore.training import debian, freedoom


def midi_bytes(tracks, bpm=120, tpb=480, tempo_changes=()):
    """A type-1 Standard MIDI file: ``tracks`` are ``(channel, program, [(start beat, pitch)])``
    with notes a beat long, or ``(channel, program, notes, length in beats)``; ``tempo_changes``
    are ``(beat, bpm)`` after the first tempo."""
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    last = 0
    for beat, b in tempo_changes:
        meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(b), time=beat * tpb - last))
        last = beat * tpb
    mid.tracks.append(meta)
    for channel, program, notes, *length in tracks:
        events, ticks = [], int((length or [1])[0] * tpb)
        for beat, pitch in notes:
            events += [(int(beat * tpb), 1, pitch), (int(beat * tpb) + ticks, 0, pitch)]
        track = mido.MidiTrack([mido.Message("program_change", channel=channel, program=program, time=0)])
        now = 0
        for t, on, pitch in sorted(events):
            track.append(mido.Message("note_on" if on else "note_off", channel=channel, note=pitch,
                                      velocity=90 if on else 0, time=t - now))
            now = t
        mid.tracks.append(track)
    out = io.BytesIO()
    mid.save(file=out)
    return out.getvalue()


def wad_bytes(lumps, ident=b"PWAD"):
    """A WAD file: header, the lumps' bytes one after another from byte 12, then the directory."""
    body, entries, at = b"", b"", 12
    for name, data in lumps:
        entries += struct.pack("<ii8s", at, len(data), name.encode())
        body += data
        at += len(data)
    return struct.pack("<4sii", ident, len(lumps), at) + body + entries


SONG_A = midi_bytes([(0, 30, [(b, 52) for b in range(8)])])
SONG_B = midi_bytes([(0, 81, [(b, 60 + b) for b in range(4)]), (9, 0, [(b, 36) for b in range(4)])])
MUS = b"MUS\x1a" + bytes(28)
LUMPS = [("D_RUNNIN", SONG_A), ("PLAYPAL", bytes(range(256)) * 3), ("D_MUSIC", MUS), ("D_SHAWN", SONG_B),
         ("D_COPY", SONG_A)]


def test_read_wad_directory():
    lumps = freedoom.read_wad(wad_bytes(LUMPS))
    assert [(lp.name, lp.size) for lp in lumps] == [(n, len(d)) for n, d in LUMPS]
    assert lumps[0].offset == 12 and lumps[1].offset == 12 + len(SONG_A)
    assert lumps[2].size == 32 and lumps[1].size == 768


def test_music_lumps_deduplicated_and_mus_skipped(tmp_path):
    wad1, wad2 = tmp_path / "one.wad", tmp_path / "two.wad"
    wad1.write_bytes(wad_bytes(LUMPS))
    wad2.write_bytes(wad_bytes([("D_SHAWN", SONG_B), ("D_DEAD", SONG_A)], ident=b"IWAD"))
    assert [n for n, _ in freedoom.music_lumps(wad1)] == ["D_RUNNIN", "D_MUSIC", "D_SHAWN", "D_COPY"]
    songs, skipped = freedoom.songs_of([wad1, wad2], tmp_path / "midi")
    assert [s.id for s in songs] == ["freedoom/D_RUNNIN", "freedoom/D_SHAWN"]
    assert songs[0].same_as == ["one.wad:D_COPY", "two.wad:D_DEAD"] and songs[1].same_as == ["two.wad:D_SHAWN"]
    assert skipped == [{"id": "one.wad:D_MUSIC", "reason": "MUS format lump (not converted to MIDI)"}]
    assert (tmp_path / "midi" / "D_RUNNIN.mid").read_bytes() == SONG_A
    assert songs[1].sha256 == hashlib.sha256(SONG_B).hexdigest()
    assert songs[0].seconds == pytest.approx(4.0)        # last note ends at beat 8 at 120 BPM
    assert (songs[0].genre, songs[1].genre) == ("NewAge", "Electronic")


@pytest.mark.parametrize("data, reason", [
    (b"IW", "truncated: 2 bytes, shorter than the 12-byte WAD header"),
    (b"JUNK" + bytes(8), "not a WAD file (starts with b'JUNK', not IWAD or PWAD)"),
    (struct.pack("<4sii", b"IWAD", 2, 12) + bytes(16),
     "truncated: the directory of 2 lumps at offset 12 ends at byte 44, beyond the file's 28 bytes"),
    (struct.pack("<4sii", b"IWAD", -1, 12), "bad header: -1 lumps, directory at offset 12"),
    (struct.pack("<4sii", b"PWAD", 1, 12) + struct.pack("<ii8s", 20, 100, b"D_X"),
     "lump 0 (D_X) at offset 20 with 100 bytes lies beyond the file's 28 bytes (truncated?)"),
])
def test_bad_wads_have_one_line_reasons(data, reason, tmp_path):
    with pytest.raises(freedoom.WadError) as e:
        freedoom.read_wad(data)
    assert str(e.value) == reason
    bad = tmp_path / "bad.wad"
    bad.write_bytes(data)
    with pytest.raises(cli.UserError, match=f"^{bad}: "):
        freedoom.music_lumps(bad)


def test_truncated_copy_of_a_good_wad():
    data = wad_bytes(LUMPS)
    with pytest.raises(freedoom.WadError, match="^truncated: the directory of 5 lumps"):
        freedoom.read_wad(data[:-1])


def test_genre_rule_on_made_midi():
    from vidscore.music.representation import midi_from_bytes
    drums = (9, 0, [(b / 2, 36 + b % 2 * 2) for b in range(32)], 0.5)     # 32 drum notes in 16 beats
    guitar = [(b / 2, 40 + b % 5) for b in range(24)]                       # 24 notes
    bass = (1, 33, [(2 * b, 28) for b in range(8)])                          # 8 notes
    metal = midi_bytes([(0, 30, guitar), bass, drums], bpm=100, tempo_changes=[(1, 150)])
    f = freedoom.song_features(midi_from_bytes(metal))
    # 16 beats long; 24 of the 32 pitched notes on program 30; 100 BPM for 1 beat, 150 for 15
    assert f == {"drums_per_beat": 2.0, "distortion": 0.75, "guitar": 0.75, "synth": 0.0, "tempo": 150}
    assert freedoom.genre_of(f) == "Metal"
    rock = midi_from_bytes(midi_bytes([(0, 30, guitar), bass, drums], bpm=100))
    assert freedoom.genre_of(freedoom.song_features(rock)) == "Rock"        # distorted but 100 BPM
    clean = midi_from_bytes(midi_bytes([(0, 27, guitar), bass, drums]))
    assert freedoom.genre_of(freedoom.song_features(clean)) == "Rock"       # clean guitar, 0.75
    synth = midi_from_bytes(midi_bytes([(0, 81, guitar), (2, 30, guitar[:8]), bass, drums], bpm=170))
    f = freedoom.song_features(synth)
    assert (f["synth"], f["distortion"]) == (0.6, 0.2)                     # 24/40 and 8/40
    assert freedoom.genre_of(f) == "Electronic"
    strings = midi_from_bytes(midi_bytes([(0, 48, guitar), bass, drums]))
    assert freedoom.genre_of(freedoom.song_features(strings)) == "Pop"
    kicks = (9, 0, [(b, 36) for b in (0, 2, 4, 6, 8, 10, 12, 15.5)], 0.5)
    sparse = midi_from_bytes(midi_bytes([(0, 30, guitar), bass, kicks]))
    f = freedoom.song_features(sparse)                                      # 8 drum notes in 16 beats
    assert f["drums_per_beat"] == 0.5 and freedoom.genre_of(f) == "NewAge"


# ----------------------------------------------------------------------------- the Debian fetcher

needs_dpkg = pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="dpkg-deb is not installed")


def build_deb(tmp_path, package="vidscore-test-data", version="1.0-1", payload=b"hello\n"):
    """A tiny .deb, built with dpkg-deb -b, installing usr/share/vidscore-test/data.txt."""
    tree = tmp_path / "pkg"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: test <t@example.org>\n"
        "Description: test data\n", encoding="utf-8")
    (tree / "usr/share/vidscore-test").mkdir(parents=True)
    (tree / "usr/share/vidscore-test/data.txt").write_bytes(payload)
    deb = tmp_path / f"{package}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(deb)], check=True, capture_output=True)
    shutil.rmtree(tree)
    return deb


DATA = "usr/share/vidscore-test/data.txt"
HELLO = hashlib.sha256(b"hello\n").hexdigest()


@needs_dpkg
def test_fetch_checks_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")
    deb = build_deb(tmp_path)
    debian.cache_dir().mkdir(parents=True)
    dropped = debian.cache_dir() / deb.name                      # a .deb put there by hand: no download
    shutil.copy(deb, dropped)
    pin = debian.Pin("vidscore-test-data", "1.0-1", files={DATA: HELLO}, deb_sha256=debian.sha256_file(deb))
    root = debian.fetch(pin)
    assert root == tmp_path / "cache/debian/vidscore-test-data"
    assert (root / DATA).read_bytes() == b"hello\n"
    assert [p.name for p in debian.cache_dir().iterdir() if p.name.startswith(".")] == []   # no part left
    dropped.unlink()          # a checked cache needs no .deb: fetching it again would fail without one
    assert debian.fetch(pin) == root
    (root / DATA).write_bytes(b"tampered\n")                      # a damaged cache is fetched again
    shutil.copy(deb, dropped)
    assert (debian.fetch(pin) / DATA).read_bytes() == b"hello\n"


@needs_dpkg
def test_fetch_refuses_tampered_files(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")
    debian.cache_dir().mkdir(parents=True)
    deb = build_deb(tmp_path, payload=b"hellO\n")                # not the pinned content
    shutil.copy(deb, debian.cache_dir())
    with pytest.raises(cli.UserError, match=f"^{deb.name}: {DATA} has sha256 .*, pinned {HELLO[:16]}"):
        debian.fetch(debian.Pin("vidscore-test-data", "1.0-1", files={DATA: HELLO}))
    assert not (debian.cache_dir() / "vidscore-test-data").exists()
    with pytest.raises(cli.UserError, match=f"^{deb.name} has sha256 .*, pinned 0000000000000000"):
        debian.fetch(debian.Pin("vidscore-test-data", "1.0-1", deb_sha256="0" * 64))
    with pytest.raises(cli.UserError, match="has no usr/share/other.txt"):
        debian.fetch(debian.Pin("vidscore-test-data", "1.0-1", files={"usr/share/other.txt": HELLO}))
    assert [p.name for p in debian.cache_dir().iterdir()] == [deb.name]


@pytest.mark.skipif(not shutil.which("apt-get"), reason="apt-get is not installed")
def test_unknown_package_says_to_update_the_lists(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")
    with pytest.raises(cli.UserError, match=r"not in this machine's apt lists .*sudo apt-get update"):
        debian.fetch(debian.Pin("vidscore-no-such-package", "1.0-1"))


# Lump names per WAD and the sha256 of each lump, from a separate reading of freedoom 0.12.1-2
# (struct over the directory, hashlib over the lumps); this is the digest of the "wad name sha256"
# lines in directory order.
LUMPS_DIGEST = "2a4401281711046901f02e3003e5c2f6bf3dd41df944b5ac6c01177fe77b068f"


@pytest.mark.slow
def test_real_freedoom_package(tmp_path):
    try:
        root = debian.fetch(freedoom.PIN)
    except cli.UserError as e:
        pytest.skip(f"the freedoom package cannot be fetched here: {e}")
    lines, per_wad = [], Counter()
    for wad in freedoom.WADS:
        for name, data in freedoom.music_lumps(root / wad):
            per_wad[wad.rsplit("/", 1)[1]] += 1
            lines.append(f"{wad.rsplit('/', 1)[1]} {name} {hashlib.sha256(data).hexdigest()}\n")
    assert per_wad == {"freedoom1.wad": 32, "freedoom2.wad": 35}
    assert hashlib.sha256("".join(lines).encode()).hexdigest() == LUMPS_DIGEST
    songs, skipped = freedoom.songs_of([root / w for w in freedoom.WADS], tmp_path)
    assert skipped == [] and len(songs) == 66
    assert [s.same_as for s in songs if s.same_as] == [["freedoom1.wad:D_E2M6"]]
    assert next(s for s in songs if s.same_as).id == "freedoom/D_E1M5"


@pytest.mark.slow
def test_freedoom_is_a_prepare_corpus_source():
    from vidscore import constants as D
    from vidscore.training import sources
    try:
        debian.fetch(freedoom.PIN)
    except cli.UserError as e:
        pytest.skip(f"the freedoom package cannot be fetched here: {e}")
    assert "freedoom" in sources.NAMES and sources.DEBIAN_PINS["freedoom"] is freedoom.PIN
    files, genres, stats = sources.source_files("freedoom", None)
    assert len(files) == 66 and all(p.read_bytes()[:4] == b"MThd" for _, p in files)
    # three songs whose features a separate reading gave: D_E1M5 strings and 0.03 drum notes a
    # beat; D_E1M1 186 BPM with 63 % of its notes on distortion guitar; D_DOOM 65 % synths
    assert [D.GENRES[genres[f"freedoom/{n}"]] for n in ("D_E1M5", "D_E1M1", "D_DOOM")] == \
        ["NewAge", "Metal", "Electronic"]
    assert (stats["licence"], stats["package"], stats["midi_dir"]) == ("BSD-3-Clause", "freedoom 0.12.1-2",
                                                                       ".cache/freedoom")
    assert stats["duplicates"] == {"freedoom/D_E1M5": ["freedoom1.wad:D_E2M6"]}
    assert sum(stats["genres"].values()) == 66
