"""Calibration of the video -> class mapping (SPEC 5b) and the density count-down, by hand-worked values."""
import math

import numpy as np
import pytest
import torch

from vidscore.generation import calibration
from vidscore import constants as D
from vidscore.generation import generate as generation
from vidscore.generation.generate import Controls, Song, barbeat_mask, beat_density, clamp_strength, generate
from vidscore.music.representation import notes_to_tokens
from vidscore.video import metadata as M


# ----------------------------------------------------------------------------- the quantile fit

def test_quantile_thresholds_by_hand():
    values = np.arange(10.0)                         # 0..9
    # half the data in class 0, half in class 1: the split at the median 4.5
    assert calibration.quantile_thresholds(values, [5, 5], 1) == [4.5]
    # classes 0 and 3 absent: -inf below, +inf above; classes 1 and 2 share the values
    thr = calibration.quantile_thresholds(values, [0, 2, 2, 0], 3)
    assert thr == [-math.inf, 4.5, math.inf]
    classes = [M.classify(v, thr) for v in values]
    assert classes == [1] * 5 + [2] * 5
    # a quarter at the 25 % point: linear quantile of 0..9 at 0.25 is 2.25
    assert calibration.quantile_thresholds(values, [1, 3], 1) == [2.25]
    # the top 1 % of the data (class 2 here) is never asked for with tail 0.01
    assert calibration.quantile_thresholds(values, [50, 49, 1], 2) == [4.5, pytest.approx(8.91)]
    assert calibration.quantile_thresholds(values, [50, 49, 1], 2, tail=0.01) == [4.5, math.inf]


def test_fit_follows_the_data_by_hand():
    stats = {"bar_density": [0, 0, 4, 0, 4] + [0] * 12,              # half 2 onsets, half 4
             "beat_strength": {"2": [0, 3, 1]}, "beat_count": {"2": 4}}
    flows = np.arange(10.0)
    weights = [0.1, 0.3, 0.5, 0.7, 0.9]
    cal = calibration.fit(stats, flows, weights, min_strength=2)
    d = cal["density_thresholds"]
    assert len(d) == 16 and d[:2] == [-math.inf, -math.inf] and d[2] == d[3] == 4.5
    assert all(t == math.inf for t in d[4:])
    assert [M.classify(v, d) for v in flows] == [2] * 5 + [4] * 5
    s = cal["strength_thresholds"]
    # thr[0]: the original's drop weight at --density_threshold 2; the kept weights .3 .5 .7 .9
    # get strength 1 for 75 % of them (the Piano data): the 0.75 quantile of the four is 0.75
    assert s[0] == M.STRENGTH_THRESHOLDS[1]
    assert s[1] == pytest.approx(0.75) and all(t == math.inf for t in s[2:])
    assert [M.classify(w, s) for w in weights] == [0, 1, 1, 1, 2]
    assert cal["forced_tracks"] == [2] and cal["strength_max"] == {"2": 2}


def test_notes_matched_thresholds_by_hand():
    values = np.arange(100.0)                        # 0..99: the quantile at q is 99 q
    notes = [0, 0, 50, 0, 50]                        # half the data's bars play 2 notes, half 4
    dens = [0, 30, 40, 30]                           # the data has classes 1..3
    # the model plays 2, 3 and 4.5 notes per bar at classes 1, 2, 3 (class 0: the data has none)
    thr = calibration.notes_matched_thresholds(values, notes, [0.0, 2.0, 3.0, 4.5], dens, 3)
    # 1|2 at 2.5 notes: the data's share below, each count spread over +-1/2, is 0.5 -> 49.5;
    # 2|3 at 3.75 notes: 0.5 + 0.25 * 0.5 = 0.625 -> 61.875
    assert thr == [-math.inf, 49.5, pytest.approx(61.875)]
    assert [M.classify(v, thr) for v in (0, 49, 50, 61, 62, 99)] == [1, 1, 2, 2, 3, 3]
    # a class whose response does not rise is never asked for: 1 | 3 meet at 3.25 notes -> 49.5
    thr = calibration.notes_matched_thresholds(values, notes, [0.0, 2.0, 1.5, 4.5], dens, 3)
    assert thr == [-math.inf, 49.5, 49.5]
    assert {M.classify(v, thr) for v in values} == {1, 3}
    # the data's top `tail` (class 3: its last 30 %) is never asked for
    assert calibration.notes_matched_thresholds(values, notes, [0.0, 2.0, 3.0, 4.5], dens, 3, tail=0.35) == \
        [-math.inf, 49.5, math.inf]
    # nothing usable (no response measured): None, and fit falls back to onset positions
    assert calibration.notes_matched_thresholds(values, notes, [float("nan")] * 4, dens, 3) is None
    stats = {"bar_density": [0, 0, 4, 0, 4] + [0] * 12, "bar_notes": notes,
             "beat_strength": {"2": [0, 3, 1]}, "beat_count": {"2": 4}}
    by_pos = calibration.fit(stats, values, [0.5], min_strength=2)
    assert by_pos["density_fit"] == "positions" and by_pos["density_response"] is None
    resp = [0.0, 1.0, 2.0, 3.0, 4.0] + [float("nan")] * 12   # one note per onset position
    by_notes = calibration.fit(stats, values, [0.5], min_strength=2, response=resp)
    assert by_notes["density_fit"] == "notes" and by_notes["density_response"][:5] == resp[:5]
    # classes 2 (2 notes) and 4 (4 notes), as the data, split where the data splits: the median
    assert by_notes["density_thresholds"][2:4] == [49.5, 49.5]
    assert [M.classify(v, by_notes["density_thresholds"]) for v in (0, 49, 50, 99)] == [2, 2, 4, 4]


def test_calibrated_rows_cover_the_forced_beats_by_hand():
    # bar 0 asks 1 onset (density 2) but forces beats at positions 0 and 8 (strength 1, 2) and has
    # a beat of strength 0 (not forced) at 4; bar 1 asks 5 onsets and forces one: unchanged
    rows = np.array([[D.BAR, 2, 0, 0, 32, 1], [1, 0, 1, 0, 32, 1], [5, 0, 0, 4, 32, 13], [9, 0, 2, 8, 32, 26],
                     [9, 0, 1, 8, 32, 26],
                     [D.BAR, 6, 0, 16, 32, 51], [3, 0, 1, 18, 32, 57]], np.int64)
    out = calibration.cover_forced_beats(rows, 1)
    assert out[0, M.ROW_DENSITY] == 3 and out[5, M.ROW_DENSITY] == 6      # 2 positions + 1; as it was
    assert rows[0, M.ROW_DENSITY] == 2                                    # the input is not changed
    assert np.array_equal(np.delete(out, [0], 0), np.delete(rows, [0], 0))
    assert calibration.cover_forced_beats(rows, 2)[0, M.ROW_DENSITY] == 2   # one beat forced: 1 + 1 <= 2
    meta = {"duration": 4.0, "tempo": 120.0, "flow_magnitude_per_bar": [0.0, 0.0],
            "vbeats": [{"bar": 0, "tick": t, "weight": 0.9, "start_time": t / 8} for t in (0, 4, 8, 12)]}
    cal = calibration.Mapping("calibrated", (1.0,) + (math.inf,) * 15, (0.2, 0.9) + (math.inf,) * 8,
                              min_strength=1, cover_forced=True)
    r = cal.rows(meta)
    assert r[r[:, 0] == D.BAR, M.ROW_DENSITY].tolist() == [5, 1]          # 4 forced positions; bar 1 empty
    plain = calibration.Mapping("original", (1.0,) + (math.inf,) * 15, (0.2, 0.9) + (math.inf,) * 8)
    assert plain.rows(meta)[0, M.ROW_DENSITY] == 1                        # the original's classes as they are


def test_strength_clamp_and_rhythm_tracks_by_hand():
    stats = {"beat_strength": {"2": [0, 997, 3], "1": [0, 50, 30, 19, 1]}}
    # Piano: 99.7 % strength 1 -> at most 1; Drums: 50, 80, 99 % by 1, 2, 3 -> at most 3
    assert calibration.strength_max(stats) == {2: 1, 1: 3}
    assert clamp_strength(5, 2, {2: 1}) == 1
    assert clamp_strength(2, 1, {2: 1, 1: 3}) == 2
    assert clamp_strength(4, 4, {2: 1}) == 4            # a track without data: not clamped
    assert clamp_strength(0, 2, None) == 1               # a forced beat plays at least one note
    assert calibration.rhythm_tracks({"beat_count": {"2": 700, "3": 200, "4": 100}}) == [2]
    assert calibration.rhythm_tracks({"beat_count": {"1": 100, "2": 600, "3": 300}}) == [1, 2, 3]
    assert calibration.rhythm_tracks({"beat_count": {"4": 10, "5": 90}}) == [5]


def test_data_stats_read_from_tokens():
    # bar 0: Piano chord (2 notes) at 0, single notes at 4 and 8; bar 1: Piano and Guitar at 0
    notes = np.array([[0, 60, 4, D.PIANO], [0, 64, 4, D.PIANO], [4, 62, 4, D.PIANO], [8, 65, 4, D.PIANO],
                      [16, 60, 4, D.PIANO], [16, 55, 4, D.GUITAR]], np.int64)
    tok = notes_to_tokens(notes)
    x = np.zeros((1, len(tok) + 3, 9), np.int32)
    x[0, :len(tok)] = tok
    stats = calibration.data_stats({"x": x})
    bd = np.asarray(stats["bar_density"])
    assert bd[3] >= 1 and bd[1] >= 1                   # 3 onset positions in bar 0, 1 in bar 1
    assert bd[[3, 1]].tolist() == [1, 1] and bd.sum() - 2 == bd[0]   # any other bars are empty
    assert stats["beat_strength"]["2"][:3] == [0, 3, 1]
    assert stats["beat_strength"]["3"][:2] == [0, 1]
    assert stats["beat_count"] == {"2": 4, "3": 1}
    assert stats["rhythm_tracks"] == [2]
    bn = np.asarray(stats["bar_notes"])              # 4 notes in bar 0, 2 in bar 1
    assert bn[4] == 1 and bn[2] == 1 and bn.sum() - 2 == bn[0]


def test_metadata_rows_take_the_given_thresholds():
    meta = {"duration": 4.0, "tempo": 120.0, "flow_magnitude_per_bar": [0.5, 3.0],
            "vbeats": [{"bar": 0, "tick": 4, "weight": 0.5}, {"bar": 1, "tick": 8, "weight": 0.95}]}
    orig = M.metadata_to_rows(meta)
    assert orig[:, 1].tolist() == [M.density_class(0.5) + 1, 0, M.density_class(3.0) + 1, 0]
    cal = M.metadata_to_rows(meta, density_thresholds=[1.0] + [math.inf] * 15,
                             strength_thresholds=[0.2, 0.9] + [math.inf] * 8)
    assert cal[:, 1].tolist() == [1, 0, 2, 0]         # class 0 / class 1, stored + 1
    assert cal[:, 2].tolist() == [0, 1, 0, 2]
    assert np.array_equal(cal[:, [0, 3, 4, 5]], orig[:, [0, 3, 4, 5]])


# ----------------------------------------------------------------------------- the count-down

def _song(rows, **kw):
    s = Song(rows=np.asarray(rows, np.int64), n_beat=64, tracks=(D.PIANO,), rng=np.random.default_rng(0))
    for k, v in kw.items():
        setattr(s, k, v)
    return s


BARS_ONLY = [[17, 5, 0, 0, 64, 1], [17, 3, 0, 16, 64, 26]]
WITH_BEAT = [[17, 5, 0, 0, 64, 1], [9, 0, 2, 8, 64, 13], [17, 3, 0, 16, 64, 26]]


def test_count_down_masks_by_hand():
    n = 18
    ctl = Controls()
    # 2 onsets owed after position 4: a new position up to 15 (room for one more), no Bar
    a = barbeat_mask(_song(BARS_ONLY, barbeat=4, owed=2), n, ctl)
    assert np.flatnonzero(a).tolist() == list(range(4, 16))
    # count-down at its end: the same position (another instrument) or the Bar
    a = barbeat_mask(_song(BARS_ONLY, barbeat=4, owed=0), n, ctl)
    assert np.flatnonzero(a).tolist() == [4, 17]
    # a visual beat at bar-beat 9 still to come, 2 owed: one free onset before it (5..8), or
    # anything at or after 9 (forces it), or Bar (forces it)
    a = barbeat_mask(_song(WITH_BEAT, barbeat=4, owed=2), n, ctl)
    assert np.flatnonzero(a).tolist() == [4, 5, 6, 7, 8] + list(range(9, 18))
    # only the visual beat owed: no free onset before it
    a = barbeat_mask(_song(WITH_BEAT, barbeat=4, owed=1), n, ctl)
    assert np.flatnonzero(a).tolist() == [4] + list(range(9, 18))
    # no room left for the 3 owed onsets after position 15: the bar may close
    a = barbeat_mask(_song(BARS_ONLY, barbeat=15, owed=3), n, ctl)
    assert np.flatnonzero(a).tolist() == [15, 17]
    # the original's sampler: any position from the current one on, or Bar
    a = barbeat_mask(_song(BARS_ONLY, barbeat=4, owed=0), n, Controls(count_down=False))
    assert np.flatnonzero(a).tolist() == list(range(4, 18))


def test_beat_density_counts_down_by_hand():
    s = _song(BARS_ONLY, barbeat=0, owed=3)
    assert beat_density(s, 5) == 3 and s.owed == 2        # 2 positions after this one: density 3
    s.barbeat = 5
    assert beat_density(s, 5) == 3 and s.owed == 2        # same position: same count
    assert beat_density(s, 9) == 2 and s.owed == 1


N_BEAT = 128
ROWS = np.array([[17, 6, 0, 0, N_BEAT, 1], [5, 0, 2, 4, N_BEAT, 4], [17, 3, 0, 16, N_BEAT, 13],
                 [17, 9, 0, 32, N_BEAT, 26], [13, 0, 3, 44, N_BEAT, 35], [17, 2, 0, 48, N_BEAT, 38],
                 [17, 5, 0, 64, N_BEAT, 51], [17, 4, 0, 80, N_BEAT, 63], [3, 0, 2, 82, N_BEAT, 65],
                 [17, 7, 0, 96, N_BEAT, 76], [17, 3, 0, 112, N_BEAT, 88]])


def test_density_control_acts_at_C_1(tiny):
    """A random model, C = 1: every bar realises the video's density (distinct onset positions + 1)."""
    from vidscore.evaluation import metrics
    songs = generate(tiny, ROWS, np.asarray(D.RELEASED_INIT_BLOCK), 4, seed=3,
                     controls=Controls(C=1.0, max_tokens_per_bar=10 ** 4))   # (a random model stalls)
    want = ROWS[ROWS[:, 0] == 17, 1]
    hits = []
    for s in songs:
        t = np.asarray(s.tokens)
        got = metrics.bar_densities(metrics.notes_from_tokens(t), np.arange(len(want)))
        hits += (got == want).tolist()
        bars = t[t[:, D.COL_BARBEAT] == D.BAR]
        assert bars[:, D.COL_DENSITY].tolist() == want.tolist()
        beats = t[(t[:, D.COL_TYPE] == D.TYPE_M) & (t[:, D.COL_BARBEAT] < D.BAR)]
        for b in beats:                         # each Beat's density counts down the positions after it
            bar = b[D.COL_IBEAT] // 16
            pos = np.unique(beats[beats[:, D.COL_IBEAT] // 16 == bar, D.COL_IBEAT])
            assert b[D.COL_DENSITY] == (pos > b[D.COL_IBEAT]).sum() + 1
    assert np.mean(hits) >= 0.8, np.mean(hits)
    # the original sampler (no count-down) falls short on the same random model
    old = generate(tiny, ROWS, np.asarray(D.RELEASED_INIT_BLOCK), 4, controls=Controls(C=1.0, count_down=False), seed=3)
    old_hits = [metrics.bar_densities(metrics.notes_from_tokens(np.asarray(s.tokens)), np.arange(len(want))) == want
                for s in old]
    assert np.mean(old_hits) < np.mean(hits)


def test_song_k_does_not_depend_on_num_songs(tiny):
    init = np.asarray(D.RELEASED_INIT_BLOCK)
    one = generate(tiny, ROWS, init, 1, seed=11)
    two = generate(tiny, ROWS, init, 2, seed=11)
    three = generate(tiny, ROWS, init, 3, seed=11)
    assert np.array_equal(one[0].tokens, two[0].tokens)
    assert np.array_equal(two[1].tokens, three[1].tokens)
    assert not np.array_equal(two[0].tokens, two[1].tokens)


def test_forced_strength_is_clamped(tiny):
    songs = generate(tiny, ROWS, np.asarray(D.RELEASED_INIT_BLOCK), 2, seed=1,
                     controls=Controls(forced_tracks=(D.PIANO, D.GUITAR), strength_max={D.PIANO: 1}))
    for s in songs:
        assert {(f[3], f[2]) for f in s.forced} == {(D.PIANO, 1), (D.GUITAR, 2), (D.GUITAR, 3)}


def test_released_and_original_keep_the_original_thresholds(tiny):
    tiny.vocab = {"data_stats": {"bar_density": [0, 0, 0, 0, 10] + [0] * 12, "beat_strength": {"2": [0, 10]},
                                 "beat_count": {"2": 10}, "rhythm_tracks": [2]}}
    tiny.checkpoint_info = {"format": "ours"}
    m = calibration.mapping_for(tiny, "calibrated")
    assert m.name == "calibrated" and m.forced_tracks == (D.PIANO,) and m.min_strength == 1
    assert set(m.density_thresholds[:4]) == {-math.inf} and set(m.density_thresholds[4:]) == {math.inf}
    assert calibration.mapping_for(tiny, "original").density_thresholds == M.DENSITY_THRESHOLDS
    tiny.checkpoint_info = {"format": "released"}
    m = calibration.mapping_for(tiny, "calibrated")
    assert m.name == "original" and m.strength_thresholds == M.STRENGTH_THRESHOLDS and m.min_strength == 2
    tiny.vocab, tiny.checkpoint_info = None, {}


def test_npz_input_uses_the_metadata_beside_it(tmp_path, capsys):
    import json

    from vidscore.generation import job as pipeline
    meta = {"duration": 4.0, "tempo": 120.0, "flow_magnitude_per_bar": [0.5, 3.0],
            "vbeats": [{"bar": 0, "tick": 4, "weight": 0.5}, {"bar": 1, "tick": 8, "weight": 0.95}]}
    orig = M.metadata_to_rows(meta)
    M.save_npz(tmp_path / "clip.npz", orig, 120.0, 4.0)
    mapping = calibration.Mapping("calibrated", (1.0,) + (math.inf,) * 15, (0.2, 0.9) + (math.inf,) * 8,
                                  min_strength=1)
    opts = pipeline.Options(out_dir=str(tmp_path / "out"))
    # no metadata beside it: the npz's (original) classes, with a note
    rows = pipeline.video_rows(tmp_path / "clip.npz", opts, mapping)[0]
    assert rows.tolist() == orig.tolist() and "classes are used as they are" in capsys.readouterr().err
    # the metadata written with it: recomputed under the mapping
    (tmp_path / "clip_metadata.json").write_text(json.dumps(meta))
    rows = pipeline.video_rows(tmp_path / "clip.npz", opts, mapping)[0]
    assert rows[:, 1].tolist() == [1, 0, 2, 0] and rows[:, 2].tolist() == [0, 1, 0, 2]
    # metadata of another video (other bars) is not taken
    (tmp_path / "clip_metadata.json").write_text(json.dumps(dict(meta, flow_magnitude_per_bar=[0.5, 3.0, 1.0])))
    assert pipeline.video_rows(tmp_path / "clip.npz", opts, mapping)[0].tolist() == orig.tolist()


def test_no_new_position_after_the_video_ends():
    # bar 1 of a 22-tick video: bar-beats 1..6 lie inside it (ticks 16..21)
    s = _song(BARS_ONLY, bar=1, barbeat=2, owed=3, j=2, n_beat=22, notes_in_bar=1)
    assert generation.last_position(s) == 6
    assert np.flatnonzero(barbeat_mask(s, 18, Controls())).tolist() == [2, 3, 4, 5, 6]
    s = _song(BARS_ONLY, bar=1, barbeat=6, owed=3, j=2, n_beat=22, notes_in_bar=1)
    assert np.flatnonzero(barbeat_mask(s, 18, Controls())).tolist() == [6, 17]      # the song may end
    assert generation.type_mask(s, 3, Controls())[D.TYPE_EOS]


def test_stat_mix_refuses_bad_input_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    bad = tmp_path / "ref.json"
    bad.write_text("{not json")
    ckpt = tmp_path / "x.pt"
    torch.save({"format": "nothing"}, ckpt)
    for args in (["--ckpt", str(ckpt)], ["--ckpt", str(ckpt), "--out", str(ckpt)],
                 ["--ckpt", str(ckpt), "--out", str(tmp_path / "y.pt"), "--reference", str(bad)],
                 ["--ckpt", str(ckpt), "--out", str(tmp_path / "y.pt")]):
        res = subprocess.run([sys.executable, str(root / "src" / "stat_mix.py"), *args],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "y.pt").exists()
    # --out never lands on an input: the training data or the reference file
    data, ref = tmp_path / "train.npz", tmp_path / "reference.json"
    data.write_bytes(b"PK data")
    ref.write_text("{}")
    for out in (data, ref):
        res = subprocess.run([sys.executable, str(root / "src" / "stat_mix.py"), "--ckpt", str(ckpt), "--out", str(out),
                              "--data", str(data), "--reference", str(ref), "--density_threshold", "2"],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and "would overwrite an input" in res.stderr, res.stderr
    assert data.read_bytes() == b"PK data" and ref.read_text() == "{}"
    res = subprocess.run([sys.executable, str(root / "src" / "stat_mix.py"), "--ckpt", str(ckpt), "--out",
                          str(tmp_path / "y.pt"), "--density_threshold", "99"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "--density_threshold must be from" in res.stderr, res.stderr
    # a damaged file gets the same reason as everywhere else a checkpoint is read (model.read_checkpoint)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(ckpt.read_bytes()[:-40])
    res = subprocess.run([sys.executable, str(root / "src" / "stat_mix.py"), "--ckpt", str(cut), "--out",
                          str(tmp_path / "y.pt")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "truncated or damaged" in res.stderr and "copy or download it again" in res.stderr
    assert not (tmp_path / "y.pt").exists()
