"""Chord vocabulary and extraction (src/chords.py); expected ids worked out by hand.

id = 2 + 11 * root + QUALITIES.index(quality), QUALITIES = maj min dim aug dom7 maj7 min7
dim7 hdim7 sus2 sus4 (indices 0..10), roots C=0 .. B=11.
"""
import numpy as np
import pytest

import chords as CH

C_MAJ = 2                    # 2 + 0*11 + 0
G_DOM7 = 2 + 7 * 11 + 4      # 83
A_MIN = 2 + 9 * 11 + 1       # 102
G_MAJ = 2 + 7 * 11 + 0       # 79
CS_DIM = 2 + 1 * 11 + 2      # 15
B_DIM = 2 + 11 * 11 + 2      # 125
C_AUG = 2 + 0 * 11 + 3       # 5
A_MIN7 = 2 + 9 * 11 + 6      # 107
F_MAJ = 2 + 5 * 11 + 0       # 57

DRUMS, PIANO, BASS = 1, 2, 4


def name(pcs, bass=None):
    return CH.chord_name(CH.name_pitch_classes(pcs, bass=bass))


# --------------------------------------------------------------------------- vocabulary

def test_constants():
    assert CH.N_CHORD == 134 == 2 + 12 * len(CH.QUALITIES)
    assert (CH.NONE, CH.NO_CHORD, CH.SEGMENT) == (0, 1, 8)
    assert CH.QUALITIES == ["maj", "min", "dim", "aug", "dom7", "maj7", "min7", "dim7", "hdim7",
                            "sus2", "sus4"]
    assert CH.PITCH_CLASSES[0] == "C" and CH.PITCH_CLASSES[11] == "B"


def test_chord_id_values():
    assert CH.chord_id(0, "maj") == 2
    assert CH.chord_id(11, "sus4") == 133
    assert CH.chord_id(7, "dom7") == G_DOM7 == 83
    assert CH.chord_id(9, "min") == A_MIN == 102
    with pytest.raises(ValueError):
        CH.chord_id(0, "major")


def test_round_trip_all_ids():
    seen = set()
    for cid in range(CH.N_CHORD):
        n = CH.chord_name(cid)
        assert CH.parse_chord(n) == cid
        seen.add(n)
    assert len(seen) == CH.N_CHORD
    assert CH.chord_name(0) == "none" and CH.chord_name(1) == "N.C."
    assert CH.chord_name(2) == "C:maj" and CH.chord_name(133) == "B:sus4"
    assert CH.chord_name(CH.chord_id(6, "min7")) == "F#:min7"
    for r in range(12):
        for q in CH.QUALITIES:
            assert CH.chord_name(CH.chord_id(r, q)) == f"{CH.PITCH_CLASSES[r]}:{q}"


@pytest.mark.parametrize("bad", [-1, 134, 1000])
def test_chord_name_out_of_range(bad):
    with pytest.raises(ValueError):
        CH.chord_name(bad)


def test_parse_chord_flats_and_case():
    assert CH.parse_chord("Bb:maj") == CH.parse_chord("A#:maj") == 2 + 10 * 11
    assert CH.parse_chord("Db:MIN7") == CH.chord_id(1, "min7")
    assert CH.parse_chord("Cb:maj") == CH.chord_id(11, "maj")
    assert CH.parse_chord("E#:Dim") == CH.chord_id(5, "dim")
    assert CH.parse_chord("  g:Dom7 ") == G_DOM7
    assert CH.parse_chord("n.c.") == CH.NO_CHORD
    assert CH.parse_chord("None") == CH.NONE


@pytest.mark.parametrize("bad", ["H:maj", "C:major", "C", "Cmaj", "C:maj:7", "", "X:min", "C:"])
def test_parse_chord_errors(bad):
    with pytest.raises(ValueError, match="chord name|quality"):
        CH.parse_chord(bad)


def test_chord_pitch_classes():
    assert CH.chord_pitch_classes(C_MAJ) == [0, 4, 7]
    assert CH.chord_pitch_classes(G_DOM7) == [7, 11, 2, 5]
    assert CH.chord_pitch_classes(A_MIN) == [9, 0, 4]
    assert CH.chord_pitch_classes(CH.parse_chord("B:hdim7")) == [11, 2, 5, 9]
    assert CH.chord_pitch_classes(CH.parse_chord("D:sus4")) == [2, 7, 9]
    assert CH.chord_pitch_classes(CH.NONE) == [] == CH.chord_pitch_classes(CH.NO_CHORD)


# --------------------------------------------------------------------------- naming sets

def test_name_basic_chords():
    assert CH.name_pitch_classes({0, 4, 7}) == C_MAJ              # C-E-G
    assert CH.name_pitch_classes([9, 0, 4]) == A_MIN              # A-C-E
    assert CH.name_pitch_classes([7, 11, 2, 5]) == G_DOM7         # G-B-D-F
    assert CH.name_pitch_classes([11, 2, 5]) == B_DIM             # B-D-F
    assert name([0, 4, 11, 7]) == "C:maj7"
    assert name([2, 5, 9, 0]) == "D:min7"
    assert name([11, 2, 5, 9]) == "B:hdim7"
    assert name([0, 5, 7], bass=0) == "C:sus4"
    assert name([0, 2, 7], bass=0) == "C:sus2"
    assert name([60, 64, 67]) == "C:maj"                          # MIDI pitches are taken mod 12


def test_name_inversions_same_chord():
    for bass in (None, 4, 7, 0):
        assert CH.name_pitch_classes([4, 7, 0], bass=bass) == C_MAJ      # E-G-C
    for bass in (7, 11, 2, 5):                                           # G7 in every inversion
        assert CH.name_pitch_classes([7, 11, 2, 5], bass=bass) == G_DOM7
    assert CH.name_pitch_classes([0, 4, 9], bass=4) == A_MIN            # A-C-E over E


def test_augmented_root_rule():
    # documented: aug / dim7 are rooted on the bass; with no bass, the lowest pitch class
    assert CH.name_pitch_classes([0, 4, 8]) == C_AUG                     # C-E-G#
    assert CH.name_pitch_classes([4, 8, 0]) == C_AUG                     # E-G#-C, no bass
    assert CH.name_pitch_classes([0, 4, 8], bass=0) == C_AUG
    assert name([0, 4, 8], bass=4) == "E:aug"
    assert name([1, 5, 9]) == "C#:aug"
    assert name([0, 3, 6, 9]) == "C:dim7"
    assert name([0, 3, 6, 9], bass=9) == "A:dim7"


def test_sixth_chords_read_on_the_bass():
    # music21 calls C-E-G-A "Am7/C"; with C in the bass we read C6 = C:maj
    assert name([0, 4, 7, 9], bass=0) == "C:maj"
    assert name([0, 4, 7, 9], bass=9) == "A:min7"
    assert name([0, 3, 7, 9], bass=0) == "C:min"        # Cm6 ("Aø7/C")
    assert name({0, 4, 7, 9}) == "A:min7"               # no bass: root position reading wins


def test_name_extensions_and_fallback():
    assert name([0, 4, 7, 10, 2], bass=0) == "C:dom7"   # C9
    assert name([0, 4, 7, 11, 2], bass=0) == "C:maj7"   # Cmaj9
    assert name([0, 3, 7, 11], bass=0) == "C:min"       # CmM7 -> triad quality
    assert name([0, 4, 5, 7], bass=0) == "C:maj"        # "CaddF"
    # C-E-G + F#: music21 cannot name it; the least salient (last) tone F# is dropped
    assert name([0, 4, 7, 6], bass=0) == "C:maj"
    # C-E-Bb (incomplete dom7) is not named; dropping the least salient Bb leaves C-E
    assert name([0, 4, 10], bass=0) == "C:maj"
    assert name([0, 1, 2]) == "N.C."                    # cluster -> C-C# -> N.C.


def test_name_dyads_and_small_sets():
    assert CH.name_pitch_classes([]) == CH.NO_CHORD
    assert CH.name_pitch_classes([5]) == CH.NO_CHORD
    assert name([0, 7]) == "C:maj" == name([7, 0])      # power chord / fourth
    assert name([0, 4]) == "C:maj"
    assert name([0, 8]) == "G#:maj"                     # Ab-C
    assert name([9, 0]) == "A:min" == name([0, 9])
    assert name([11, 5]) == "N.C."                      # tritone
    assert name([0, 2]) == "N.C." == name([0, 11])
    with pytest.raises(ValueError, match="bass"):
        CH.name_pitch_classes([0, 4, 7], bass=2)


def test_name_transposition_equivariant():
    import itertools
    for size in (3, 4):
        for rest in itertools.combinations(range(1, 12), size - 1):
            rel = (0,) + rest
            base = CH.name_pitch_classes(rel, bass=0)
            for t in (1, 5, 10):
                got = CH.name_pitch_classes([(p + t) % 12 for p in rel], bass=t)
                if base < 2:
                    assert got == base
                else:
                    root, q = divmod(base - 2, 11)
                    assert got == CH.chord_id((root + t) % 12, CH.QUALITIES[q])


def test_every_template_names_itself_in_root_position():
    for r in range(12):
        for q, t in CH.TEMPLATES.items():
            pcs = [(r + i) % 12 for i in t]
            assert CH.name_pitch_classes(pcs, bass=r) == CH.chord_id(r, q), (r, q)


# --------------------------------------------------------------------------- segments

def two_bar_song():
    n = [
        # bar 1, first half (ticks 0-7): C major triad over a C bass
        [0, 36, 8, BASS], [0, 64, 8, PIANO], [0, 67, 8, PIANO], [0, 72, 8, PIANO],
        # bar 1, second half (8-15): G7 (G bass, B-D-F) + melody G-A-B; A is a 2-tick passing tone
        [8, 43, 8, BASS], [8, 59, 8, PIANO], [8, 62, 8, PIANO], [8, 65, 8, PIANO],
        [8, 79, 2, PIANO], [10, 81, 2, PIANO], [12, 83, 4, PIANO],
        # bar 2, first half (16-23): A minor arpeggio A2 C4 E4 A4, 2 ticks each
        [16, 45, 2, PIANO], [18, 60, 2, PIANO], [20, 64, 2, PIANO], [22, 69, 2, PIANO],
        # bar 2, second half (24-31): empty but for drums
        # drums on out-of-key pitches, long enough to dominate if they were counted
        [0, 37, 8, DRUMS], [0, 42, 8, DRUMS], [8, 46, 8, DRUMS], [8, 37, 8, DRUMS],
        [16, 42, 8, DRUMS], [24, 37, 8, DRUMS], [24, 41, 8, DRUMS], [24, 44, 8, DRUMS],
    ]
    n = np.array(n, dtype=np.int64)
    return n[np.argsort(n[:, 0], kind="stable")]


def test_segment_chords_two_bars():
    got = CH.segment_chords(two_bar_song(), 32)
    assert got.dtype == np.int32
    assert got.tolist() == [C_MAJ, G_DOM7, A_MIN, CH.NO_CHORD]
    assert [CH.chord_name(c) for c in got] == ["C:maj", "G:dom7", "A:min", "N.C."]


def test_drums_are_ignored():
    song = two_bar_song()
    as_piano = song.copy()
    as_piano[as_piano[:, 3] == DRUMS, 3] = PIANO
    assert CH.segment_chords(as_piano, 32).tolist() != CH.segment_chords(song, 32).tolist()
    only_drums = song[song[:, 3] == DRUMS]
    assert CH.segment_chords(only_drums, 32).tolist() == [CH.NO_CHORD] * 4


def test_note_across_segment_boundary_counts_in_both():
    # ticks 0-7: B3 D4; ticks 8-15: C#4 E4; G4 sounds ticks 4-11 (4 ticks in each segment)
    notes = np.array([[0, 59, 8, PIANO], [0, 62, 8, PIANO], [4, 67, 8, PIANO],
                      [8, 61, 8, PIANO], [8, 64, 8, PIANO]])
    assert CH.segment_chords(notes, 16).tolist() == [G_MAJ, CS_DIM]      # G-B-D, C#-E-G
    cut = notes.copy()
    cut[2, 2] = 4                                                        # G stops at tick 8
    assert CH.segment_chords(cut, 16).tolist() == [G_MAJ, 2 + 11 + 1]    # then C#-E = C#:min


def test_hold_and_single_notes():
    notes = np.array([
        [0, 60, 8, PIANO], [0, 64, 8, PIANO], [0, 67, 8, PIANO],   # C:maj
        [8, 36, 8, BASS],                                          # lone C: holds C:maj
        [16, 55, 8, PIANO], [16, 60, 8, PIANO],                    # G-C (in C:maj): holds
        [24, 66, 8, PIANO],                                        # lone F#: N.C.
        [32, 64, 8, PIANO],                                        # lone E after N.C.: N.C.
        [40, 57, 8, PIANO], [40, 60, 8, PIANO],                    # A-C dyad: A:min
        [48, 60, 8, PIANO], [48, 64, 8, PIANO],                    # C-E, inside A:min: held
        [56, 55, 8, PIANO], [56, 62, 8, PIANO],                    # G-D power chord: G:maj
    ])
    got = [CH.chord_name(c) for c in CH.segment_chords(notes, 64)]
    assert got == ["C:maj", "C:maj", "C:maj", "N.C.", "N.C.", "A:min", "A:min", "G:maj"]


def test_salience_threshold_and_bass_weight():
    # C-E-G held 8 ticks, a 2-tick melody D (weight 2 < 0.3 * 8) is ignored
    notes = np.array([[0, 60, 8, PIANO], [0, 64, 8, PIANO], [0, 67, 8, PIANO], [0, 74, 2, PIANO]])
    assert CH.segment_chords(notes, 8).tolist() == [C_MAJ]
    # E-G-A over a low C: C6, read as C:maj; over a low A: A:min7
    sixth = np.array([[0, 36, 8, BASS], [0, 64, 8, PIANO], [0, 67, 8, PIANO], [0, 69, 8, PIANO]])
    assert CH.segment_chords(sixth, 8).tolist() == [C_MAJ]
    am7 = sixth.copy()
    am7[0, 1] = 33
    am7[3, 1] = 72
    assert CH.segment_chords(am7, 8).tolist() == [A_MIN7]
    # more than four salient tones: the lightest go (the low C weighs 1.5x)
    five = np.array([[0, 36, 8, BASS], [0, 64, 8, PIANO], [0, 67, 8, PIANO], [0, 71, 8, PIANO],
                     [0, 74, 6, PIANO]])
    assert CH.chord_name(CH.segment_chords(five, 8)[0]) == "C:maj7"


def test_segment_shapes_and_edges():
    assert CH.segment_chords(np.zeros((0, 4), dtype=int), 20).tolist() == [CH.NO_CHORD] * 3
    assert CH.segment_chords(np.zeros((0, 4), dtype=int), 0).shape == (0,)
    notes = np.array([[0, 60, 4, PIANO], [0, 64, 4, PIANO], [0, 67, 4, PIANO],
                      [40, 65, 8, PIANO], [40, 69, 8, PIANO], [40, 72, 8, PIANO]])
    got = CH.segment_chords(notes, 17)                       # ceil(17 / 8) = 3; F chord cut off
    assert got.tolist() == [C_MAJ, CH.NO_CHORD, CH.NO_CHORD]
    assert CH.segment_chords(notes, 48, segment=16).tolist() == [C_MAJ, CH.NO_CHORD, F_MAJ]
    # a fifth column (velocity) is allowed; zero-length notes count as one tick
    vel = np.hstack([notes, np.full((len(notes), 1), 80)])
    assert CH.segment_chords(vel, 48).tolist() == CH.segment_chords(notes, 48).tolist()
    zero = np.array([[0, 60, 0, PIANO], [0, 64, 0, PIANO], [0, 67, 0, PIANO]])
    assert CH.segment_chords(zero, 8).tolist() == [C_MAJ]
    with pytest.raises(ValueError):
        CH.segment_chords(notes, 48, segment=0)


def test_transpose_moves_roots_and_keeps_none_and_no_chord():
    ids = np.array([[CH.NONE, CH.NO_CHORD, CH.chord_id(11, "maj")], [CH.chord_id(9, "min7"), 2, 133]])
    assert CH.transpose(ids, 1).tolist() == [[CH.NONE, CH.NO_CHORD, CH.chord_id(0, "maj")],
                                             [CH.chord_id(10, "min7"), CH.chord_id(1, "maj"), CH.chord_id(0, "sus4")]]
    assert (CH.transpose(CH.transpose(ids, 5), -5) == ids).all()
