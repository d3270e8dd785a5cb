"""Genre separability: features of a hand-made song, leave-one-out nearest centroid on made-up vectors."""
import math

import numpy as np
import pytest

from vidscore.evaluation import genre_separability as G
from vidscore.evaluation import metrics as M


def test_features_of_a_two_bar_song_by_hand():
    rows = [(0, 36, 1, M.DRUMS), (4, 38, 1, M.DRUMS), (8, 45, 1, M.DRUMS),       # kick, snare, tom
            (0, 60, 4, M.PIANO), (0, 64, 4, M.PIANO), (8, 67, 4, M.PIANO),      # a chord, then G
            (16, 40, 8, M.BASS), (20, 72, 2, M.STRINGS)]
    f = G.song_features(M.as_notes(np.array(rows)))
    assert f["notes_per_bar"] == 4.0                     # 8 notes, 2 bars
    assert f["drum_share"] == 3 / 8
    assert f["register"] == (60 + 64 + 67 + 40 + 72) / 5
    assert f["polyphony"] == 5 / 4                       # pitched onsets at ticks 0, 8, 16, 20
    assert (f["share_piano"], f["share_guitar"], f["share_bass"], f["share_strings"]) == (3 / 8, 0.0, 1 / 8, 1 / 8)
    assert f["kit_share"] == 2 / 3
    assert f["onset_density"] == 5 / 32                   # ticks 0, 4, 8, 16, 20 of 32
    assert list(f) == list(G.FEATURES)
    drumless = G.song_features(M.as_notes(np.array([(0, 60, 4, M.PIANO)])))
    assert drumless["kit_share"] == 0.0 and drumless["drum_share"] == 0.0
    assert math.isnan(G.song_features(M.as_notes(np.zeros((0, 4), np.int64)))["register"])


def test_leave_one_out_on_one_feature_by_hand():
    # A = {0, 2}, B = {10, 12}, C = {7, 30}.  Held out, 0 and 2 are nearest A's other song; 10 and
    # 12 nearest B's; 7 (A 1, B 11, C 30) goes to B; 30 (A 1, B 11, C 7) goes to B as well.
    x = np.array([[0.0], [2.0], [10.0], [12.0], [7.0], [30.0]])
    y = ["A", "A", "B", "B", "C", "C"]
    r = G.separability(x, y)
    assert r["predicted"] == ["A", "A", "B", "B", "B", "B"]
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["confusion"] == [[2, 0, 0], [0, 2, 0], [0, 2, 0]]
    assert {c: v["recall"] for c, v in r["per_class"].items()} == {"A": 1.0, "B": 1.0, "C": 0.0}
    assert r["chance"] == pytest.approx(1 / 3) and r["classes"] == ["A", "B", "C"] and r["n"] == 6


def test_standardising_lets_a_small_scale_feature_decide():
    # Feature 0 takes 0 or 100 in both genres (no information); feature 1 is 0 in genre A and 1 in
    # B.  Holding out A1 = (0, 0): the other A song is (100, 0), B's centroid (50, 1).  Raw
    # distances: 100 to A, 50.01 to B (wrong).  Standardised by the three training songs (feature
    # 0: 100, 0, 100 -> std 47.14; feature 1: 0, 1, 1 -> std 0.4714): d^2 to A = (100 / 47.14)^2
    # = 4.5, to B = (50 / 47.14)^2 + (1 / 0.4714)^2 = 1.125 + 4.5 = 5.625 -> A.  By symmetry every
    # song is the same case.
    x = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 1.0], [100.0, 1.0]])
    y = ["A", "A", "B", "B"]
    r = G.separability(x, y)
    assert r["accuracy"] == 1.0 and r["confusion"] == [[2, 0], [0, 2]]


def test_missing_values_take_the_training_mean_and_constant_features_drop_out():
    # feature 1 is NaN for the query: it takes the training mean 5, the same distance to both
    # centroids, so feature 0 decides; feature 2 is constant and left out.
    tx = np.array([[0.0, 0.0, 3.0], [10.0, 10.0, 3.0]])
    ty = np.array(["A", "B"], dtype=object)
    assert G.nearest_centroid(tx, ty, np.array([[8.0, np.nan, 3.0]]), ["A", "B"]).tolist() == ["B"]
    # a genre with one song: held out, it has no centroid and the song counts as wrong
    r = G.separability(np.array([[0.0], [1.0], [9.0]]), ["A", "A", "B"])
    assert r["per_class"]["B"] == {"n": 1, "recall": 0.0}
    with pytest.raises(ValueError):
        G.separability(np.array([[0.0], [1.0]]), ["A", "A"])
