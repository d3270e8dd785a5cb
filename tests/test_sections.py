"""Sections at scene cuts (issue 28): the plan, the rows it adds, what generation does in each
section, the cut-alignment metric (worked by hand), the --scene_cuts flag and the song's JSON."""
import json

import numpy as np
import pytest

from vidscore import constants as D
from vidscore import controls
from vidscore.cli import UserError
from vidscore.evaluation import metrics
from vidscore.generation import generate as generation
from vidscore.generation import job, sections
from vidscore.video import metadata


def test_plan_takes_the_nearest_bar_line_and_drops_cuts_too_close():
    # 120 bpm: a bar lasts 2 s.  1.0 s -> bar 1 (1 - 0 < 2 bars: dropped); 5.1 s -> 2.55 -> bar 3;
    # 6.0 s -> bar 3 (the same start: dropped); 9.9 s -> 4.95 -> bar 5; 30 s -> bar 15, past the end
    got = sections.plan([1.0, 5.1, 6.0, 9.9, 30.0], 120.0, 8)
    assert [(s.start_bar, s.start_s, s.cut_s) for s in got] == [(0, 0.0, None), (3, 6.0, 5.1), (5, 10.0, 9.9)]
    assert metadata.bar_line(5.0, 120.0) == 3 and metadata.bar_line(4.99, 120.0) == 2   # half up
    assert sections.section_of(got, 2) == 0 and sections.section_of(got, 4) == 1 and sections.section_of(got, 7) == 2


def rows_of(n_bars, beats=(), density=5):
    """Inference rows: a Bar row per bar (density value ``density``), beats (bar, position, strength)."""
    n_beat = 16 * n_bars
    rows = []
    for b in range(n_bars):
        rows.append([D.BAR, density, 0, 16 * b, n_beat, 1])
        rows += [[p, 0, s, 16 * b + p - 1, n_beat, 1] for bb, p, s in beats if bb == b]
    return np.array(rows, np.int64)


def test_fills_add_the_roll_before_the_cut_and_the_accent_on_it():
    rows = rows_of(4, beats=[(1, 14, 3)])          # a visual beat at bar 1, position 14
    plan = [sections.Section(0, 0.0, None), sections.Section(2, 4.0, 3.9)]
    out, roll = sections.add_fills(rows, plan)
    bar1 = out[(out[:, 3] >= 16) & (out[:, 3] < 32)]
    # the bar before the cut: its Bar row (density 5 + the 3 roll positions added: 13, 15, 16;
    # 14 keeps its visual beat of strength 3), then the beats in position order
    assert bar1[:, :4].tolist() == [[17, 8, 0, 16], [13, 0, 2, 28], [14, 0, 3, 29], [15, 0, 2, 30], [16, 0, 2, 31]]
    assert roll == {28, 30, 31}
    bar2 = out[(out[:, 3] >= 32) & (out[:, 3] < 48)]
    assert bar2[:, :4].tolist() == [[17, 5, 0, 32], [1, 0, 2, 32]]           # the accent on the downbeat
    metadata.check_rows(out)


def test_cut_alignment_by_hand():
    # bars 0 and 1: piano (2) at 0, 4, 8, 12, pitch 60.  bar 2: drums (1) on every 8th + a strings (5)
    # note of pitch 72 at 0.  bar 3: the drums alone.
    notes = [(b * 16 + p, 60, 2, 2) for b in (0, 1) for p in (0, 4, 8, 12)]
    notes += [(32 + p, 36, 1, 1) for p in range(0, 16, 2)] + [(32, 72, 4, 5)]
    notes += [(48 + p, 36, 1, 1) for p in range(0, 16, 2)]
    # bar line 1: nothing changes: 0.  bar line 2: instruments {2} -> {1, 5}: Jaccard 1; notes 4 -> 9:
    # 5/9; register 60 -> 72 (drums are not pitched): 12/12 = 1; onsets {0,4,8,12} -> every 8th: 4/16.
    # (1 + 5/9 + 1 + 1/4) / 4 = 101/144.  bar line 3: {1, 5} -> {1}: 1/2; 9 -> 8: 1/9; no pitched
    # note in bar 3: 0; same onsets: 0.  (1/2 + 1/9) / 4 = 11/72.
    ch = metrics.bar_changes(notes)
    assert np.isnan(ch[0]) and ch[1:].tolist() == pytest.approx([0.0, 101 / 144, 11 / 72])
    got = metrics.cut_alignment(notes, [2])
    # at the cut 101/144; elsewhere (0 + 11/72) / 2 = 11/144; ratio 101/11
    assert got["cut_alignment"] == pytest.approx(101 / 11) and got["n_cut_bars"] == 1
    assert got["change_elsewhere"] == pytest.approx(11 / 144)
    assert np.isnan(metrics.cut_alignment(notes, [0, 9])["cut_alignment"])       # no cut inside the song


def test_scene_cuts_flag():
    parse = controls.parse_scene_cuts
    assert parse("") is None and parse("auto") is None            # the detected cuts
    assert parse("0") == () and parse("off") == ()                # no sections
    assert parse("8.0, 16") == (8.0, 16.0)
    for bad in ("x", "8,4", "-1", "nan"):
        with pytest.raises(UserError):
            parse(bad)
    with pytest.raises(UserError, match="not a time in the video"):
        sections.for_song(None, (8.0, 40.0), 120.0, 20.0, rows_of(10))
    assert sections.for_song({"scene_cuts": [5.0]}, (), 120.0, 20.0, rows_of(10)).source == "off"
    got = sections.for_song({"scene_cuts": [5.0]}, None, 120.0, 20.0, rows_of(10))
    assert got.source == "detected" and [s.start_bar for s in got.sections] == [0, 3]
    assert sections.for_song(None, None, 120.0, 20.0, rows_of(10)).source == "none known"


def test_generation_turns_at_the_section_start(tiny):
    """A random model: in each section its notes use only the section's instruments and its
    register window; the bar before the cut has the drum roll; before that bar the songs are
    those of one section."""
    rows = rows_of(8, beats=[(b, 5, 3) for b in range(8)], density=4)
    plan = sections.plan([8.1], 120.0, 8)                  # bar 4
    base = generation.Controls(forced_tracks=(D.DRUMS,), max_forced_tracks=1)
    plain = generation.generate(tiny, rows, np.zeros((7, 3), np.int64), 2, controls=base, seed=3)
    cut = generation.Controls(forced_tracks=(D.DRUMS,), max_forced_tracks=1, sections=plan)
    songs = generation.generate(tiny, rows, np.zeros((7, 3), np.int64), 2, controls=cut, seed=3)
    for s, p in zip(songs, plain):
        notes = metrics.notes_from_tokens(np.asarray(s.tokens))
        log = s.sec.log
        assert len(log) == 2 and set(log[1]["instruments"]) != set(log[0]["instruments"])
        assert D.DRUMS in log[1]["instruments"]
        after = notes[notes["onset"] >= 4 * 16]
        assert set(after["instrument"].tolist()) <= set(log[1]["instruments"])
        lo, hi = log[1]["register"] or (0, 127)
        reg = after[np.isin(after["instrument"], sections.REGISTER_TRACKS)]
        assert ((reg["pitch"] >= lo) & (reg["pitch"] <= hi)).all()
        drums = set(notes["onset"][notes["instrument"] == D.DRUMS].tolist())
        assert {3 * 16 + q - 1 for q in sections.FILL_POSITIONS} <= drums     # the roll in bar 3
        assert 4 * 16 in drums                                                 # the accent on the cut
        # up to the bar of the roll (its Bar token, i_beat 48, on) the tokens are the unsectioned song's
        k = next(i for i, t in enumerate(s.tokens) if t[8] >= 3 * 16)
        assert k > 10 and s.tokens[:k] == p.tokens[:k]


def test_song_json_lists_its_sections(tiny_ckpt, tmp_path):
    import cv2

    import video_fixtures as vf
    a, b = vf.texture(640, 360, 1, 4.0), np.ascontiguousarray(vf.texture(640, 360, 2, 4.0)[:, :, ::-1])
    vw = cv2.VideoWriter(str(tmp_path / "two.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 360))
    for k in range(200):                       # 8 s; the cut at frame 100 (4.0 s)
        src = a if k < 100 else b
        vw.write(np.ascontiguousarray(np.roll(src, 2 * k, axis=1)))
    vw.release()
    model = job.load_model(tiny_ckpt, "cpu", "float32", threads=1)
    out = tmp_path / "out"
    for flag, source in (("", "detected"), ("0", "off"), ("2.0,6.0", "user")):
        opts = job.options_from_hp({"out_dir": str(out), "render": 0, "scene_cuts": flag, "is_tempo": 1,
                                    "my_tempo": 120.0}, model)
        job.run([tmp_path / "two.mp4"], model, opts, log=lambda *a: None)
        report = json.loads((out / "two_0.json").read_text())
        assert report["scene_cuts_source"] == source
        starts = [(s["start_bar"], s["start_s"], s["cut_s"]) for s in report["sections"]]
        if source == "detected":         # 120 bpm: bars of 2 s; the cut at 4.0 s starts bar 2
            assert report["scene_cuts"] == pytest.approx([4.0], abs=0.25)
            assert starts[0] == (0, 0.0, None) and starts[1][:2] == (2, 4.0)
            assert "cut_alignment" in report
        elif source == "off":
            assert starts == [(0, 0.0, None)] and report["scene_cuts"] == []
        else:                            # 2.0 s -> bar 1 (too close to the start: no section); 6.0 s -> bar 3
            assert starts == [(0, 0.0, None), (3, 6.0, 6.0)]


def test_evaluate_reports_the_cut_alignment_when_the_metadata_has_cuts(tmp_path):
    from vidscore.evaluation import report
    meta = {"duration": 8.0, "tempo": 120.0, "vbeats": [], "flow_magnitude_per_bar": [0.1] * 4, "scene_cuts": [4.1]}
    (tmp_path / "clip_metadata.json").write_text(json.dumps(meta))
    video = report.load_video(metadata=tmp_path / "clip_metadata.json", name="clip")
    notes = [(b * 16 + p, 60, 2, 2) for b in (0, 1) for p in (0, 4, 8, 12)]
    notes += [(32 + p, 36, 1, 1) for p in range(0, 16, 2)] + [(32, 72, 4, 5)]
    notes += [(48 + p, 36, 1, 1) for p in range(0, 16, 2)]
    song = report.Song("clip_0", str(tmp_path / "clip_0.mid"), metrics.as_notes(notes), 120.0)
    row = report.song_metrics(song, video, report.Settings(si=None))
    # 4.1 s at 120 bpm is bar line round(2.05) = 2: the hand-worked ratio above, 101/11
    assert row["cut_alignment"] == pytest.approx(101 / 11)
    del meta["scene_cuts"]                                   # older metadata: no figure
    (tmp_path / "clip_metadata.json").write_text(json.dumps(meta))
    old = report.song_metrics(song, report.load_video(metadata=tmp_path / "clip_metadata.json"), report.Settings(si=None))
    assert "cut_alignment" not in old
