"""Folder tools: MIDI folder -> training npz, pianoroll -> MIDI, music21 -> MIDI; bad inputs skipped."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import miditoolkit
import numpy as np
import pypianoroll
import pytest
from miditoolkit.midi.containers import Instrument, Note, TimeSignature

from vidscore.training import corpus
from vidscore.training import dataset
from vidscore import constants as D
from vidscore.music import representation as R

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def make_midi(path, tracks, time_sig=(4, 4), tpb=480):
    m = miditoolkit.MidiFile(ticks_per_beat=tpb)
    six = tpb // 4
    if time_sig:
        m.time_signature_changes = [TimeSignature(*time_sig, 0)]
    for name, program, is_drum, notes in tracks:
        inst = Instrument(program=program, is_drum=is_drum, name=name)
        inst.notes = [Note(90, p, o * six, (o + d) * six) for o, p, d in notes]
        m.instruments.append(inst)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    m.dump(str(path))


def scale_notes(tonic, n_bars, step=2):
    """A C-major-ish line (tonic + major scale degrees), one note every ``step`` 16ths."""
    degrees = [0, 2, 4, 5, 7, 9, 11, 12, 7, 4]
    return [(t, tonic + degrees[i % len(degrees)], step) for i, t in enumerate(range(0, 16 * n_bars, step))]


def run_script(*args, cwd=ROOT):
    env = dict(os.environ, CMT_NO_PROGRESS="1")
    return subprocess.run([PY, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def midi_folder(tmp_path):
    d = tmp_path / "midi"
    make_midi(d / "rock" / "song_a.mid", [("Piano", 0, False, scale_notes(60, 4)),
                                          ("Bass", 33, False, [(4 * k, 36, 4) for k in range(24)])])
    make_midi(d / "song_b.mid", [("Lead", 27, False, scale_notes(62, 3)),  # unnamed guitar by program
                                 ("Kit", 0, True, [(2 * k, 38, 1) for k in range(30)])])
    make_midi(d / "long_c.mid", [("Strings", 48, False, scale_notes(57, 40, step=1))])  # 640 notes, 40 bars
    # bad ones
    (d / "empty.mid").write_bytes(b"")
    (d / "notmidi.mid").write_text("this is text, not MIDI\n")
    (d / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\xff")
    miditoolkit.MidiFile(ticks_per_beat=480).dump(str(d / "zerotracks.mid"))
    make_midi(d / "waltz.mid", [("Piano", 0, False, scale_notes(60, 4))], time_sig=(3, 4))
    make_midi(d / "sparse.mid", [("Piano", 0, False, [(k, 60, 1) for k in range(20)])])
    (d / "readme.txt").write_text("ignored: not a .mid file")
    return d


def test_midi_folder_to_training_npz(tmp_path, midi_folder):
    genres = tmp_path / "genres.tsv"
    genres.write_text("# id<TAB>genre\nrock\tRock\nsong_b\tjazz\n")
    out = tmp_path / "out" / "train.npz"
    r = run_script("src/midi2numpy_mix.py", "--midi_dir", midi_folder, "--out_name", out, "--genre_file", genres,
                   "--max_len", 400, "--workers", 2)
    assert r.returncode == 0, r.stderr
    assert "cut into windows" in r.stdout and "skipped 6 files" in r.stdout
    data = R.load_training_npz(out)
    meta = data["metadata"]
    ids = [(m["id"], m["window"]) for m in meta]
    # long_c: 40 bars x (1 + 16 + 16) rows = 1320 rows -> windows of 12 bars (397 rows incl. EOS) and a rest
    assert ids == [("long_c", 0), ("long_c", 1), ("long_c", 2), ("long_c", 3), ("rock/song_a", 0), ("song_b", 0)]
    # long_c: 40 bars of 1 Bar + 16 Beat + 16 Note rows = 33 rows -> windows of 12 bars (12 * 33 + EOS = 397
    # rows) and the last 4 bars; song_a: 4 bars of 1 + 12 + 12 rows, 2 bass-only bars of 1 + 4 + 4, EOS;
    # song_b: 3 bars of 1 + 16 + 16, one bar with 6 drum hits, EOS
    assert [m["length"] for m in meta] == [397, 397, 397, 4 * 33 + 1, 4 * 25 + 2 * 9 + 1, 3 * 33 + 13 + 1]
    n, L = len(meta), max(m["length"] for m in meta) - 1
    assert data["x"].shape == (n, L, 9) and data["y"].shape == (n, L, 9) and data["x"].dtype == np.int32
    assert data["mask"].dtype == np.float32 and data["init"].shape == (n, 7, 3) and data["split"].dtype == np.uint8
    np.testing.assert_array_equal(data["seq_len"], [m["length"] - 1 for m in meta])
    np.testing.assert_array_equal(data["mask"].sum(1), data["seq_len"])
    for i, m in enumerate(meta):
        k = data["seq_len"][i]
        np.testing.assert_array_equal(data["x"][i, 1:k], data["y"][i, :k - 1])  # y is x shifted by one
        np.testing.assert_array_equal(data["y"][i, k - 1], np.zeros(9))  # ... ending with EOS
        assert not data["x"][i, k:].any() and not data["mask"][i, k:].any()
    # real per-song init tokens: instruments present, estimated key, genre from the file
    by_id = {m["id"]: i for i, m in enumerate(meta)}
    a, b = by_id["rock/song_a"], by_id["song_b"]
    np.testing.assert_array_equal(data["init"][a], R.init_tokens([D.PIANO, D.BASS], 1, D.GENRE_ID["Rock"]))
    np.testing.assert_array_equal(data["init"][b], R.init_tokens([D.DRUMS, D.GUITAR], 3, D.GENRE_ID["Jazz"]))
    assert meta[a]["instruments"] == ["Piano", "Bass"] and meta[a]["key"] == "C major" and meta[a]["genre"] == "Rock"
    assert meta[b]["instruments"] == ["Drums", "Guitar"] and meta[b]["key"] == "D major"
    assert meta[0]["genre"] == "none" and meta[0]["key"] == "A major"
    # windows of one song share its split; at least one validation song
    assert len({int(data["split"][i]) for i, m in enumerate(meta) if m["id"] == "long_c"}) == 1
    assert 1 in data["split"] and 0 in data["split"]
    # vocab report inside and beside
    vocab = json.loads((tmp_path / "out" / "train_vocab.json").read_text())
    assert vocab == data["vocab"]
    assert vocab["n_class"][D.COL_BARBEAT] == 18 and vocab["n_class"][D.COL_TYPE] == 3
    assert vocab["n_class"][D.COL_INSTRUMENT] == 6 and vocab["init_n_class"][0] == D.GENRE_ID["Jazz"] + 1
    assert vocab["n_class"][D.COL_PITCH] == int(max(data["x"][..., 3].max(), data["y"][..., 3].max())) + 1
    # every bad file is skipped with its reason
    stats = json.loads((tmp_path / "out" / "train_stats.json").read_text())
    reasons = {s["id"]: s["reason"] for s in stats["skipped_files"]}
    assert set(reasons) == {"empty", "notmidi", "corrupt", "zerotracks", "waltz", "sparse"}
    assert reasons["empty"].startswith("empty file")
    assert reasons["notmidi"].startswith("not a MIDI file")
    assert reasons["corrupt"].startswith("corrupt MIDI")
    assert reasons["zerotracks"].startswith("no tracks")
    assert reasons["waltz"].startswith("time signature 3/4")
    assert reasons["sparse"].startswith("no track with at least 21 notes")
    assert stats["songs"] == 3 and stats["sequences"] == 6 and stats["songs_split_into_windows"] == 1


def test_cache_is_keyed_by_content_and_duplicates_are_skipped(tmp_path):
    d = tmp_path / "midi"
    make_midi(d / "one.mid", [("Piano", 0, False, scale_notes(60, 3))])
    make_midi(d / "two.mid", [("Piano", 0, False, scale_notes(65, 3))])
    cache = tmp_path / "cache"
    files = dataset.find_midi_files(d)
    s1 = dataset.build_training_set(files, tmp_path / "a.npz", workers=1, cache_dir=cache)
    assert s1["cache_hits"] == 0 and s1["songs"] == 2
    # rename one file and copy the other: same content -> cache hits, and the copy is a duplicate
    shutil.move(d / "one.mid", d / "renamed.mid")
    shutil.copy(d / "two.mid", d / "zz_copy.mid")
    s2 = dataset.build_training_set(dataset.find_midi_files(d), tmp_path / "b.npz", workers=1, cache_dir=cache)
    assert s2["cache_hits"] == 3 and s2["songs"] == 2
    assert s2["skipped_files"] == [{"id": "zz_copy", "reason": "duplicate content (same as two)"}]
    a, b = R.load_training_npz(tmp_path / "a.npz"), R.load_training_npz(tmp_path / "b.npz")
    np.testing.assert_array_equal(a["x"][[0, 1]], b["x"][[0, 1]])  # one==renamed, two==two (sorted ids)


def test_file_names_that_collide_are_not_utf8_or_are_broken_links(tmp_path):
    d = tmp_path / "midi"
    make_midi(d / "a.mid", [("Piano", 0, False, scale_notes(60, 3))])
    make_midi(d / "a.midi", [("Piano", 0, False, scale_notes(62, 3))])         # another song, same stem
    make_midi(d / "b.mid", [("Piano", 0, False, scale_notes(64, 3))])
    make_midi(d / "x" / "b.mid", [("Piano", 0, False, scale_notes(65, 3))])    # another folder: no clash
    odd = os.fsdecode(bytes(d) + b"/caf\xe9.mid")                              # Latin-1 bytes, not UTF-8
    make_midi(odd, [("Piano", 0, False, scale_notes(67, 3))])
    (d / "gone.mid").symlink_to(tmp_path / "nowhere.mid")
    ids = [sid for sid, _ in dataset.find_midi_files(d)]
    assert ids == ["a.mid", "a.midi", "b", "caf\\xe9", "gone", "x/b"]
    labels = tmp_path / "genres.tsv"
    labels.write_text("a\tJazz\na.midi\tRock\n")
    out = tmp_path / "out" / "set.npz"
    r = run_script("src/midi2numpy_mix.py", "--midi_dir", d, "--out_name", out, "--genre_file", labels)
    assert r.returncode == 0, r.stderr
    meta = {m["id"]: m for m in R.load_training_npz(out)["metadata"]}
    assert sorted(meta) == ["a.mid", "a.midi", "b", "caf\\xe9", "x/b"]
    assert (meta["a.mid"]["genre"], meta["a.midi"]["genre"]) == ("Jazz", "Rock")   # exact id first, then stem
    assert "cannot read: No such file or directory" in r.stdout                  # the broken link is reported


def test_an_output_that_cannot_be_written_is_one_line_before_any_work(tmp_path):
    d = tmp_path / "midi"
    make_midi(d / "a.mid", [("Piano", 0, False, scale_notes(60, 3))])
    blocker = tmp_path / "afile"
    blocker.write_text("a file where a folder should be\n")
    for args in (["src/midi2numpy_mix.py", "--midi_dir", d, "--out_name", blocker / "o.npz"],
                 ["src/midi2numpy_mix.py", "--midi_dir", d, "--out_name", blocker / "o.npz", "--no_cache"],
                 ["src/midi2numpy_mix.py", "--midi_dir", d, "--out_name", tmp_path / "o.npz", "--cache_dir", blocker],
                 ["src/prepare_corpus.py", "--source", "midi", "--midi_dir", d, "--out_name", blocker / "o.npz"]):
        r = run_script(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert "afile" in r.stderr and "Traceback" not in r.stderr and "files in" not in r.stdout, r.stdout
    assert blocker.read_text() == "a file where a folder should be\n" and not (tmp_path / "o.npz").exists()


def test_smpte_files_binary_label_files_and_missing_folders_say_what_they_are(tmp_path):
    import mido
    d = tmp_path / "midi"
    d.mkdir()
    smpte = mido.MidiFile(ticks_per_beat=480)
    smpte.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=0),
                                        mido.Message("note_off", note=60, velocity=0, time=480)]))
    smpte.save(str(d / "timecode.mid"))
    raw = bytearray((d / "timecode.mid").read_bytes())
    raw[12:14] = bytes([0x100 - 25, 40])              # the header's division: 25 frames a second, 40 ticks each
    (d / "timecode.mid").write_bytes(bytes(raw))
    with pytest.raises(R.BadMidiError, match="timed in SMPTE frames, not in beats"):
        R.extract_notes(d / "timecode.mid")
    make_midi(d / "good.mid", [("Piano", 0, False, scale_notes(60, 3))])
    r = run_script("src/midi2numpy_mix.py", "--midi_dir", d, "--out_name", tmp_path / "o.npz",
                   "--genre_file", d / "good.mid")
    assert r.returncode == 2 and "is not a text table (it holds binary data)" in r.stderr and "\x00" not in r.stderr
    r = run_script("src/prepare_corpus.py", "--source", "midi", "--midi_dir", tmp_path / "nope",
                   "--out_name", tmp_path / "o.npz")
    assert r.returncode == 2 and "nope is not a folder" in r.stderr
    (tmp_path / "empty").mkdir()
    r = run_script("src/prepare_corpus.py", "--source", "midi", "--midi_dir", tmp_path / "empty",
                   "--out_name", tmp_path / "o.npz")
    assert r.returncode == 2 and "empty holds no .mid/.midi files" in r.stderr


def test_a_windows_rmi_file_is_the_midi_file_inside_it(tmp_path):
    make_midi(tmp_path / "plain.mid", [("Piano", 0, False, scale_notes(60, 3))])
    smf = (tmp_path / "plain.mid").read_bytes()
    data = b"RMID" + b"data" + len(smf).to_bytes(4, "little") + smf
    (tmp_path / "wrapped.mid").write_bytes(b"RIFF" + len(data).to_bytes(4, "little") + data)
    a, _ = R.extract_notes(tmp_path / "plain.mid")
    b, _ = R.extract_notes(tmp_path / "wrapped.mid")
    np.testing.assert_array_equal(a, b)
    (tmp_path / "hollow.mid").write_bytes(b"RIFF\x04\x00\x00\x00RMIDdata\x00\x00\x00\x00")
    with pytest.raises(R.BadMidiError, match="RIFF MIDI .* without a MIDI file inside"):
        R.load_midi(tmp_path / "hollow.mid")


def test_no_usable_file_is_a_user_error(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "x.mid").write_bytes(b"")
    r = run_script("src/midi2numpy_mix.py", "--midi_dir", d, "--out_name", tmp_path / "o.npz")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no usable song" in r.stderr
    assert not (tmp_path / "o.npz").exists()
    r = run_script("src/midi2numpy_mix.py", "--midi_dir", tmp_path / "missing", "--out_name", tmp_path / "o.npz")
    assert r.returncode == 2 and "is not a folder" in r.stderr


def test_split_is_deterministic_and_stable():
    ids = [f"song{i:03d}" for i in range(200)]
    s = dataset.assign_split(ids)
    assert 8 <= sum(s.values()) <= 35  # about 10 %
    more = dataset.assign_split(ids + [f"new{i}" for i in range(50)])
    assert all(more[i] == s[i] for i in ids)  # adding songs does not reshuffle
    assert dataset.assign_split(ids) == s
    two = dataset.assign_split(["a", "b"])
    assert sorted(two.values()) == [0, 1]
    # a corpus of one song trains on it, whatever its hash (some of these hash below 0.1)
    lone = [f"only{i}" for i in range(60)]
    assert any(dataset._unit_hash(i) < 0.1 for i in lone)
    assert all(dataset.assign_split([i]) == {i: 0} for i in lone)


def test_genre_file_formats(tmp_path):
    f = tmp_path / "g.csv"
    f.write_text("TRAAA,Pop_Rock\nTRBBB, electronic\n# comment\nTRCCC\t5\n")
    g = dataset.read_genre_file(f)
    assert g == {"TRAAA": D.GENRE_ID["PopRock"], "TRBBB": D.GENRE_ID["Electronic"], "TRCCC": D.GENRE_ID["Pop"]}
    assert dataset.genre_for("A/B/TRAAA/abc123", g) == D.GENRE_ID["PopRock"]  # parent folder (LPD layout)
    assert dataset.genre_for("TRZZZ/abc", g) == 0
    j = tmp_path / "g.json"
    j.write_text(json.dumps({"x": "Folk"}))
    assert dataset.read_genre_file(j) == {"x": D.GENRE_ID["Folk"]}
    bad = tmp_path / "bad.tsv"
    bad.write_text("x\tPolka\n")
    with pytest.raises(Exception, match="unknown genre 'Polka'"):
        dataset.read_genre_file(bad)


# ------------------------------------------------------------------ pianoroll -> MIDI

def make_pianoroll(path, resolution=4, n_steps=64, downbeat_every=16):
    drums = np.zeros((n_steps, 128), dtype=bool)
    drums[::4, 36] = True  # kick on every beat, one step long
    piano = np.zeros((n_steps, 128), dtype=np.uint8)
    piano[0:8, 60] = 100  # a half note C4
    piano[8:12, 64] = 90
    piano[12:16, 64] = 0
    piano[16:20, 67] = 70
    bass = np.zeros((n_steps, 128), dtype=bool)
    bass[0:4, 36] = bass[4:8, 36] = True  # touching notes merge in a pianoroll
    bass[32:40, 43] = True
    downbeat = np.zeros(n_steps, dtype=bool)
    downbeat[::downbeat_every] = True
    mt = pypianoroll.Multitrack(name="t", resolution=resolution, tempo=np.full(n_steps, 100.0), downbeat=downbeat,
                                tracks=[pypianoroll.BinaryTrack(name="Drums", program=0, is_drum=True, pianoroll=drums),
                                        pypianoroll.StandardTrack(name="Piano", program=0, is_drum=False,
                                                                  pianoroll=piano),
                                        pypianoroll.BinaryTrack(name="Guitar", program=24, is_drum=False,
                                                                pianoroll=np.zeros((n_steps, 128), dtype=bool)),
                                        pypianoroll.BinaryTrack(name="Bass", program=32, is_drum=False,
                                                                pianoroll=bass)])
    path.parent.mkdir(parents=True, exist_ok=True)
    pypianoroll.save(path, mt)


def test_pianoroll_to_midi_folder(tmp_path):
    src = tmp_path / "lpd"
    make_pianoroll(src / "A" / "B" / "TRAAA" / "abc.npz")
    make_pianoroll(src / "A" / "C" / "TRBBB" / "def.npz", downbeat_every=12)  # 3 beats per bar
    (src / "A" / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (src / "A" / "empty.npz").write_bytes(b"")
    out = tmp_path / "midi"
    r = run_script("src/pianoroll2midi.py", "--in_dir", src, "--out_dir", out, "--workers", 2)
    assert r.returncode == 0, r.stderr
    assert "1 ok" in r.stdout and "3 skipped" in r.stdout
    assert "non-4/4" in r.stdout and "not a pypianoroll npz" in r.stdout and "empty file" in r.stdout
    midi_path = out / "A" / "B" / "TRAAA" / "abc.mid"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mid")) == ["A/B/TRAAA/abc.mid"]
    m = miditoolkit.MidiFile(str(midi_path))
    assert [i.name for i in m.instruments] == ["Drums", "Piano", "Bass"]  # empty Guitar track left out
    assert [i.is_drum for i in m.instruments] == [True, False, False]
    assert m.ticks_per_beat == 4 and abs(m.tempo_changes[0].tempo - 100) < 1e-3
    notes = {i.name: [(n.start, n.end, n.pitch, n.velocity) for n in i.notes] for i in m.instruments}
    assert notes["Piano"] == [(0, 8, 60, 100), (8, 12, 64, 90), (16, 20, 67, 70)]
    assert notes["Bass"] == [(0, 8, 36, 80), (32, 40, 43, 80)]
    assert notes["Drums"] == [(t, t + 1, 36, 80) for t in range(0, 64, 4)]
    # resumable: a second run keeps the existing output
    mtime = midi_path.stat().st_mtime_ns
    r2 = run_script("src/pianoroll2midi.py", "--in_dir", src, "--out_dir", out, "--workers", 1)
    assert r2.returncode == 0 and "(1 cached)" in r2.stdout and midi_path.stat().st_mtime_ns == mtime
    # an --out_dir that is a file, and bad --workers, are refused before any file is converted
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for extra in (["--out_dir", blocker], ["--out_dir", tmp_path / "o2", "--workers", -1]):
        r3 = run_script("src/pianoroll2midi.py", "--in_dir", src, *extra)
        assert r3.returncode == 2 and r3.stderr.count("\n") == 1 and "files in" not in r3.stdout, r3.stderr
    assert not (tmp_path / "o2").exists()


def test_pianoroll_pickup_is_padded_to_a_bar_line(tmp_path):
    p = tmp_path / "x.npz"
    make_pianoroll(p)
    mt = pypianoroll.load(p)
    mt.downbeat = np.roll(mt.downbeat, 4)  # first downbeat one beat in: a one-beat pickup
    pypianoroll.save(p, mt)
    m = corpus.pianoroll_to_midi(p)
    piano = next(i for i in m.instruments if i.name == "Piano")
    assert piano.notes[0].start == 12  # 16 - 4 steps of padding


# ------------------------------------------------------------------ music21 -> MIDI

def part(mean_pitch, **kw):
    return {"mean_pitch": mean_pitch, **kw}


def test_part_assignment_rules():
    P, G, B, S = D.PIANO, D.GUITAR, D.BASS, D.STRINGS
    assert corpus.assign_parts([part(70)]) == [P]  # a lone melody
    assert corpus.assign_parts([part(72), part(67), part(60), part(48)]) == [P, S, G, B]  # SATB
    assert corpus.assign_parts([part(48), part(72), part(60), part(67)]) == [B, P, G, S]  # order by pitch
    assert corpus.assign_parts([part(72), part(68), part(64), part(60), part(48)]) == [P, S, G, S, B]
    quartet = [part(76, strings=True), part(70, strings=True), part(62, strings=True), part(48, strings=True)]
    assert corpus.assign_parts(quartet) == [S, S, S, B]
    lied = [part(70), part(66, keyboard=True), part(50, keyboard=True)]
    assert corpus.assign_parts(lied) == [S, P, P]
    assert corpus.part_role("Violoncello") == "string_low" and corpus.part_role("Violino I.") == "string_high"
    assert corpus.part_role("Basso") == "voice" and corpus.part_role("Contrabass") == "string_low"


def test_meter_scale():
    assert corpus.meter_scale(4, 4) == 1.0 and corpus.meter_scale(2, 2) == 1.0
    assert corpus.meter_scale(4, 2) == 0.5 and corpus.meter_scale(2, 1) == 0.5
    assert corpus.meter_scale(3, 4) is None and corpus.meter_scale(2, 4) is None and corpus.meter_scale(8, 4) is None


def test_music21_chorale_to_midi_and_tokens(tmp_path):
    unit = corpus.Music21Unit("bach/bwv66.6", "bach", "bach/bwv66.6.mxl", None, "4/4")
    midi, info = corpus.music21_to_midi(unit)
    assert [p["class"] for p in info["parts"]] == ["Piano", "Strings", "Guitar", "Bass"]
    assert [i.name for i in midi.instruments] == ["Piano", "Guitar", "Bass", "Strings"]
    # the chorale opens with a one-beat pickup: padded so the first full bar starts at a bar line
    assert info["pickup_ql"] == 3.0
    first = min(n.start for i in midi.instruments for n in i.notes)
    assert first == 3 * 480
    from music21 import corpus as m21corpus
    score = m21corpus.parse("bach/bwv66.6")
    bar1 = score.parts[0].measure(1).offset  # offset of the first full bar in the score
    assert (bar1 + 3.0) % 4 == 0
    soprano = sorted((n.start, n.pitch) for n in midi.instruments[0].notes)
    expected = sorted((int(round((nt.offset + 3.0) * 480)), nt.pitch.midi)
                      for nt in score.parts[0].stripTies().flatten().notes)
    assert soprano == expected
    path = tmp_path / "c.mid"
    midi.dump(str(path))
    tokens, tinfo = R.midi_to_tokens(path)
    assert tinfo["instruments"] == [D.PIANO, D.GUITAR, D.BASS, D.STRINGS]
    assert D.KEY_NAMES[tinfo["key"]] == "F# minor"  # the chorale's key, as music21's own analysis finds
    assert str(score.analyze("key")) == "f# minor"
