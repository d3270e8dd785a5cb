"""Tokenisation rules (SPEC section 2) on small MIDI files written in the test."""
import mido
import miditoolkit
import numpy as np
import pytest
from miditoolkit.midi.containers import Instrument, Note, TimeSignature

from vidscore import constants as D
from vidscore.music import representation as R
from vidscore.music.midi_write import notes_to_midi, tokens_to_midi

TPB = 480
SIX = TPB // 4  # MIDI ticks per 16th


def make_midi(tracks, path=None, tpb=TPB, time_sig=(4, 4)):
    """tracks: [(name, program, is_drum, [(onset_16th, pitch, duration_16ths), ...])]."""
    m = miditoolkit.MidiFile(ticks_per_beat=tpb)
    six = tpb // 4
    if time_sig:
        m.time_signature_changes = [TimeSignature(time_sig[0], time_sig[1], 0)]
    for name, program, is_drum, notes in tracks:
        inst = Instrument(program=program, is_drum=is_drum, name=name)
        inst.notes = [Note(90, p, o * six, (o + d) * six) for o, p, d in notes]
        m.instruments.append(inst)
    if path is not None:
        m.dump(str(path))
    return m


def rows_of(tokens, tick):
    return tokens[(tokens[:, D.COL_IBEAT] == tick) & (tokens[:, D.COL_TYPE] != D.TYPE_EOS)]


# A hand-made song.  Bar 0: Piano chord C-E-G at tick 0 (4 ticks), Piano D at 4, Piano F at 10,
# Bass C2 at 0 and G2 at 8.  Bar 1: 16 one-tick Piano notes.  Bars 2-3: 19 Bass notes.
PIANO_BAR0 = [(0, 60, 4), (0, 64, 4), (0, 67, 4), (4, 62, 2), (10, 65, 3)]
BASS_BAR0 = [(0, 36, 8), (8, 43, 8)]
PIANO_FILL = [(16 + k, 72, 1) for k in range(16)]
BASS_FILL = [(32 + k, 40, 1) for k in range(19)]  # last note: tick 50, 1 tick long -> song ends at 51


@pytest.fixture()
def song():
    return make_midi([("Piano", 0, False, PIANO_BAR0 + PIANO_FILL), ("Bass", 33, False, BASS_BAR0 + BASS_FILL)])


def test_bar_and_beat_tokens_by_hand(song):
    tokens, info = R.midi_to_tokens(song)
    n_beat = 51
    assert info["n_beat"] == n_beat and info["n_bars"] == 4 and info["n_notes"] == 5 + 16 + 2 + 19
    assert info["instruments"] == [D.PIANO, D.BASS]
    pb = lambda t: 100 * t // n_beat + 1  # noqa: E731
    # columns: bar-beat, type, density, pitch, duration, instrument, strength, p_beat, i_beat
    expected_bar0 = np.array([
        [17, 1, 5, 0, 0, 0, 0, 1, 0],          # Bar: onsets at positions {0, 4, 8, 10} -> 4 + 1
        [1, 1, 4, 0, 0, 2, 3, 1, 0],           # Beat_0 Piano: 3 positions after -> 4; 3 notes
        [0, 2, 0, 61, 5, 2, 0, 1, 0],
        [0, 2, 0, 65, 5, 2, 0, 1, 0],
        [0, 2, 0, 68, 5, 2, 0, 1, 0],
        [1, 1, 4, 0, 0, 4, 1, 1, 0],           # Beat_0 Bass: same position, same density
        [0, 2, 0, 37, 9, 4, 0, 1, 0],
        [5, 1, 3, 0, 0, 2, 1, pb(4), 4],       # Beat_4 Piano: {8, 10} after -> 3
        [0, 2, 0, 63, 3, 2, 0, pb(4), 4],
        [9, 1, 2, 0, 0, 4, 1, pb(8), 8],       # Beat_8 Bass: {10} after -> 2
        [0, 2, 0, 44, 9, 4, 0, pb(8), 8],
        [11, 1, 1, 0, 0, 2, 1, pb(10), 10],    # Beat_10 Piano: last onset -> 1
        [0, 2, 0, 66, 4, 2, 0, pb(10), 10],
    ])
    np.testing.assert_array_equal(tokens[:13], expected_bar0)
    assert pb(4) == 8 and pb(10) == 20
    # bar 1: 16 distinct positions -> density 17; its Beat tokens count down 16, 15, ..., 1
    bar1 = tokens[13]
    np.testing.assert_array_equal(bar1, [17, 1, 17, 0, 0, 0, 0, pb(16), 16])
    beats1 = tokens[(tokens[:, D.COL_TYPE] == D.TYPE_M) & (tokens[:, D.COL_BARBEAT] < 17)
                    & (tokens[:, D.COL_IBEAT] >= 16) & (tokens[:, D.COL_IBEAT] < 32)]
    np.testing.assert_array_equal(beats1[:, D.COL_DENSITY], np.arange(16, 0, -1))
    np.testing.assert_array_equal(beats1[:, D.COL_BARBEAT], np.arange(1, 17))
    # the EOS row ends the song; row count = bars + simu-notes + notes + 1
    np.testing.assert_array_equal(tokens[-1], np.zeros(9))
    assert (tokens[:-1, D.COL_TYPE] != 0).all()
    n_groups = 5 + 16 + 16 + 3
    assert len(tokens) == 4 + n_groups + info["n_notes"] + 1 == info["length"]
    assert tokens.dtype == np.int32 and tokens.shape[1] == 9


def test_empty_bar_gets_density_one():
    notes = [(k, 60, 1) for k in range(11)] + [(48 + k, 62, 1) for k in range(10)]
    tokens, info = R.midi_to_tokens(make_midi([("Piano", 0, False, notes)]))
    bars = tokens[tokens[:, D.COL_BARBEAT] == D.BAR]
    np.testing.assert_array_equal(bars[:, D.COL_IBEAT], [0, 16, 32, 48])
    np.testing.assert_array_equal(bars[:, D.COL_DENSITY], [12, 1, 1, 11])


def test_leading_empty_bars_are_trimmed():
    notes = [(32 + k, 60, 1) for k in range(21)]
    tokens, info = R.midi_to_tokens(make_midi([("Piano", 0, False, notes)]))
    assert info["bar_offset"] == 2
    assert tokens[0, D.COL_IBEAT] == 0 and tokens[1, D.COL_IBEAT] == 0


def test_tracks_with_20_notes_or_fewer_are_dropped():
    m = make_midi([("Piano", 0, False, [(k, 60, 1) for k in range(21)]),
                   ("Guitar", 24, False, [(k, 50, 1) for k in range(20)])])
    tokens, info = R.midi_to_tokens(m)
    assert info["instruments"] == [D.PIANO]
    assert set(tokens[:, D.COL_INSTRUMENT]) == {0, D.PIANO}
    assert [t["kept"] for t in info["tracks"]] == [True, False]


@pytest.mark.parametrize("name,program,is_drum,expected", [
    ("Drums", 0, False, D.DRUMS), ("piano", 40, False, D.PIANO), (" GUITAR ", 0, False, D.GUITAR),
    ("Bass", 0, False, D.BASS), ("Strings", 0, False, D.STRINGS),
    ("", 0, True, D.DRUMS), ("Kit", 30, True, D.DRUMS),
    ("Lead", 5, False, D.PIANO), ("x", 26, False, D.GUITAR), ("Fingered", 33, False, D.BASS),
    ("Violin", 40, False, D.STRINGS), ("Ensemble", 48, False, D.STRINGS), ("Brass", 61, False, D.STRINGS),
    (None, 17, False, D.STRINGS), ("Bassoon", 70, False, D.STRINGS),
])
def test_instrument_class_by_name_then_program(name, program, is_drum, expected):
    assert R.instrument_class(name, program, is_drum) == expected


def test_instrument_mapping_in_a_file(tmp_path):
    path = tmp_path / "gm.mid"
    notes = [(k, 60, 1) for k in range(21)]
    make_midi([("Lead Guitar", 27, False, notes), ("Kick", 0, True, [(k, 36, 1) for k in range(21)]),
               ("strings", 0, False, [(k, 70, 1) for k in range(21)])], path)
    tokens, info = R.midi_to_tokens(path)
    assert info["instruments"] == [D.DRUMS, D.GUITAR, D.STRINGS]
    # at tick 0 the three simu-notes come in class order
    beats = rows_of(tokens, 0)
    beats = beats[(beats[:, D.COL_TYPE] == D.TYPE_M) & (beats[:, D.COL_BARBEAT] == 1)]
    np.testing.assert_array_equal(beats[:, D.COL_INSTRUMENT], [D.DRUMS, D.GUITAR, D.STRINGS])


def test_round_trip_keeps_onset_pitch_duration_instrument(tmp_path):
    rng = np.random.default_rng(7)
    tracks, expected = [], set()
    for name, program, is_drum, cls in [("Drums", 0, True, 1), ("Piano", 0, False, 2), ("Guitar", 24, False, 3),
                                        ("Bass", 33, False, 4), ("Strings", 41, False, 5)]:
        notes = []
        for _ in range(40):
            onset, pitch, dur = int(rng.integers(0, 256)), int(rng.integers(30, 90)), int(rng.integers(1, 25))
            notes.append((onset, pitch, dur))
        tracks.append((name, program, is_drum, notes))
        # the tokeniser keeps the longest of notes sharing onset and pitch, and caps at 16
        best = {}
        for o, p, d in notes:
            best[(o, p)] = max(best.get((o, p), 0), min(d, 16))
        expected |= {(o, p, d, cls) for (o, p), d in best.items()}
    src = tmp_path / "src.mid"
    make_midi(tracks, src)
    tokens, info = R.midi_to_tokens(src, trim_leading=False)
    out = tmp_path / "back.mid"
    tokens_to_midi(tokens, out, tempo_bpm=100)
    back, _ = R.extract_notes(out)
    assert {tuple(int(v) for v in n) for n in back} == expected
    # and from the tokens directly (both timing modes)
    for timing in ("i_beat", "structure"):
        assert {tuple(int(v) for v in n) for n in R.tokens_to_notes(tokens, timing=timing)} == expected


def test_quantisation_rounds_to_the_16th_grid():
    m = miditoolkit.MidiFile(ticks_per_beat=96)  # 24 ticks per 16th
    inst = Instrument(0, False, "Piano")
    # as the original (muspy): onset and end are rounded, duration = end - onset.
    # onsets 11 -> 0, 13 -> 1 (16ths); the first ends at 46 -> 2, so 2 - 0 = 2; 500 ticks -> capped at 16;
    # 60 -> 70 rounds to 2.5 -> 2 (half to even) and 2.9 -> 3: 1 16th; 84 -> 90: 3.5 -> 4 and 3.75 -> 4: duration 0
    inst.notes = [Note(80, 60, 11, 11 + 35), Note(80, 62, 13, 13 + 500), Note(80, 64, 60, 70),
                  Note(80, 65, 84, 90)] + [Note(80, 50, 48 * k, 48 * k + 24) for k in range(1, 20)]
    m.instruments = [inst]
    notes, _ = R.extract_notes(m)
    assert notes[0].tolist() == [0, 60, 2, D.PIANO]
    assert notes[1].tolist() == [1, 62, 16, D.PIANO]
    assert notes[2].tolist() == [2, 50, 1, D.PIANO]    # 48 -> 72: 2 -> 3
    assert notes[3].tolist() == [2, 64, 1, D.PIANO]
    # on one 16th, notes keep the order of their unquantised starts (84 before 96), as in the original
    assert notes[4].tolist() == [4, 65, 0, D.PIANO]    # shorter than half a 16th: duration 0
    assert notes[5].tolist() == [4, 50, 1, D.PIANO]    # 96 -> 120


def test_meter_other_than_sixteen_sixteenths_is_rejected():
    notes = [(k, 60, 1) for k in range(21)]
    with pytest.raises(R.BadMidiError, match="3/4"):
        R.midi_to_tokens(make_midi([("Piano", 0, False, notes)], time_sig=(3, 4)))
    tokens, _ = R.midi_to_tokens(make_midi([("Piano", 0, False, notes)], time_sig=(2, 2)))
    assert len(tokens) > 0
    tokens, _ = R.midi_to_tokens(make_midi([("Piano", 0, False, notes)], time_sig=None))
    assert len(tokens) > 0


def test_bad_inputs_raise_one_line_reasons(tmp_path):
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    text = tmp_path / "text.mid"
    text.write_text("hello")
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\xff\xff")
    notrack = tmp_path / "notrack.mid"
    miditoolkit.MidiFile(ticks_per_beat=480).dump(str(notrack))
    for path, words in [(empty, "empty"), (text, "not a MIDI"), (corrupt, "corrupt"), (notrack, "no tracks")]:
        with pytest.raises(R.BadMidiError, match=words) as e:
            R.midi_to_tokens(path)
        assert "\n" not in str(e.value)


def test_key_estimation_by_krumhansl_schmuckler():
    def notes(pitches, weights=None):
        weights = weights or [1] * len(pitches)
        return np.array([[i, p, w, D.PIANO] for i, (p, w) in enumerate(zip(pitches, weights))])

    c_major = [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60]
    assert R.estimate_key(notes(c_major, [4, 1, 2, 1, 3, 1, 1, 4, 2, 2, 4])) == 1  # C major
    assert R.estimate_key(notes([p + 2 for p in c_major], [4, 1, 2, 1, 3, 1, 1, 4, 2, 2, 4])) == 3  # D major
    a_minor = [69, 71, 72, 74, 76, 77, 80, 81, 76, 72, 69]  # harmonic minor, tonic and fifth stressed
    assert R.estimate_key(notes(a_minor, [4, 1, 2, 1, 3, 1, 1, 4, 3, 2, 4])) == 13 + 9  # A minor
    drums_only = np.array([[0, 36, 4, D.DRUMS], [4, 38, 4, D.DRUMS]])
    assert R.estimate_key(drums_only) == 0
    assert D.KEY_NAMES[22] == "A minor" and D.KEY_NAMES[3] == "D major"


def test_windows_cut_at_bar_boundaries():
    # 12 bars, each: Piano on 0, 4, 8, 12 -> per bar 1 + 4 + 4 = 9 rows
    notes = [(16 * b + p, 60 + b, 2) for b in range(12) for p in (0, 4, 8, 12)]
    m = make_midi([("Piano", 0, False, notes)])
    whole, info = R.midi_to_tokens(m)
    assert len(whole) == 12 * 9 + 1
    wins = R.midi_to_windows(m, max_len=40)  # 4 bars (36 rows) + EOS fit, 5 do not
    assert [len(t) for t, _ in wins] == [37, 37, 37]
    assert [w["bar_offset"] for _, w in wins] == [0, 4, 8]
    assert [w["n_beat"] for _, w in wins] == [64, 64, 62]  # last window ends with the last note
    expected = np.array([[o, p, d, D.PIANO] for o, p, d in notes])  # already in onset order
    for k, (t, w) in enumerate(wins):
        assert t[0, D.COL_IBEAT] == 0 and t[0, D.COL_BARBEAT] == D.BAR
        got = R.tokens_to_notes(t)
        got[:, 0] += 64 * k
        np.testing.assert_array_equal(got, expected[16 * k:16 * k + 16])
        assert w["window"] == k and w["n_windows"] == 3
    # a song that fits is one window, identical to midi_to_tokens
    (t1, _), = R.midi_to_windows(m, max_len=10000)
    np.testing.assert_array_equal(t1, whole)


def test_init_tokens():
    np.testing.assert_array_equal(R.init_tokens([2, 4], key_id=22, genre_id=7),
                                  [[7, 0, 0], [0, 22, 0], [0, 0, 0], [0, 0, 2], [0, 0, 0], [0, 0, 4], [0, 0, 0]])
    np.testing.assert_array_equal(R.init_tokens([1, 2, 3, 4, 5], 0, 5), D.RELEASED_INIT_BLOCK)


def test_tokens_to_midi_tracks_programs_drums_tempo(tmp_path):
    notes = np.array([[0, 36, 2, 1], [0, 60, 4, 2], [4, 62, 4, 3], [8, 40, 8, 4], [12, 67, 16, 5]])
    out = tmp_path / "gen.mid"
    midi = notes_to_midi(notes, tempo_bpm=96.5)
    midi.dump(str(out))
    back = miditoolkit.MidiFile(str(out))
    assert [i.name for i in back.instruments] == D.INSTRUMENTS
    assert [i.program for i in back.instruments] == [0, 0, 24, 33, 41]
    assert [i.is_drum for i in back.instruments] == [True, False, False, False, False]
    assert back.ticks_per_beat == 4
    assert abs(back.tempo_changes[0].tempo - 96.5) < 1e-3 and back.tempo_changes[0].time == 0
    assert (back.time_signature_changes[0].numerator, back.time_signature_changes[0].denominator) == (4, 4)
    assert [(n.start, n.end, n.pitch, n.velocity) for n in back.instruments[4].notes] == [(12, 28, 67, 80)]  # 16ths
    # Drums on MIDI channel 10 (0-based 9), the others elsewhere
    channels = {}
    for track in mido.MidiFile(str(out)).tracks:
        name = next((m.name for m in track if m.type == "track_name"), None)
        channels[name] = {m.channel for m in track if m.type == "note_on"}
    assert channels["Drums"] == {9}
    assert all(9 not in channels[n] for n in D.INSTRUMENTS[1:])


def test_tokens_to_midi_accepts_generated_rows(tmp_path):
    # extra columns, a Note row with a 0-tick duration, an invalid Note row (pitch 0), rows after EOS
    rows = np.array([
        [17, 1, 2, 0, 0, 0, 0, 1, 0, 7],
        [1, 1, 1, 0, 0, 2, 1, 1, 0, 7],
        [0, 2, 0, 61, 1, 2, 0, 1, 0, 7],
        [0, 2, 0, 0, 5, 2, 0, 1, 0, 7],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 2, 0, 70, 5, 2, 0, 1, 3, 7],
    ])
    midi = tokens_to_midi(rows, tmp_path / "g.mid", tempo_bpm=120, velocity=100, programs={"Piano": 4})
    assert len(midi.instruments) == 1 and midi.instruments[0].program == 4
    assert [(n.start, n.end, n.pitch, n.velocity) for n in midi.instruments[0].notes] == [(0, 1, 60, 100)]
