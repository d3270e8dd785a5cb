"""Mood from the picture (issue 28): valence and arousal from hand-made picture figures, their
mapping to mode, key, genre, emotion and tempo octave, and that the user's flags win."""
from types import SimpleNamespace

import numpy as np
import pytest

from vidscore import constants as D
from vidscore.generation import job, mood as gm
from vidscore.video import mood


def test_picture_figures_and_valence_arousal_by_hand():
    # two frames: brightness .7 / .9, saturation .4 / .6, warm .3 / .1, cool .1 / .1 (columns after luma)
    stats = np.array([[100, .7, .4, .3, .1], [120, .9, .6, .1, .1]])
    pic = mood.picture(stats, motion=[1.0, 3.0], duration_s=30.0, n_cuts=10)
    assert pic == pytest.approx({"brightness": .8, "saturation": .5, "warmth": .1, "motion": 2.0,
                                 "cuts_per_minute": 20.0})
    v, a = mood.valence_arousal({**pic, "warmth": .2})
    # valence 2 (0.69 * 0.3 + 0.22 * 0.2 + 0.2 * 0.2) = 0.582; motion 2 -> 2 / 4 = 0.5, 20 cuts / min -> 0.5:
    # arousal 2 (-0.31 * 0.3 + 0.6 * 0.2 + 0.8 * 0.1 + 0.3 * 0.3) = 0.394
    assert (v, a) == pytest.approx((0.582, 0.394))
    # a dark, grey, still picture: 2 (0.69 * -0.4 + 0.22 * -0.3) = -0.684;
    # 2 (-0.31 * -0.4 + 0.6 * -0.3 + 0.8 * -0.4 + 0.3 * -0.2) = -0.872
    dark = {"brightness": .1, "saturation": 0.0, "warmth": 0.0, "motion": 0.0, "cuts_per_minute": 0.0}
    assert mood.valence_arousal(dark) == pytest.approx((-0.684, -0.872))


def test_mapping_by_hand():
    assert [gm.quadrant(v, a) for v, a in ((.5, .5), (-.5, .5), (-.5, -.5), (.5, -.5))] == [1, 2, 3, 4]
    # arousal .5: fast (110..160): 60 bpm doubles to 120; -.5: slow (60..100): 150 halves to 75;
    # 0: moderate (80..130): 100 stays; 300 bpm fits no octave of 60..100 within the tempo tokens' range
    assert gm.tempo_in_range(60, .5) == 120 and gm.tempo_in_range(150, -.5) == 75
    assert gm.tempo_in_range(100, 0.0) == 100 and gm.tempo_in_range(45, -0.5) == 90
    vocab = {"keys": [1, 8, 17, 20], "default_key": 8, "genres": [5, 7, 8], "default_genre": 5}
    # minor wanted, default G major (8): its relative minor E minor = 13 + (7 + 9) % 12 = 17
    assert gm.key_for(False, vocab, 25) == 17
    assert gm.key_for(True, vocab, 25) == 8                                   # the default has the mode
    assert gm.key_for(False, {**vocab, "keys": [1, 8, 20]}, 25) == 20         # no relative: the first minor
    assert gm.key_for(True, {"keys": [13], "default_key": 13}, 25) == 13      # no major known: the default
    assert gm.key_for(True, vocab, 1) is None                                 # no key labels
    # Pop 5, Classical 7, Folk 8 known: Q1 Pop, Q2 (Rock, Metal, ... absent) Pop, Q3 Classical, Q4 Folk
    assert [gm.genre_for(q, vocab) for q in (1, 2, 3, 4)] == [5, 5, 7, 8]
    assert gm.genre_for(3, vocab, n_genre=7) == 5            # ids past the genre embedding are not offered


def fake_model(preset="cmt", released=False, emotions=None):
    vocab = {"keys": [1, 8, 17], "default_key": 8, "genres": [5, 7, 8], "default_genre": 5}
    if emotions is not None:
        vocab["emotions"] = emotions
    return SimpleNamespace(vocab=vocab, config=SimpleNamespace(init_n_class=[9, 25, 6], preset=preset),
                           checkpoint_info={"format": "released" if released else "ours"})


def test_choose_fills_only_what_the_user_left_open():
    sad = {"valence": -0.4, "arousal": -0.6}
    got = gm.choose(sad, fake_model(), {"key": None, "genre": None, "emotion": None})
    assert got["set"] == {"key": 17, "genre": 7} and got["chose"] == {"key": "E minor", "genre": "Classical"}
    assert got["quadrant"] == "Q3" and got["mode"] == "minor" and got["tempo_range"] == [60.0, 100.0]
    mine = gm.choose(sad, fake_model(), {"key": 3, "genre": None, "emotion": None})
    assert mine["set"] == {"genre": 7}                                       # the user's key wins
    assert gm.choose(sad, fake_model(), {"key": 3, "genre": 8, "emotion": None})["set"] == {}
    bmt = gm.choose(sad, fake_model("bmt", emotions=[0, 3]), {"key": None, "genre": None, "emotion": None})
    assert bmt["set"]["emotion"] == 3
    assert "emotion" not in gm.choose(sad, fake_model("bmt", emotions=[0, 1]), {})["set"]
    assert gm.choose(sad, fake_model(released=True), {})["set"] == {}
    assert gm.choose(None, fake_model(), {}) == {}


def test_a_user_tempo_or_mood_0_keeps_the_visual_tempo(tmp_path):
    meta = {"tempo": 150.0, "mood": {"valence": 0.0, "arousal": -0.8}}
    assert job.mood_tempo(tmp_path / "x.mp4", meta, job.Options(tempo=96.0)) is meta
    assert job.mood_tempo(tmp_path / "x.mp4", meta, job.Options(mood=False)) is meta
    assert job.mood_tempo(tmp_path / "x.mp4", {"tempo": 80.0, "mood": meta["mood"]}, job.Options())["tempo"] == 80.0


def test_the_pipeline_reports_the_mood_and_a_user_key_wins(tmp_path):
    import json

    import cv2

    import conftest
    import video_fixtures as vf
    ckpt = conftest.save_tiny_checkpoint(tmp_path / "m.pt", vocab={"keys": [1, 8, 17], "default_key": 8,
                                                                   "genres": [5, 6], "default_genre": 5})
    dark = (vf.texture(320, 180, 3, 4.0) * 0.15).astype(np.uint8)        # dark, grey-ish, slow: Q3
    vw = cv2.VideoWriter(str(tmp_path / "dark.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 180))
    for k in range(100):
        vw.write(np.ascontiguousarray(np.roll(dark, k // 4, axis=1)))
    vw.release()
    model = job.load_model(ckpt, "cpu", "float32", threads=1)
    for flags, key in (({}, "E minor"), ({"key": "C major"}, None)):
        opts = job.options_from_hp({"out_dir": str(tmp_path / "out"), "render": 0, "mood": 1, **flags}, model)
        job.run([tmp_path / "dark.mp4"], model, opts, log=lambda *a: None)
        rep = json.loads((tmp_path / "out" / "dark_0.json").read_text())
        assert rep["mood"]["valence"] < 0 and rep["mood"]["mode"] == "minor"
        assert rep["mood"]["chose"].get("key") == key                      # the user's key is not replaced
        assert rep["mood"]["chose"]["genre"] in ("Jazz", "Pop")            # Q3 Jazz, Q2 Pop (of Pop, Jazz)
        lo, hi = gm.TEMPO_RANGES[rep["mood"]["tempo_class"]]
        meta = json.loads((tmp_path / "out" / "dark_metadata.json").read_text())
        assert rep["tempo"] == meta["tempo"]
        assert lo <= rep["tempo"] <= hi or "octave" not in meta["tempo_source"]
    assert D.KEY_NAMES[17] == "E minor"
