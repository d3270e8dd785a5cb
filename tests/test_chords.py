"""Chord vocabulary and extraction (src/chords.py): BMT's chords, chorder's names and recogniser.

id = 2 + 11 * root + QUALITIES.index(quality), QUALITIES = M m o + 7 M7 m7 o7 /o7 sus2 sus4
(chorder's standard qualities, indices 0..10), roots C=0 .. B=11.  Expected chords below are
worked out by hand from chorder's rule (per-beat pitch-class durations scored against its
triad weight tables; M/m become 7, M7, m7 when the seventh sounds); the last test checks our
pipeline (MIDI -> quantised notes -> half-bar chords) against chorder run on the MIDI file itself.
"""
import miditoolkit
import numpy as np
import pytest

from vidscore.music import chords as CH
from vidscore import constants as D
from vidscore.music.representation import extract_notes

C_MAJ = 2                    # 2 + 0*11 + 0
G_DOM7 = 2 + 7 * 11 + 4      # 83
A_MIN = 2 + 9 * 11 + 1       # 102
A_MIN7 = 2 + 9 * 11 + 6      # 107
B_DIM = 2 + 11 * 11 + 2      # 125
C_AUG = 2 + 0 * 11 + 3       # 5
C_MAJ7 = 2 + 0 * 11 + 5      # 7
F_MAJ = 2 + 5 * 11 + 0       # 57

DRUMS, PIANO, BASS = 1, 2, 4


def block(onset, pitches, dur=8, cls=PIANO):
    return [[onset, p, dur, cls] for p in pitches]


def song(*blocks):
    n = np.array([row for b in blocks for row in b], dtype=np.int64)
    return n[np.argsort(n[:, 0], kind="stable")]


# --------------------------------------------------------------------------- vocabulary

def test_constants_and_layout_match_the_bmt_chord_field():
    assert CH.N_CHORD == 134 == 2 + 12 * len(CH.QUALITIES) == D.N_CHORD
    assert (CH.NONE, CH.NO_CHORD, CH.SEGMENT) == (0, 1, 8)
    assert CH.QUALITIES == ["M", "m", "o", "+", "7", "M7", "m7", "o7", "/o7", "sus2", "sus4"]
    from chorder import Chord, Dechorder
    assert CH.QUALITIES == Chord.standard_qualities
    assert {q: tuple(m) for q, m in Dechorder.chord_maps.items()} == CH.TEMPLATES


def test_chord_id_values_and_aliases():
    assert CH.chord_id(0, "M") == 2
    assert CH.chord_id(11, "sus4") == 133
    assert CH.chord_id(7, "7") == G_DOM7 == 83 == CH.chord_id(7, "dom7")
    assert CH.chord_id(9, "m") == A_MIN == 102 == CH.chord_id(9, "min")
    assert CH.chord_id(11, "/o7") == CH.chord_id(11, "hd7") == CH.chord_id(11, "hdim7")
    with pytest.raises(ValueError):
        CH.chord_id(0, "major")


def test_names_round_trip_and_are_chorders():
    seen = set()
    for cid in range(CH.N_CHORD):
        n = CH.chord_name(cid)
        assert CH.parse_chord(n) == cid
        seen.add(n)
    assert len(seen) == CH.N_CHORD
    assert CH.chord_name(0) == "none" and CH.chord_name(1) == "N_N"
    assert CH.chord_name(2) == "C_M" and CH.chord_name(133) == "B_sus4"
    assert CH.chord_name(CH.chord_id(10, "M7")) == "A#_M7"
    assert CH.chord_name(CH.chord_id(10, "/o7")) == "A#_/o7"
    assert CH.chord_name(CH.chord_id(10, "+")) == "A#_+"


@pytest.mark.parametrize("bad", [-1, 134, 1000])
def test_chord_name_out_of_range(bad):
    with pytest.raises(ValueError):
        CH.chord_name(bad)


def test_parse_chord_flats_aliases_and_specials():
    assert CH.parse_chord("Bb_M") == CH.parse_chord("A#_M") == 2 + 10 * 11
    assert CH.parse_chord("Db_m7") == CH.chord_id(1, "m7")
    assert CH.parse_chord("Cb_M") == CH.chord_id(11, "M")
    assert CH.parse_chord("E#_o") == CH.chord_id(5, "o")
    assert CH.parse_chord("  G:dom7 ") == G_DOM7          # the earlier root:quality spelling
    assert CH.parse_chord("C:maj") == C_MAJ
    assert CH.parse_chord("N_N") == CH.parse_chord("n.c.") == CH.NO_CHORD
    assert CH.parse_chord("None") == CH.NONE


@pytest.mark.parametrize("bad", ["H_M", "C_major", "C", "CM", "", "X_m", "C_"])
def test_parse_chord_errors(bad):
    with pytest.raises(ValueError, match="chord name|quality"):
        CH.parse_chord(bad)


def test_chord_pitch_classes():
    assert CH.chord_pitch_classes(C_MAJ) == [0, 4, 7]
    assert CH.chord_pitch_classes(G_DOM7) == [7, 11, 2, 5]
    assert CH.chord_pitch_classes(A_MIN) == [9, 0, 4]
    assert CH.chord_pitch_classes(CH.parse_chord("B_/o7")) == [11, 2, 5, 9]
    assert CH.chord_pitch_classes(CH.parse_chord("D_sus4")) == [2, 7, 9]
    assert CH.chord_pitch_classes(CH.NONE) == [] == CH.chord_pitch_classes(CH.NO_CHORD)


# --------------------------------------------------------------------------- extraction

def test_half_bar_chords_worked_by_hand():
    notes = song(block(0, [60, 64, 67]),            # C E G             -> C_M
                 block(8, [55, 59, 62, 65]),        # G B D F           -> G M, F sounds: G_7
                 block(16, [57, 60, 64]),           # A C E             -> A_m
                 block(24, [57, 60, 64, 67]),       # A C E G, bass A   -> A_m, G sounds: A_m7
                 block(32, [59, 62, 65]),           # B D F, bass B     -> B_o
                 block(40, [60, 64, 68]),           # C E G#: equal scores for C, E, G#; C first -> C_+
                 block(48, [60, 64, 67, 71]),       # C E G B           -> C_M, B sounds: C_M7
                 )
    got = CH.segment_chords(notes, 64)
    assert got.dtype == np.int32
    assert got.tolist() == [C_MAJ, G_DOM7, A_MIN, A_MIN7, B_DIM, C_AUG, C_MAJ7, CH.NO_CHORD]
    assert [CH.chord_name(c) for c in got] == ["C_M", "G_7", "A_m", "A_m7", "B_o", "C_+", "C_M7", "N_N"]


def test_drums_are_left_out_and_silence_is_no_chord():
    chords_only = song(block(0, [65, 69, 72], dur=16))                      # F A C: F_M for the bar
    drums = song(block(0, [36, 42], dur=2, cls=DRUMS), block(8, [38, 42, 46], dur=2, cls=DRUMS))
    assert CH.segment_chords(chords_only, 16).tolist() == [F_MAJ, F_MAJ]
    assert CH.segment_chords(np.concatenate([chords_only, drums]), 16).tolist() == [F_MAJ, F_MAJ]
    assert CH.segment_chords(drums, 16).tolist() == [CH.NO_CHORD] * 2
    assert CH.segment_chords(np.zeros((0, 4), dtype=int), 20).tolist() == [CH.NO_CHORD] * 3
    assert CH.segment_chords(np.zeros((0, 4), dtype=int), 0).shape == (0,)


def test_segment_takes_the_chord_of_its_first_beat_and_cuts_at_n_ticks():
    # beat 0: C E G, beat 1: A C E -> chorder keeps two one-beat chords; the half bar is C_M
    notes = song(block(0, [60, 64, 67], dur=4), block(4, [57, 60, 64], dur=4))
    assert CH.beat_chords(notes, 8).tolist() == [C_MAJ, A_MIN]
    assert CH.segment_chords(notes, 8).tolist() == [C_MAJ]
    assert CH.segment_chords(notes, 8, segment=4).tolist() == [C_MAJ, A_MIN]
    late = song(block(0, [60, 64, 67], dur=4), block(40, [65, 69, 72]))
    assert CH.segment_chords(late, 17).tolist() == [C_MAJ, CH.NO_CHORD, CH.NO_CHORD]   # F cut off
    vel = np.hstack([late, np.full((len(late), 1), 80)])                               # a velocity column is fine
    assert CH.segment_chords(vel, 48).tolist() == CH.segment_chords(late, 48).tolist()
    with pytest.raises(ValueError):
        CH.segment_chords(late, 48, segment=0)


def test_transpose_moves_roots_and_keeps_none_and_no_chord():
    ids = np.array([[CH.NONE, CH.NO_CHORD, CH.chord_id(11, "M")], [CH.chord_id(9, "m7"), 2, 133]])
    assert CH.transpose(ids, 1).tolist() == [[CH.NONE, CH.NO_CHORD, CH.chord_id(0, "M")],
                                             [CH.chord_id(10, "m7"), CH.chord_id(1, "M"), CH.chord_id(0, "sus4")]]
    assert (CH.transpose(CH.transpose(ids, 5), -5) == ids).all()


def random_harmony_midi(path, seed, bars=8):
    """Piano and bass on the 16th grid (480 ticks per beat): random triads / sevenths, held or not."""
    rng = np.random.default_rng(seed)
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    piano = miditoolkit.Instrument(program=0, name="Piano")
    bass = miditoolkit.Instrument(program=33, name="Bass")
    shapes = list(CH.TEMPLATES.values())
    for beat in range(bars * 4):
        if rng.random() < 0.15:
            continue                                             # some silent beats
        root = int(rng.integers(0, 12))
        shape = shapes[int(rng.integers(len(shapes)))]
        length = int(rng.choice([1, 2, 4, 6, 8]))                # in 16ths
        start = beat * 480 + int(rng.choice([0, 0, 120, 240]))
        for i in shape:
            if rng.random() < 0.85:
                piano.notes.append(miditoolkit.Note(80, 60 + root + i, start, start + length * 120))
        bass.notes.append(miditoolkit.Note(80, 36 + root, beat * 480, beat * 480 + 480))
    midi.instruments = [piano, bass]
    midi.dump(str(path))
    return path


def test_our_half_bars_equal_chorder_on_the_midi_file(tmp_path):
    """The independent route: chorder on the MIDI file (480 ticks per beat, unquantised)."""
    from chorder import Dechorder

    n_half_bars = 0
    for seed in range(6):
        path = random_harmony_midi(tmp_path / f"h{seed}.mid", seed)
        notes, _ = extract_notes(path, check_time_signature=False)
        n_ticks = 8 * 16
        ours = CH.segment_chords(notes, n_ticks)
        midi = miditoolkit.MidiFile(str(path))
        midi.max_tick = n_ticks * 120
        theirs = [CH.from_chorder(c) for c in Dechorder.dechord(midi)][::2]   # the first beat of each half bar
        assert ours.tolist() == theirs[:len(ours)]
        n_half_bars += len(ours)
        assert len({CH.chord_name(c) for c in ours}) > 5                     # a real variety of chords
    assert n_half_bars == 6 * 16
