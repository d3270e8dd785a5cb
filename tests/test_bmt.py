"""The bmt representation preset (SPEC section 8): tempo, chord, velocity and emotion.

Values are worked out by hand from a MIDI file written here; the round trip through MIDI is
checked by tokenising the written file again.  The emotion control is shown acting with a small
bmt model trained here on songs whose loudness and register only the emotion label tells
(across training seeds 0-3: velocity ~109 without the control (Q1, the default) vs ~29 with Q3,
piano pitch ~75 vs ~51; the assertions leave wide margins).
"""
import json
import subprocess
import sys
from pathlib import Path

import miditoolkit
import numpy as np
import pytest
from miditoolkit.midi.containers import Instrument, Note, TempoChange

from vidscore.music import chords as CH
from vidscore import constants as D
from vidscore.training import loop as training
from conftest import save_tiny_checkpoint
from vidscore.model.cmt import load_checkpoint
from vidscore.music.midi_write import tokens_to_midi
from vidscore.music.representation import midi_to_tokens, midi_to_windows, notes_to_tokens

ROOT = Path(__file__).resolve().parents[1]
TPB = 480
# one two-bar phrase: C major (loud), G7 (soft) on beat 3, then A minor (medium) for a bar
PHRASE = [(0, 480, (60, 64, 67), 100), (960, 960, (55, 59, 62, 65), 40), (1920, 1920, (57, 60, 64), 64)]


def phrase_midi(path, repeats=3, tempi=((0, 90.0), (1920, 150.0))):
    """A Piano track of the phrase ``repeats`` times (10 notes each), with tempo changes."""
    midi = miditoolkit.MidiFile(ticks_per_beat=TPB)
    midi.tempo_changes = [TempoChange(bpm, t) for t, bpm in tempi]
    piano = Instrument(program=0, name="Piano")
    for r in range(repeats):
        for start, dur, pitches, vel in PHRASE:
            for p in pitches:
                piano.notes.append(Note(vel, p, r * 3840 + start, r * 3840 + start + dur))
    midi.instruments.append(piano)
    midi.dump(str(path))
    return path


def test_bmt_tokens_of_a_handmade_song(tmp_path):
    tokens, info = midi_to_tokens(phrase_midi(tmp_path / "a.mid"), preset="bmt")
    assert tokens.shape[1] == 12 and info["n_beat"] == 96          # 6 bars of 16 ticks
    bars = tokens[tokens[:, D.COL_BARBEAT] == D.BAR]
    assert len(bars) == 6
    # tempo on Bar tokens: 90 bpm in bar 0, 150 from bar 1 (the 55 bins are 3.56 bpm apart)
    assert D.tempo_bin(90) == 17 and D.tempo_bin(150) == 34
    assert bars[:, D.COL_TEMPO].tolist() == [17, 34, 34, 34, 34, 34]
    # chords: C major on bar 0's first half, G7 on its second half, A minor on bar 1
    c, g7, am = CH.chord_id(0, "maj"), CH.chord_id(7, "dom7"), CH.chord_id(9, "min")
    assert bars[:, D.COL_CHORD].tolist() == [c, am] * 3
    beats = tokens[(tokens[:, D.COL_TYPE] == D.TYPE_M) & (tokens[:, D.COL_BARBEAT] != D.BAR)]
    assert beats[:, D.COL_CHORD].tolist() == [c, g7, am] * 3
    # velocity on Note tokens only: 1 + v * 40 // 128
    notes = tokens[tokens[:, D.COL_TYPE] == D.TYPE_NOTE]
    assert notes[:, D.COL_VELOCITY].tolist() == ([32] * 3 + [13] * 4 + [21] * 3) * 3
    assert not tokens[tokens[:, D.COL_TYPE] != D.TYPE_NOTE][:, D.COL_VELOCITY].any()
    assert not beats[:, D.COL_TEMPO].any() and not notes[:, [D.COL_TEMPO, D.COL_CHORD]].any()
    # p_time = min(99, 100 * tick // n_beat) + 1: bar 1 starts at tick 16 -> 16 + 1
    assert bars[:, D.COL_PBEAT].tolist() == [1, 17, 34, 51, 67, 84]
    # the first nine columns are the cmt tokens', but for col 7 (p_beat there)
    cmt, _ = midi_to_tokens(tmp_path / "a.mid")
    keep = [c for c in range(9) if c != D.COL_PBEAT]
    assert np.array_equal(cmt[:, keep], tokens[:, keep])


def test_bmt_tokens_survive_a_trip_through_midi(tmp_path):
    tokens, _ = midi_to_tokens(phrase_midi(tmp_path / "a.mid"), preset="bmt")
    midi = tokens_to_midi(tokens, tmp_path / "b.mid", tempo_bpm=None)
    # the tokens' tempo changes (bin centres) and chords (markers) are written
    assert [(t.time, round(t.tempo, 2)) for t in midi.tempo_changes] == [(0, 88.89), (16, 149.33)]
    assert [m.text for m in midi.markers] == ["C_M", "G_7", "A_m"] * 3
    assert [m.time for m in midi.markers] == [0, 8, 16, 32, 40, 48, 64, 72, 80]
    assert sorted({n.velocity for n in midi.instruments[0].notes}) == [D.velocity_value(v) for v in (13, 21, 32)]
    again, _ = midi_to_tokens(tmp_path / "b.mid", preset="bmt")
    assert np.array_equal(again, tokens)
    # a given tempo wins over the tokens' (a video's music plays at the video's tempo)
    fixed = tokens_to_midi(tokens, tmp_path / "c.mid", tempo_bpm=97.5)
    assert [(t.time, t.tempo) for t in fixed.tempo_changes] == [(0, 97.5)]


def test_windows_slice_the_song_chords_and_tempi(tmp_path):
    whole, _ = midi_to_tokens(phrase_midi(tmp_path / "a.mid"), preset="bmt")
    windows = midi_to_windows(tmp_path / "a.mid", max_len=30, preset="bmt")
    assert len(windows) > 1
    rows = np.concatenate([w[:-1] for w, _ in windows])
    keep = [D.COL_BARBEAT, D.COL_TYPE, D.COL_PITCH, D.COL_TEMPO, D.COL_CHORD, D.COL_VELOCITY]
    assert np.array_equal(rows[:, keep], whole[:-1, keep])


def test_tempo_velocity_and_emotion_vocabularies():
    assert [D.tempo_bin(t) for t in (10, 32, 224, 300)] == [1, 1, 55, 55]
    assert all(D.tempo_bin(D.tempo_value(k)) == k for k in range(1, 56))
    assert all(D.velocity_bin(D.velocity_value(k)) == k for k in range(1, 41))
    assert [D.velocity_bin(v) for v in (0, 3, 4, 127)] == [1, 1, 2, 40]
    assert [D.emotion_id(e) for e in ("Q1", "q4", "2")] == [1, 4, 2]
    with pytest.raises(KeyError):
        D.emotion_id("happy")
    P = D.preset("bmt")
    assert P.n_class[9:] == (56, CH.N_CHORD, 41) and P.init_fields[-1] == "emotion" and P.n_class[7] == 101
    assert P.heads == ("type", "barbeat", "density", "pitch", "duration", "instr", "strength",
                       "tempo", "chord", "velocity")


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def bmt_data(tmp_path_factory):
    """A bmt training npz of EMOPIA-style names (Q1_, Q3_) and a label file for an unprefixed song."""
    d = tmp_path_factory.mktemp("bmt")
    midi_dir = d / "midis"
    midi_dir.mkdir()
    for name, reps in (("Q1_song", 3), ("Q3_song", 4), ("plain", 5), ("other", 6)):
        phrase_midi(midi_dir / f"{name}.mid", reps)
    (d / "labels.tsv").write_text("plain\tQ4\n")
    out = d / "bmt.npz"
    r = run_cli("src/midi2numpy_mix.py", "--midi_dir", str(midi_dir), "--out_name", str(out),
                "--representation", "bmt", "--emotion_file", str(d / "labels.tsv"), "--workers", "1",
                "--val_fraction", "0.25")
    assert r.returncode == 0, r.stderr
    return out


def test_corpus_builder_writes_bmt_rows_and_emotion_labels(bmt_data):
    from vidscore.music.representation import load_training_npz
    z = load_training_npz(bmt_data)
    assert z["x"].shape[2] == 12 and z["init"].shape[1:] == (7, 4)
    assert z["vocab"]["preset"] == "bmt"
    emotion = {m["id"]: m["emotion"] for m in z["metadata"]}
    assert emotion == {"Q1_song": "Q1", "Q3_song": "Q3", "plain": "Q4", "other": "none"}
    by_id = {m["id"]: z["init"][i, 0, 3] for i, m in enumerate(z["metadata"])}
    assert by_id == {"Q1_song": 1, "Q3_song": 3, "plain": 4, "other": 0}
    assert not z["init"][:, 1:, 3].any()          # emotion lives in row 0 only


def test_corpus_builder_refuses_bad_emotion_input(tmp_path):
    phrase_midi(tmp_path / "a.mid")
    (tmp_path / "bad.tsv").write_text("a\thappy\n")
    r = run_cli("src/midi2numpy_mix.py", "--midi_dir", str(tmp_path), "--out_name", str(tmp_path / "o.npz"),
                "--representation", "bmt", "--emotion_file", str(tmp_path / "bad.tsv"))
    assert r.returncode != 0 and "Traceback" not in r.stderr and "unknown emotion 'happy'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.npz").exists()
    r = run_cli("src/midi2numpy_mix.py", "--midi_dir", str(tmp_path), "--out_name", str(tmp_path / "o.npz"),
                "--emotion_file", str(tmp_path / "bad.tsv"))
    assert r.returncode != 0 and "--representation bmt" in r.stderr and "Traceback" not in r.stderr


TINY = dict(n_layer=1, d_model=32, n_head=2, d_ff=64, emb_sizes="8,4,8,16,8,4,8", time_emb_size=8,
            init_emb_size=8, dropout=0.0, attention="torch")


@pytest.fixture(scope="module")
def bmt_model(bmt_data):
    d = bmt_data.parent
    hp = dict(name="bmt", data_root=str(d), train_data=bmt_data.name, exp_dir=str(d / "exp"), log_dir=str(d / "logs"),
              lr=3e-3, batch_size=4, max_tokens=100000, max_len=0, epochs=2, grad_clip=3.0, seed=0,
              device="cpu", gid="", data_parallel=0, resume=0, **TINY)
    training.train(hp)
    return d / "exp" / "bmt" / "last.pt"


def test_training_records_the_preset_and_inference_reads_it(bmt_model, bmt_data):
    model = load_checkpoint(bmt_model)
    assert model.config.preset == "bmt" and model.config.n_class[9:] == [56, CH.N_CHORD, 41]
    assert model.config.emb_sizes == [8, 4, 8, 16, 8, 4, 8, 4, 8, 4]    # tempo/chord/velocity from pitch 16
    assert model.vocab["preset"] == "bmt" and model.vocab["fields"][9:] == ["tempo", "chord", "velocity"]
    assert set(model.vocab["emotions"]) <= {0, 1, 3, 4}
    csv_head = (bmt_data.parent / "logs" / "bmt.csv").read_text().splitlines()[0]
    assert "val_tempo" in csv_head and "val_chord" in csv_head and "val_velocity" in csv_head


def test_bmt_model_composes_for_a_video_at_its_tempo(bmt_model, tmp_path):
    from vidscore.generation import job as pipeline
    rows = np.array([[17, 5, 0, 0, 64, 1], [5, 0, 3, 4, 64, 7], [17, 4, 0, 16, 64, 26], [9, 0, 4, 24, 64, 38],
                     [17, 3, 0, 32, 64, 51], [17, 6, 0, 48, 64, 76]])
    np.savez(tmp_path / "clip.npz", input=rows, tempo=np.float64(104.0), duration=np.float64(9.2))
    model = load_checkpoint(bmt_model)
    opts = pipeline.Options(out_dir=str(tmp_path / "out"), num_songs=2, render=False, emotion=3)
    assert pipeline.init_block(model, opts)[0].tolist() == [model.vocab["default_genre"], 0, 0, 3]
    pipeline.run([tmp_path / "clip.npz"], model, opts, log=lambda *a: None)
    midi = miditoolkit.MidiFile(str(tmp_path / "out" / "clip_0.mid"))
    assert [(t.time, round(t.tempo, 3)) for t in midi.tempo_changes] == [(0, 104.0)]   # the video's (MIDI stores us per beat)
    assert midi.markers and all(CH.parse_chord(m.text) >= CH.NO_CHORD for m in midi.markers)
    assert all(1 <= n.velocity <= 127 for i in midi.instruments for n in i.notes)
    report = json.loads((tmp_path / "out" / "clip_0.json").read_text())
    assert report["n_tokens"] > 5


def test_bmt_generation_writes_the_tempo_it_is_given(bmt_model):
    from vidscore.generation import generate as generation
    from vidscore.generation import job as pipeline
    model = load_checkpoint(bmt_model)
    rows = np.array([[17, 5, 0, 0, 32, 1], [17, 4, 0, 16, 32, 51]])
    init = pipeline.init_block(model, pipeline.Options(emotion=1))
    songs = generation.generate(model, rows, init, 2, controls=generation.Controls(tempo=60.0), seed=1)
    for s in songs:
        t = np.asarray(s.tokens)
        assert t.shape[1] == 12
        bars = t[t[:, D.COL_BARBEAT] == D.BAR]
        assert len(bars) == 2 and set(bars[:, D.COL_TEMPO]) == {D.tempo_bin(60)}
        assert (bars[:, D.COL_CHORD] >= 1).all()
        notes = t[t[:, D.COL_TYPE] == D.TYPE_NOTE]
        assert (notes[:, D.COL_VELOCITY] >= 1).all() and not notes[:, [D.COL_TEMPO, D.COL_CHORD]].any()
        assert (t[:-1, D.COL_PBEAT] == np.minimum(100 * t[:-1, D.COL_IBEAT] // 32, 99) + 1).all()


def test_emotion_control_is_refused_where_it_cannot_act(tmp_path, bmt_model):
    from vidscore import cli
    from vidscore import controls
    cmt = load_checkpoint(save_tiny_checkpoint(tmp_path / "cmt.pt"))
    with pytest.raises(cli.UserError, match="without an emotion field"):
        controls.parse_emotion("Q1", cmt)
    bmt = load_checkpoint(bmt_model)
    with pytest.raises(cli.UserError, match="unknown emotion"):
        controls.parse_emotion("Q7", bmt)
    with pytest.raises(cli.UserError, match="not trained with Q2"):
        controls.parse_emotion("Q2", bmt)
    assert controls.parse_emotion("q3", bmt) == 3
    r = run_cli("src/main_cp.py", "--mode", "inference", "--ckpt", str(tmp_path / "cmt.pt"), "--emotion", "Q1",
                "--videos", str(ROOT / "videos" / "demo.mp4"), "--out_dir", str(tmp_path / "o"))
    assert r.returncode != 0 and "without an emotion field" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------------------------
# the emotion control acts: a small bmt model trained on songs whose loudness and register only
# the emotion label tells (the melodies are random), as tests/key_fixtures.py does for keys
EMOTION_STYLE = {1: (100, 121, 67, 84), 3: (20, 41, 43, 60)}   # Q1 loud and high, Q3 soft and low


def emotion_song(emotion: int, rng, bars: int = 4) -> np.ndarray:
    """Notes [onset, pitch, duration, instrument, velocity]: random C-major piano simu-notes in
    the emotion's register and loudness, over a bass C held through every bar."""
    from key_fixtures import random_piano_bass
    v_lo, v_hi, p_lo, p_hi = EMOTION_STYLE[emotion]
    pitches = [p for p in range(p_lo, p_hi) if p % 12 in (0, 2, 4, 5, 7, 9, 11)]
    return random_piano_bass(pitches, 36, rng, bars, velocity=(v_lo, v_hi))


@pytest.fixture(scope="module")
def emotion_model(tmp_path_factory):
    from vidscore.training.dataset import assemble_arrays, vocab_seen
    from key_fixtures import KEY_MODEL
    from vidscore.music.representation import init_tokens
    d = tmp_path_factory.mktemp("emotion")
    rng = np.random.default_rng(0)
    seqs, inits = [], []
    for i in range(96):
        emotion = 1 if i % 2 == 0 else 3
        seqs.append(notes_to_tokens(emotion_song(emotion, rng), preset="bmt", tempos=[100.0] * 4))
        inits.append(init_tokens((D.PIANO, D.BASS), 1, 0, emotion))
    arrays = assemble_arrays(seqs, inits)
    arrays["split"] = np.zeros(len(seqs), np.uint8)
    arrays["split"][-1] = 1                      # a Q3 song: Q1 is the commonest, the default
    np.savez(d / "emo.npz", **arrays, metadata=np.array("[]"),
             vocab=np.array(json.dumps(vocab_seen(seqs, arrays["init"], "bmt"))))
    hp = dict(name="emo", data_root=str(d), train_data="emo.npz", exp_dir=str(d / "exp"), log_dir=str(d / "logs"),
              lr=5e-3, batch_size=16, max_tokens=100000, max_len=0, epochs=30, grad_clip=3.0, seed=0,
              device="cpu", gid="", data_parallel=0, resume=0, **KEY_MODEL)
    training.train(hp)
    return load_checkpoint(d / "exp" / "emo" / "last.pt")


def test_emotion_control_moves_loudness_and_register(emotion_model):
    from vidscore.generation import generate as generation
    from vidscore.generation import job as pipeline
    from key_fixtures import KEY_ROWS
    from vidscore.music.representation import tokens_to_notes
    model = emotion_model
    assert model.vocab["default_emotion"] == 1 and model.vocab["emotions"] == [1, 3]

    def songs(emotion):
        opts = pipeline.Options(emotion=emotion, instruments=(D.PIANO, D.BASS), seed=0)
        init = pipeline.init_block(model, opts)
        ctl = generation.Controls(instruments=opts.instruments, tempo=100.0)
        notes = np.concatenate([tokens_to_notes(np.asarray(s.tokens), velocity=True)
                                for s in generation.generate(model, KEY_ROWS, init, 8, controls=ctl, seed=0)])
        piano = notes[notes[:, 3] == D.PIANO]
        return notes[:, 4].mean(), piano[:, 1].mean()

    default_vel, default_pitch = songs(None)        # without the control: the default, Q1
    q3_vel, q3_pitch = songs(3)
    # the data: Q1 velocity 100-120 and piano 67-83, Q3 velocity 20-40 and piano 43-59
    assert default_vel > 85 and default_pitch > 65
    assert q3_vel < 55 and q3_pitch < 62


def test_main_cp_inference_with_a_bmt_checkpoint_and_emotion(bmt_model, tmp_path):
    rows = np.array([[17, 5, 0, 0, 32, 1], [5, 0, 3, 4, 32, 13], [17, 4, 0, 16, 32, 51]])
    np.savez(tmp_path / "clip.npz", input=rows, tempo=np.float64(90.0), duration=np.float64(5.3))
    r = run_cli("src/main_cp.py", "--mode", "inference", "--ckpt", str(bmt_model), "--emotion", "Q3",
                "--videos", str(tmp_path / "clip.npz"), "--out_dir", str(tmp_path / "out"), "--render", "0",
                "--num_songs", "2")
    assert r.returncode == 0, r.stderr
    midi = miditoolkit.MidiFile(str(tmp_path / "out" / "clip_1.mid"))
    assert round(midi.tempo_changes[0].tempo, 3) == 90.0 and midi.markers
    r = run_cli("src/main_cp.py", "--mode", "inference", "--ckpt", str(bmt_model), "--emotion", "Q2",
                "--videos", str(tmp_path / "clip.npz"), "--out_dir", str(tmp_path / "out2"), "--render", "0")
    assert r.returncode != 0 and "not trained with Q2" in r.stderr and "Traceback" not in r.stderr
