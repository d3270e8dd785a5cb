"""Metrics on small inputs whose values are worked out by hand (or by an independent route)."""
import math

import numpy as np
import pytest

from vidscore.evaluation import metrics as M

C_MAJOR = [60, 62, 64, 65, 67, 69, 71]


def notes(*rows):
    """rows of (onset, pitch, duration, instrument)."""
    return M.as_notes(np.array(rows, dtype=np.int64).reshape(-1, 4))


def scale_bar(bar=0, instrument=M.PIANO):
    return [(bar * 16 + 2 * i, p, 2, instrument) for i, p in enumerate(C_MAJOR)]


# ----------------------------------------------------------------------------- PCHE

def test_pche_one_bar_of_seven_pitch_classes_is_log2_7():
    assert M.pitch_class_entropy(notes(*scale_bar()), 1) == pytest.approx(math.log2(7))


def test_pche_ignores_drums_and_counts_octaves_as_one_class():
    song = scale_bar() + [(0, 36, 1, M.DRUMS), (4, 38, 1, M.DRUMS), (8, 72, 2, M.PIANO)]  # 72 = C again
    # histogram: C twice, six others once -> -(2/8 log2 2/8) - 6 (1/8 log2 1/8) = 0.5 + 2.25
    assert M.pitch_class_entropy(notes(*song), 1) == pytest.approx(2.75)


def test_pche_windows_slide_by_one_bar_and_skip_empty_windows():
    # bars 0..4 hold one note each: C C C C D; 4-bar windows: {C,C,C,C} -> 0, {C,C,C,D} -> H(3/4, 1/4)
    song = notes(*[(16 * b, 60 if b < 4 else 62, 4, M.PIANO) for b in range(5)])
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert M.pitch_class_entropy(song, 4) == pytest.approx(h / 2)
    # 1-bar windows: every bar has a single pitch class -> 0
    assert M.pitch_class_entropy(song, 1) == 0.0
    # an empty bar in the middle is not a window: bars 0 and 2 only
    gap = notes(*(scale_bar(0) + [(32, 60, 4, M.PIANO)]))
    assert M.pitch_class_entropy(gap, 1) == pytest.approx(math.log2(7) / 2)


def test_pche_window_longer_than_song_covers_whole_song():
    song = notes(*(scale_bar(0) + [(16, 60, 4, M.PIANO)]))  # two bars, C twice overall
    assert M.pitch_class_entropy(song, 4) == pytest.approx(2.75)


def test_pche_undefined_without_pitched_notes():
    assert math.isnan(M.pitch_class_entropy(notes((0, 36, 1, M.DRUMS)), 1))
    assert math.isnan(M.pitch_class_entropy(notes(), 1))


# ----------------------------------------------------------------------------- GPS

def test_gps_two_identical_bars_is_one():
    assert M.grooving_pattern_similarity(notes(*(scale_bar(0) + scale_bar(1)))) == 1.0


def test_gps_pairs_by_hand():
    # A = {0,4,8,12}, B = {0,8}, C = {0}: XOR sizes AB 2, AC 3, BC 1 -> 1 - k/16
    a = [(p, 60, 1, M.DRUMS) for p in (0, 4, 8, 12)]
    b = [(16 + p, 60, 1, M.PIANO) for p in (0, 8)]
    c = [(32, 60, 1, M.BASS)]
    expect = np.mean([1 - 2 / 16, 1 - 3 / 16, 1 - 1 / 16])
    assert M.grooving_pattern_similarity(notes(*(a + b + c))) == pytest.approx(expect)


def test_gps_full_bar_against_empty_bar_is_zero_and_one_bar_is_nan():
    full = [(p, 60, 1, M.PIANO) for p in range(16)] + [(32, 60, 1, M.PIANO)]
    # bars: full, empty, {0}: pairs 0 (16 differ), 1/16 (15 differ), 15/16 (1 differs)
    assert M.grooving_pattern_similarity(notes(*full)) == pytest.approx(np.mean([0.0, 1 / 16, 15 / 16]))
    assert math.isnan(M.grooving_pattern_similarity(notes(*scale_bar())))


def test_gps_equals_the_pairwise_mean_and_a_far_stray_note_costs_no_bar_matrix():
    rng = np.random.default_rng(3)
    onsets = np.flatnonzero(rng.random(40 * 16) < 0.3)               # 40 bars of random onsets
    song = notes(*[(int(o), 60, 1, M.PIANO) for o in onsets])
    g = M.grooving_patterns(song)
    pairwise = [1 - np.mean(g[i] ^ g[j]) for i in range(len(g)) for j in range(i + 1, len(g))]
    assert M.grooving_pattern_similarity(song) == pytest.approx(np.mean(pairwise), abs=1e-12)
    # 24 notes and one 300,000 bars later: pairs of empty bars are alike, so GPS is almost 1;
    # the all-pairs matrix would need 670 GiB
    far = notes(*([(p, 60, 1, M.PIANO) for p in range(0, 48, 2)] + [(16 * 300_000, 60, 1, M.PIANO)]))
    n = 300_001
    # bars 0-2 have onsets at the even positions, the last bar at 0: a position with onsets in c
    # bars differs in c * (n - c) pairs; position 0: c = 4, positions 2..14: c = 3
    differing = 4 * (n - 4) + 7 * 3 * (n - 3)
    assert M.grooving_pattern_similarity(far) == pytest.approx(1 - differing / (16 * n * (n - 1) / 2), rel=1e-12)


# ----------------------------------------------------------------------------- beat alignment, hit rate

def test_beat_alignment_perfect_and_gaussian():
    beats = [0.5, 1.0, 2.25]
    assert M.beat_alignment(beats, beats) == 1.0
    # one beat 0.05 s from its nearest onset: exp(-0.05^2 / (2 * 0.05^2)) = exp(-1/2)
    assert M.beat_alignment([1.0], [0.0, 1.05, 3.0], sigma=0.05) == pytest.approx(math.exp(-0.5))
    assert M.beat_alignment([1.0], [1.1], sigma=0.1) == pytest.approx(math.exp(-0.5))


def test_beat_alignment_both_directions_differ():
    onsets = [0.0, 0.5, 1.0]
    assert M.beat_alignment([0.5], onsets) == 1.0
    # music -> video: 0.5 s away twice (exp(-50) ~ 0), exact once
    assert M.beat_alignment(onsets, [0.5]) == pytest.approx((1 + 2 * math.exp(-0.25 / 0.005)) / 3)
    assert math.isnan(M.beat_alignment([], onsets))
    assert M.beat_alignment([1.0], []) == 0.0


def test_beat_on_every_visual_beat_gives_ba_and_hit_rate_one():
    ticks = np.array([0, 4, 12, 20, 31])
    song = notes(*[(t, 60, 2, M.PIANO) for t in ticks])
    tempo = 100.0
    vis = M.ticks_to_seconds(ticks, tempo)
    on = M.onset_times(song, tempo)
    assert M.beat_alignment(vis, on) == 1.0
    assert M.beat_alignment(on, vis) == 1.0
    assert M.hit_rate(ticks, song) == 1.0


def test_hit_rate_by_hand():
    song = notes((0, 60, 2, M.PIANO), (8, 36, 1, M.DRUMS), (9, 60, 1, M.PIANO))
    assert M.hit_rate([0, 8, 20], song) == pytest.approx(2 / 3)
    assert math.isnan(M.hit_rate([], song))


def test_ticks_to_seconds():
    # at 120 bpm a quarter (4 ticks) is 0.5 s
    assert M.ticks_to_seconds(4, 120) == pytest.approx(0.5)
    assert M.song_end_seconds(notes((0, 60, 4, M.PIANO), (12, 60, 0, M.PIANO)), 120) == pytest.approx(13 * 0.125)


# ----------------------------------------------------------------------------- control errors

def test_density_error_by_hand():
    # bar 0: onsets at positions 0 (twice) and 4 -> 2 distinct -> density 3; bar 1 empty -> 1
    song = notes((0, 60, 2, M.PIANO), (0, 64, 2, M.GUITAR), (4, 60, 2, M.PIANO))
    err = M.density_error(song, video_bars=[0, 1], video_density=[3, 5])
    assert err["density_mae"] == pytest.approx(2.0)           # |3-3|, |1-5|
    assert err["density_error"] == pytest.approx(2.0 / 16)
    assert err["density_mismatch_rate"] == pytest.approx(0.5)
    assert list(M.bar_densities(song, [0, 1, 7])) == [3, 1, 1]


def test_strength_error_by_hand():
    # kept beat at tick 4 with strength 2: drums play 2 notes there, piano 1, guitar none
    song = notes((4, 36, 1, M.DRUMS), (4, 42, 1, M.DRUMS), (4, 60, 2, M.PIANO), (5, 64, 2, M.GUITAR))
    err = M.strength_error(song, [4], [2])
    assert err["strength_error"] == pytest.approx((0 + 0.5 + 1.0) / 3)
    assert err["strength_mismatch_rate"] == pytest.approx(2 / 3)
    exact = M.strength_error(song, [4], [2], tracks=(M.DRUMS,))
    assert exact == {"strength_error": 0.0, "strength_mismatch_rate": 0.0}
    assert math.isnan(M.strength_error(song, [], [])["strength_error"])


def test_threshold_class_follows_spec():
    from vidscore.video import metadata as VM     # the class rule's owner
    assert VM.classify(-0.1, VM.STRENGTH_THRESHOLDS) == 0
    assert VM.classify(0.1, VM.STRENGTH_THRESHOLDS) == 1
    assert VM.classify(0.5, VM.STRENGTH_THRESHOLDS) == 3
    assert VM.classify(1.0, VM.STRENGTH_THRESHOLDS) == 10
    assert VM.classify(0.0, VM.DENSITY_THRESHOLDS) == 0
    assert VM.classify(5.0, VM.DENSITY_THRESHOLDS) == 16


# ----------------------------------------------------------------------------- SI

def brute_fitness(s, start, m):
    """Independent route: the path-family DP in the FMP layout (column 0 = elevator), with
    explicit back-tracking, then the fitness from the recovered paths."""
    n = len(s)
    neg = -math.inf
    d = [[neg] * (m + 1) for _ in range(n)]
    back = {}
    d[0][0] = 0.0
    d[0][1] = s[0][start]
    back[(0, 1)] = (0, 0)
    for r in range(1, n):
        d[r][0], back[(r, 0)] = max((d[r - 1][0], (r - 1, 0)), (d[r - 1][m], (r - 1, m)), key=lambda t: t[0])
        d[r][1] = d[r][0] + s[r][start]
        back[(r, 1)] = (r, 0)
        for c in range(2, m + 1):
            opts = [(d[r - 1][c - 1], (r - 1, c - 1))]
            if r >= 2:
                opts.append((d[r - 2][c - 1], (r - 2, c - 1)))
            if c - 2 >= 1:
                opts.append((d[r - 1][c - 2], (r - 1, c - 2)))
            best = max(opts, key=lambda t: t[0])
            d[r][c] = best[0] + s[r][start + c - 1]
            back[(r, c)] = best[1]
    cell = (n - 1, 0) if d[n - 1][0] >= d[n - 1][m] else (n - 1, m)
    paths, cur = [], []
    while True:
        if cell[1] >= 1:
            cur.append(cell)
        elif cur:
            paths.append(cur)
            cur = []
        if cell == (0, 0) or cell not in back:
            break
        cell = back[cell]
    if cur:
        paths.append(cur)
    score = sum(s[r][start + c - 1] for p in paths for (r, c) in p)
    cells = sum(len(p) for p in paths)
    cover = sum(max(r for r, _ in p) - min(r for r, _ in p) + 1 for p in paths)
    sn = max(0.0, (score - m) / cells) if cells else 0.0
    cn = max(0.0, (cover - m) / n)
    return 0.0 if sn + cn == 0 else 2 * sn * cn / (sn + cn)


def test_fitness_matches_independent_dp():
    rng = np.random.default_rng(3)
    n = 11
    s = rng.uniform(-1.0, 1.0, (n, n))
    s = (s + s.T) / 2
    np.fill_diagonal(s, 1.0)
    fit = M.fitness_scape_plot(s)
    for m in range(1, n + 1):
        for st in range(n - m + 1):
            assert fit[m, st] == pytest.approx(brute_fitness(s, st, m), abs=2e-3), (m, st)
    assert np.isnan(fit[0]).all() and np.isnan(fit[3, n - 2:]).all()


def test_fitness_of_a_motif_repeated_three_times_is_two_thirds():
    # frames a b c a b c a b c; SSM 1 for equal frames, -2 otherwise
    lab = np.tile(np.arange(3), 3)
    s = np.where(lab[:, None] == lab[None, :], 1.0, -2.0)
    fit = M.fitness_scape_plot(s)
    # segment [0, 3): three paths of 3 cells, score 9 -> (9 - 3) / 9; they cover 9 rows -> (9 - 3) / 9
    assert fit[3, 0] == pytest.approx(2 / 3)
    # a single frame repeats three times too: score (3 - 1) / 3, but it covers only 3 of 9 rows:
    # coverage (3 - 1) / 9 -> harmonic mean of 2/3 and 2/9 = 1/3
    assert fit[1, 0] == pytest.approx(1 / 3)
    assert fit[9, 0] == 0.0                   # the whole song explains only itself


def test_structureness_of_a_repeated_phrase():
    # a 12-beat phrase, one pitch class per beat (120 bpm: a beat = 0.5 s = one SI frame),
    # played 3 times: 6-s segments repeat 3 times -> SI(3-8 s) = 2/3
    phrase = [(4 * i, 60 + i, 4, M.PIANO) for i in range(12)]
    song = notes(*[(o + 48 * k, p, d, ins) for k in range(3) for (o, p, d, ins) in phrase])
    si = M.structureness(song, 120.0)
    assert si["si_frames"] == 36 and si["si_hop_s"] == 0.5
    assert si["si_short"] == pytest.approx(2 / 3)
    assert si["si_long"] < si["si_short"]
    # the same notes in a random order have far less structure
    rng = np.random.default_rng(0)
    shuffled = notes(*[(4 * i, 60 + int(rng.integers(12)), 4, M.PIANO) for i in range(36)])
    assert M.structureness(shuffled, 120.0)["si_short"] < 0.5
    # a song shorter than a range's lower bound has no value there
    assert math.isnan(M.structureness(notes(*phrase[:4]), 120.0)["si_short"])


def test_structureness_long_song_uses_coarser_hop():
    song = notes(*[(4 * i, 60 + i % 12, 4, M.PIANO) for i in range(400)])  # 200 s at 120 bpm
    si = M.structureness(song, 120.0, M.SISettings(max_frames=100))
    assert si["si_frames"] == 100 and si["si_hop_s"] == pytest.approx(2.0)


def test_chroma_integrates_note_energy_per_frame():
    # at 120 bpm a tick is 0.125 s; a note of 6 ticks from tick 2 sounds 0.25 .. 1.0 s
    ch = M.chroma_frames(notes((2, 62, 6, M.PIANO), (0, 36, 16, M.DRUMS)), 120.0, 0.5)
    assert ch.shape == (12, 2)
    assert ch[2] == pytest.approx([0.25, 0.5])
    assert ch.sum() == pytest.approx(0.75)


# ----------------------------------------------------------------------------- tokens and video rows

def token_song():
    # compound tokens [bar-beat, type, density, pitch+1, dur+1, instr, strength, p_beat, i_beat]
    return np.array([
        [17, 1, 3, 0, 0, 0, 0, 1, 0],     # Bar 0
        [1, 1, 2, 0, 0, 1, 2, 1, 0],      # Beat at 0, Drums, strength 2
        [0, 2, 0, 37, 2, 1, 0, 1, 0],     # drum 36, 1 tick
        [0, 2, 0, 43, 2, 1, 0, 1, 0],     # drum 42
        [5, 1, 1, 0, 0, 2, 1, 13, 4],     # Beat at 4, Piano
        [0, 2, 0, 61, 3, 2, 0, 13, 4],    # piano 60, 2 ticks
        [17, 1, 1, 0, 0, 0, 0, 51, 16],   # Bar 1 (empty)
        [0, 0, 0, 0, 0, 0, 0, 0, 0],      # EOS
    ])


VIDEO_ROWS = np.array([[17, 3, 0, 0, 32, 1], [1, 0, 2, 0, 32, 1], [5, 0, 1, 4, 32, 13],
                       [17, 1, 0, 16, 32, 51], [9, 0, 3, 24, 32, 76]])


def test_notes_from_tokens_and_video_controls():
    n = M.notes_from_tokens(token_song())
    assert n.tolist() == [(0, 36, 1, M.DRUMS), (0, 42, 1, M.DRUMS), (4, 60, 2, M.PIANO)]
    v = M.video_controls(VIDEO_ROWS)
    assert v["bar_index"].tolist() == [0, 1] and v["bar_density"].tolist() == [3, 1]
    assert v["beat_ticks"].tolist() == [0, 4, 24]
    assert v["kept_ticks"].tolist() == [0, 24] and v["kept_strengths"].tolist() == [2, 3]


def test_control_errors_from_tokens_by_hand():
    err = M.control_errors_from_tokens(token_song(), VIDEO_ROWS)
    # densities: bar 0 onsets {0, 4} -> 3 = video; bar 1 empty -> 1 = video
    assert err["density_error"] == 0.0 and err["density_mismatch_rate"] == 0.0
    # tracks present among the forced ones: Drums, Piano.  tick 0 (s=2): drums 2 -> 0, piano 0 -> 1;
    # tick 24 (s=3): drums 0 -> 1, piano 0 -> 1
    assert err["strength_error"] == pytest.approx(3 / 4)
    assert err["hit_rate"] == 0.5 and err["time_error"] == 0.5
    # with strength-1 beats kept too: tick 4 (s=1): drums 0 -> 1, piano 1 -> 0
    weak = M.control_errors_from_tokens(token_song(), VIDEO_ROWS, min_strength=1)
    assert weak["strength_error"] == pytest.approx(4 / 6) and weak["hit_rate"] == pytest.approx(2 / 3)
    # no kept beats: undefined values are None (JSON null), not NaN
    none = M.control_errors_from_tokens(token_song(), VIDEO_ROWS[[0, 3]])
    assert none["strength_error"] is None and none["time_error"] is None and none["density_error"] == 0.0
