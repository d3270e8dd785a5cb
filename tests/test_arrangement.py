"""Arrangement metrics (repetition, drum kit, drums throughout, tracks used) on songs worked out by hand."""
import math

import numpy as np
import pytest

from vidscore.evaluation import arrangement as A
from vidscore.evaluation import metrics as M


def notes(*rows):
    """rows of (onset, pitch, duration, instrument)."""
    return M.as_notes(np.array(rows, dtype=np.int64).reshape(-1, 4))


def bar(b, pattern, instrument=M.PIANO):
    """Notes of bar ``b``: ``pattern`` = [(position, pitch), ...]."""
    return [(16 * b + pos, p, 2, instrument) for pos, p in pattern]


CHORD_A = [(0, 60), (4, 64), (8, 67)]        # C E G on beats 1-3
CHORD_B = [(2, 62), (6, 65), (10, 69)]       # D F A off the beat


# ----------------------------------------------------------------------------- repetition

def test_a_bar_repeats_one_two_or_more_bars_back_only():
    # A B A B: bar 2 repeats bar 0, bar 3 bar 1 -> 2 of the 2 bars from the third on
    song = notes(*(bar(0, CHORD_A) + bar(1, CHORD_B) + bar(2, CHORD_A) + bar(3, CHORD_B)))
    assert A.repetition(song) == 1.0
    assert A.repeated_bars(song).tolist() == [False, False, True, True]
    # A B B A: bar 2 equals only the bar just before it (1 back: not counted); bar 3 repeats bar 0
    song = notes(*(bar(0, CHORD_A) + bar(1, CHORD_B) + bar(2, CHORD_B) + bar(3, CHORD_A)))
    assert A.repetition(song) == 0.5


def test_empty_bars_count_as_bars_that_do_not_repeat():
    # A B (empty) A: the empty bar 2 is not a repeat of anything, bar 3 repeats bar 0 -> 1 / 2
    song = notes(*(bar(0, CHORD_A) + bar(1, CHORD_B) + bar(3, CHORD_A)))
    assert A.repeated_bars(song).tolist() == [False, False, False, True]
    assert A.repetition(song) == 0.5
    # (empty) B (empty) (empty) B: the empty bars are not alike, bar 4 repeats bar 1 -> 1 of bars 2..4
    song = notes(*(bar(1, CHORD_B) + bar(4, CHORD_B)))
    assert A.repetition(song) == pytest.approx(1 / 3)


def test_repeat_threshold_is_a_cosine_of_0_9_worked_out_by_hand():
    four = [(0, 60), (4, 60), (8, 60), (12, 60)]
    # same pitch classes (histogram cosine 1); onsets {0,4,8,12} against {0,4,8,10}: cosine 3 / 4,
    # fingerprint cosine (3/4 + 1) / 2 = 0.875 < 0.9
    near = [(0, 60), (4, 60), (8, 60), (10, 60)]
    song = notes(*(bar(0, four) + bar(1, CHORD_B) + bar(2, near)))
    assert A.repetition(song) == 0.0
    # onsets {0,4,8,12} against {0,4,8,12,14}: cosine 4 / (2 sqrt 5) = 0.894, fingerprint 0.947 >= 0.9
    nearer = four + [(14, 60)]
    song = notes(*(bar(0, four) + bar(1, CHORD_B) + bar(2, nearer)))
    assert A.repetition(song) == 1.0
    f = A.bar_fingerprints(song)
    cos = f[0] @ f[2] / np.linalg.norm(f[0]) / np.linalg.norm(f[2])
    assert cos == pytest.approx((4 / (2 * math.sqrt(5)) + 1) / 2)


def test_onset_patterns_are_per_instrument_unless_pooled():
    # bar 0: four kicks and one piano C; bar 2: one kick and four piano Cs.  Pooled, the onsets
    # {0,4,8,12} and the histograms (only C) are the same: a repeat.  Per instrument the onset
    # patterns share 2 of sqrt(5) * sqrt(5) -> cosine 0.4, fingerprint (0.4 + 1) / 2 = 0.7: no repeat.
    kicks = [(0, 36), (4, 36), (8, 36), (12, 36)]
    a = bar(0, kicks, M.DRUMS) + bar(0, [(0, 60)])
    b = bar(2, [(0, 36)], M.DRUMS) + bar(2, [(0, 60), (4, 60), (8, 60), (12, 60)])
    song = notes(*(a + bar(1, [(2, 62)], M.STRINGS) + b))
    assert A.repetition(song, pooled=True) == 1.0
    assert A.repetition(song) == 0.0
    f = A.bar_fingerprints(song)
    assert f[0, :80] @ f[2, :80] == pytest.approx(0.4)


def test_drum_only_bars_repeat_on_their_pattern_and_a_short_song_is_undefined():
    beat = [(0, 36), (4, 38), (8, 36), (12, 38)]
    song = notes(*(bar(0, beat, M.DRUMS) + bar(1, beat, M.DRUMS) + bar(2, beat, M.DRUMS)))
    assert A.repetition(song) == 1.0                   # no pitch classes on either side: onsets alone
    mixed = notes(*(bar(0, beat, M.DRUMS) + bar(1, CHORD_B) + bar(2, beat, M.DRUMS) + bar(2, CHORD_A)))
    assert A.repetition(mixed) == 0.0                  # drums alone against drums + chord: at most 1 / sqrt 2
    assert math.isnan(A.repetition(notes(*(bar(0, CHORD_A) + bar(1, CHORD_A)))))
    assert math.isnan(A.repetition(notes()))


# ----------------------------------------------------------------------------- drums

def test_kit_share_counts_kick_snares_hats_cymbals_not_toms_or_percussion():
    # kick 36, side stick 37, clap 39, closed hat 42, ride 51 are kit; low tom 45, cowbell 56,
    # tambourine 54 are not; the piano note is not a drum note at all -> 5 / 8
    drums = [(0, 36), (1, 37), (2, 39), (3, 42), (4, 51), (5, 45), (6, 56), (7, 54)]
    song = notes(*(bar(0, drums, M.DRUMS) + bar(0, [(0, 36)])))
    assert A.drum_kit_counts(song) == (5, 8)
    assert A.drum_kit_share(song) == 5 / 8
    assert math.isnan(A.drum_kit_share(notes(*bar(0, CHORD_A))))


def test_drums_throughout_means_a_drum_note_in_every_bar():
    # bars 0, 1 and 3 have drums, bar 2 only piano: 3 of 4 bars, not throughout
    song = notes(*(bar(0, [(0, 36)], M.DRUMS) + bar(1, [(8, 38)], M.DRUMS) + bar(2, CHORD_A)
                   + bar(3, [(15, 42)], M.DRUMS)))
    assert A.drum_bar_share(song) == 0.75
    assert A.drums_throughout(song) == 0.0
    full = notes(*(bar(0, [(0, 36)], M.DRUMS) + bar(1, [(8, 38)], M.DRUMS) + bar(1, CHORD_A)))
    assert A.drum_bar_share(full) == 1.0 and A.drums_throughout(full) == 1.0
    # a long note from bar 1 over bar 2 does not make bar 2 a bar (bars end at the last onset)
    assert A.drum_bar_share(notes(*bar(0, CHORD_A))) == 0.0
    assert math.isnan(A.drums_throughout(notes()))


def test_tracks_used_and_the_row_evaluate_reports():
    song = notes(*(bar(0, [(0, 36)], M.DRUMS) + bar(0, CHORD_A) + bar(1, [(0, 40)], M.BASS)
                   + bar(2, CHORD_A) + bar(3, [(0, 36)], M.DRUMS)))
    assert A.tracks_used(song) == 3
    assert A.tracks_used(notes()) == 0
    row = A.arrangement_metrics(song)
    # pooled, bar 3 (a kick on 1) has the onset pattern of bar 1 (a bass note on 1) but no pitch
    # classes: cosine 1 / sqrt 2, no repeat; bar 2 repeats bar 0 as before
    assert row == {"repetition": 0.5, "repetition_pooled": 0.5, "drum_kit_share": 1.0, "drum_notes": 2, "kit_notes": 2,
                   "drum_bar_share": 0.5, "drums_throughout": 0.0, "tracks_used": 3}


def test_evaluate_reports_them_and_reference_songs_keep_their_genre(tmp_path):
    import json

    from vidscore.evaluation import report as evaluate
    # a training npz of 2 rows: row i = a Bar, a Beat and one note (row 0: kick 36 on the drums,
    # row 1: piano E4); the metadata gives each its genre
    x = np.zeros((2, 4, 9), np.int32)
    for i, (pitch, inst) in enumerate([(36, M.DRUMS), (64, M.PIANO)]):
        x[i, 0] = [17, 1, 2, 0, 0, 0, 0, 1, 0]
        x[i, 1] = [1, 1, 1, 0, 0, 2, 1, 1, 0]
        x[i, 2] = [0, 2, 0, pitch + 1, 2, inst, 0, 1, 0]
    meta = {"songs": [{"id": "drum", "genre": "Pop"}, {"id": "keys", "genre": "Folk"}]}
    np.savez(tmp_path / "t.npz", x=x, seq_len=np.full(2, 3, np.int32), metadata=np.array(json.dumps(meta)))
    songs, _ = evaluate.load_reference(tmp_path / "t.npz", 10, 0, None)
    by_name = {s.name: s for s in songs}
    assert by_name["t:drum"].sidecar["genre"] == "Pop" and by_name["t:keys"].sidecar["genre"] == "Folk"
    rows = {s.name: evaluate.song_metrics(s, None, evaluate.Settings(si=None)) for s in songs}
    drum, keys = rows["t:drum"], rows["t:keys"]
    assert (drum["drum_kit_share"], drum["drum_bar_share"], drum["drums_throughout"], drum["tracks_used"]) == (1, 1, 1, 1)
    assert math.isnan(drum["repetition"])                       # one bar
    assert math.isnan(keys["drum_kit_share"]) and keys["drums_throughout"] == 0.0
    for key in ("repetition", "drum_kit_share", "drum_bar_share", "drums_throughout", "tracks_used"):
        assert key in evaluate.METRIC_KEYS
    assert evaluate.aggregate(list(rows.values()))["drums_throughout"]["mean"] == 0.5
