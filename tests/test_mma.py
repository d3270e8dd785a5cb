"""The mma source: charts written by hand rendered by the real MMA (Debian package mma, fetched into
.cache/debian/ by training.debian), the melody added unchanged, the chart text of a melody and a
groove, the genre labels, and a small batch with a bad melody in it."""
import collections

import pytest
from miditoolkit import Instrument, MidiFile, Note

from vidscore import cli
from vidscore import constants as D
from vidscore.music import chords
from vidscore.music.representation import extract_notes, instrument_class, load_midi
from vidscore.training import corpus, mma, mma_source
from vidscore.training import mma_chart as C

KNOWN_CHART = "RndSeed 1\nTempo 120\nUse stdlib/8beat\nGroove 8Beat\nC\nF\nG\nC\nC\n"
ROOTS = [0, 5, 7, 0, 0]          # C F G C C


@pytest.fixture(scope="module")
def home():
    try:
        return mma.fetch()
    except cli.UserError as e:
        pytest.skip(f"MMA cannot be fetched from Debian's archive here: {e}")


@pytest.fixture(scope="module")
def known(home):
    return mma.render(home, KNOWN_CHART)


def test_a_known_chart_gives_drums_piano_guitar_bass_five_bars_and_the_roots_in_the_bass(known):
    bar = 4 * known.ticks_per_beat
    classes = collections.Counter(instrument_class(None, i.program, i.is_drum) for i in known.instruments)
    # 8Beat: a drum kit (channel 10), Honky-tonk piano chords, clean guitar chords, fingered bass
    assert set(classes) == {D.DRUMS, D.PIANO, D.GUITAR, D.BASS}
    assert any(i.is_drum and len(i.notes) > 20 for i in known.instruments)
    assert [(t.numerator, t.denominator) for t in known.time_signature_changes] == [(4, 4)]
    assert [round(t.tempo) for t in known.tempo_changes] == [120]
    # five bars at 120 bpm: 10 s; the last onsets are in bar 5, the last chord rings a little past it
    notes = [n for i in known.instruments for n in i.notes]
    assert max(n.start for n in notes) // bar == 4
    seconds = known.get_tick_to_time_mapping()[max(n.end for n in notes)]
    assert 9.5 < seconds <= 10.5
    bass = [i for i in known.instruments if instrument_class(None, i.program, i.is_drum) == D.BASS]
    for b, root in enumerate(ROOTS):
        on_beats = [n.pitch % 12 for i in bass for n in i.notes if n.start == b * bar]
        assert on_beats and set(on_beats) == {root}, (b, on_beats)


def melody_midi(tpb=480):
    """A 4-bar C major tune: C E G(half) | F A C(half) | G B D(half) | C(whole), with a triplet."""
    q = tpb
    notes = [(0, 60, q), (q, 64, q), (2 * q, 67, 2 * q),
             (4 * q, 65, q), (5 * q, 69, q // 3 * 2), (5 * q + q // 3 * 2, 71, q // 3), (6 * q, 72, 2 * q),
             (8 * q, 67, q), (9 * q, 71, q), (10 * q, 74, 2 * q), (12 * q, 72, 4 * q)]
    midi = MidiFile(ticks_per_beat=tpb)
    track = Instrument(program=0, is_drum=False, name="Piano")
    track.notes = [Note(velocity=70 + k, pitch=p, start=s, end=s + d) for k, (s, p, d) in enumerate(notes)]
    midi.instruments.append(track)
    return midi


def test_arrange_maps_the_tracks_to_classes_and_adds_the_melody_unchanged_after_the_intro(known):
    melody = melody_midi()
    song = mma.arrange(known, melody.instruments[0], 480, n_intro=1, lead=65)   # alto sax: reed -> Strings
    assert song.ticks_per_beat == 960
    names = [(i.name, i.is_drum) for i in song.instruments]
    assert names == [("Drums", True), ("Piano", False), ("Guitar", False), ("Bass", False), ("Strings", False)]
    lead = song.instruments[-1]
    assert lead.program == 65
    shift = 4 * 960                                   # one bar of intro
    assert [(n.pitch, n.velocity, n.start, n.end) for n in lead.notes] == \
        [(n.pitch, n.velocity, 2 * n.start + shift, 2 * n.end + shift) for n in melody.instruments[0].notes]
    # every MMA note is kept, in its class, at the same time in beats
    for cls in (D.DRUMS, D.PIANO, D.GUITAR, D.BASS):
        src = sorted((n.pitch, 5 * n.start, 5 * n.end) for i in known.instruments for n in i.notes
                     if instrument_class(None, i.program, i.is_drum) == cls)
        got = sorted((n.pitch, n.start, n.end) for n in song.instruments[cls - 1].notes)
        assert got == src


def test_the_melody_is_harmonised_bar_by_bar():
    notes, _ = extract_notes(melody_midi(), min_track_notes=1)
    assert [chords.chord_name(c) for c in C.harmonise(notes, 4)] == ["C_M", "F_M", "G_M", "C_M"]
    assert [C.mma_chord(chords.parse_chord(n)) for n in ("A#_m", "B_o", "D_/o7", "G_7", "F_M7")] == \
        ["A#m", "Bdim", "Dm7b5", "G7", "FM7"]


ROCK = C.SongPlan("Rock", "stdlib/8beat", "8Beat", "8BeatSus", ("8BeatIntro", 4), "8BeatFill", ("8BeatEnd", 2),
                  120, 29, 7)


def test_the_chart_of_a_melody_in_a_groove_is_exactly_the_hand_written_text():
    notes, _ = extract_notes(melody_midi(), min_track_notes=1)
    text = C.chart_text("mma/Rock/test/tune/8Beat", ROCK, C.harmonise(notes, 4))
    assert text == ("// mma/Rock/test/tune/8Beat\nRndSeed 7\nTempo 120\nUse stdlib/8beat\n"
                    "Groove 8BeatIntro\nC\nF\nG\nC\n"
                    "Groove 8Beat\nC\nF\n"
                    "Groove 8BeatEnd\nG\nC\n")
    # ten bars: phrases of 4, the second in the other main groove, fills at bars 4 and 8, a 2-bar ending
    ten = [chords.parse_chord(f"{r}_M") for r in "CFGCCFGCFC"]
    assert C.chart_text("x", ROCK, ten) == (
        "// x\nRndSeed 7\nTempo 120\nUse stdlib/8beat\nGroove 8BeatIntro\nG\nC\nF\nC\n"
        "Groove 8Beat\nC\nF\nG\nGroove 8BeatFill\nC\n"
        "Groove 8BeatSus\nC\nF\nG\nGroove 8BeatFill\nC\n"
        "Groove 8BeatEnd\nF\nC\n")


def test_the_hand_written_chart_renders_to_eight_bars_with_the_melody_in_the_last_four(home):
    notes, _ = extract_notes(melody_midi(), min_track_notes=1)
    text = C.chart_text("mma/Rock/test/tune/8Beat", ROCK, C.harmonise(notes, 4))
    song = mma.arrange(mma.render(home, text), melody_midi().instruments[0], 480, C.intro_bars(ROCK), ROCK.lead)
    bar = 4 * song.ticks_per_beat
    by_name = {i.name: i for i in song.instruments if i.program != ROCK.lead}
    assert {"Drums", "Bass"} <= set(by_name)
    assert max(n.start for i in song.instruments for n in i.notes) // bar == 7
    lead = song.instruments[-1]
    assert lead.name == "Guitar" and lead.program == 29 and min(n.start for n in lead.notes) == 4 * bar


def test_genre_labels_come_from_the_family_table():
    assert C.family_genre_id("Ballad") == D.GENRE_ID["NewAge"]
    assert C.family_genre_id("Rock") == D.GENRE_ID["Rock"]
    assert len(C.FAMILIES) >= 8
    assert all(f.genre in D.GENRES and f.tempo[0] < f.tempo[1] for f in C.FAMILIES.values())
    assert C.song_id("essenFolksong/erk20_234", ROCK) == "mma/Rock/essenFolksong/erk20_234/8Beat"


def test_styles_keep_4_4_grooves_and_only_drummed_mains():
    grooves = [{"groove": "X", "size": 4, "time": 4, "drums": True}, {"groove": "XSus", "size": 4, "time": 4,
               "drums": False}, {"groove": "XWaltz", "size": 4, "time": 3, "drums": True},
               {"groove": "XIntro", "size": 2, "time": 4, "drums": False}, {"groove": "XFill", "size": 1, "time": 4,
               "drums": True}, {"groove": "XEnd", "size": 2, "time": 4, "drums": True}]
    assert C.style_from_grooves("lib/x", grooves) == C.Style("lib/x", ("X",), (("XIntro", 2),), (("XFill", 1),),
                                                              (("XEnd", 2),))
    assert C.style_from_grooves("lib/x", grooves[1:3]) is None


def test_mma_describes_its_8beat_library_file(home):
    got = {g["groove"]: g for g in mma.library_grooves(home, "stdlib/8beat")}
    assert got["8BeatIntro"]["size"] == 4 and got["8BeatEnd"]["size"] == 2 and got["8BeatFill"]["size"] == 1
    assert all(g["time"] == 4 for g in got.values()) and got["8Beat"]["drums"]
    assert len(got) == 15


def test_plans_are_seeded_by_the_melody_and_spread_over_the_families():
    styles = {f: [C.Style(f"lib/{f}", ("A", "B"), (("I", 4),), (), (("E", 2),))] for f in C.FAMILIES}
    plans = C.plan_songs("essenFolksong/erk20_234", styles, 3)
    assert plans == C.plan_songs("essenFolksong/erk20_234", styles, 3)
    assert len({p.family for p in plans}) == 3
    assert all(C.FAMILIES[p.family].tempo[0] <= p.tempo <= C.FAMILIES[p.family].tempo[1] for p in plans)
    counts = collections.Counter(p.family for k in range(1100) for p in C.plan_songs(f"tune_{k}", styles, 3))
    assert set(counts) == set(C.FAMILIES) and min(counts.values()) > 240 and max(counts.values()) < 360


def test_a_batch_arranges_good_melodies_skips_a_bad_one_and_reuses_its_songs(home, tmp_path, monkeypatch):
    monkeypatch.setattr(mma, "cache_root", lambda: tmp_path)
    good = corpus.Music21Unit("essenFolksong/erk20_234", "essenFolksong", "essenFolksong/erk20.abc", 234, "4/4")
    bad = corpus.Music21Unit("essenFolksong/nothere_1", "essenFolksong", "essenFolksong/nothere.abc", 1, "4/4")
    families = ["Folk", "Reggae"]          # five library files to describe
    files, genres, report, stats = mma_source.build_songs(per_melody=2, families=families, workers=1, home=home,
                                                          units=[good, bad])
    assert [s["id"] for s in report.skipped] == ["essenFolksong/nothere_1"]
    assert report.skipped[0]["reason"].startswith("music21 cannot parse")
    assert len(files) == 2 and report.n_ok == 2 and report.cached == 0
    for sid, path in files:
        _, family, collection, tune, groove = sid.split("/")
        assert family in families and f"{collection}/{tune}" == good.uid and genres[sid] == C.family_genre_id(family)
        song = load_midi(path)
        assert any(i.is_drum and i.notes for i in song.instruments)
    assert sum(f["songs"] for f in stats["families"].values()) == 2
    again = mma_source.build_songs(per_melody=2, families=families, workers=1, home=home, units=[good, bad])
    assert again[0] == files and again[2].cached == 2
