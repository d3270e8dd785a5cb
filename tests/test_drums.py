"""Drums: General MIDI songs with a channel-10 drum part become Drums in the corpus, a model
trained on drummed songs puts the video's visual beats on Drums and hits them, drums render
on channel 10 with a GM kit, and training weights the (small) drummed sources.

The song makers write real MIDI files (miditoolkit) and real npz files; the tiny model is
trained here, as in tests/test_controls_act.py.
"""
import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import miditoolkit
import mido
import numpy as np
import pytest

from vidscore import cli
from vidscore.training import corpus
from vidscore.training import dataset
from vidscore import constants as D
from vidscore.generation import job as pipeline
from vidscore.training import loop as training
from vidscore.model.cmt import load_checkpoint
from vidscore.music.representation import init_tokens, notes_to_tokens, tokens_to_notes

ROOT = Path(__file__).resolve().parents[1]
KICK, HAT = 36, 42           # General MIDI percussion: bass drum 1, closed hi-hat
BARS = 4


def gm_song(path: Path) -> Path:
    """A 4-bar General MIDI song at 120 bpm: a drum kit on channel 10 (kick on every quarter,
    closed hi-hat on every 8th), a piano and a fingered bass playing 8ths, a flute (program 73)
    playing 8ths in bars 1-3.  Tracks are named by tune, not by class, so the channel and the
    programs decide."""
    from miditoolkit.midi.containers import Instrument, Note, TempoChange, TimeSignature
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    midi.tempo_changes = [TempoChange(120.0, 0)]
    midi.time_signature_changes = [TimeSignature(4, 4, 0)]
    eighth = 240
    kit = Instrument(program=0, is_drum=True, name="Kit")          # written on channel index 9
    piano = Instrument(program=0, name="Melody")
    bass = Instrument(program=33, name="Low line")
    flute = Instrument(program=73, name="Whistle")
    for k in range(8 * BARS):                        # k-th 8th note
        t = k * eighth
        kit.notes.append(Note(100, HAT, t, t + 100))
        if k % 2 == 0:
            kit.notes.append(Note(100, KICK, t, t + 100))
        piano.notes.append(Note(80, 60 + [0, 2, 4, 5, 7, 9, 11, 12][k % 8], t, t + eighth))
        bass.notes.append(Note(80, 36 + [0, 7][k % 2], t, t + eighth))
        if k < 24:
            flute.notes.append(Note(80, 72 + [0, 4, 7][k % 3], t, t + eighth))
    midi.instruments += [kit, piano, bass, flute]
    midi.max_tick = 8 * BARS * eighth
    midi.dump(str(path))
    return path


def test_gm_drums_become_drums_in_the_corpus(tmp_path):
    folder = tmp_path / "openmsx"
    folder.mkdir()
    path = gm_song(folder / "tune.mid")
    # the fixture really is a channel-10 drum part: every kit note is on channel index 9
    chans = {m.channel for tr in mido.MidiFile(str(path)).tracks for m in tr if m.type == "note_on" and m.note in (KICK, HAT)
             and m.velocity == 100}
    assert chans == {9}

    files, genres = corpus.debian_midi_files("openmsx", folder=folder)
    assert [sid for sid, _ in files] == ["openmsx/tune"]
    assert genres == {"openmsx/tune": D.GENRE_ID["Pop"]}
    out = tmp_path / "drums.npz"
    stats = dataset.build_training_set(files, out, max_len=2048, genre_map=genres, workers=1, cache_dir=None,
                                       source={sid: "openmsx" for sid, _ in files})
    assert stats["sources"]["openmsx"]["songs"] == 1 and stats["sources"]["openmsx"]["drum_songs"] == 1
    data = training.load_data(out)
    meta = data["metadata"][0]
    assert meta["source"] == "openmsx" and meta["genre"] == "Pop"
    assert meta["instruments"] == ["Drums", "Piano", "Bass", "Strings"]          # flute -> Strings
    np.testing.assert_array_equal(data["init"][0], init_tokens([D.DRUMS, D.PIANO, D.BASS, D.STRINGS],
                                                               data["init"][0][1, 1], D.GENRE_ID["Pop"]))
    seq = np.concatenate([data["x"][0][:1], data["y"][0][: int(data["seq_len"][0])]])
    notes = tokens_to_notes(seq)
    drums = sorted((int(o), int(p)) for o, p, _, c in notes if c == D.DRUMS)
    # by hand: a hat on every 8th (every 2nd 16th) = 32, a kick on every quarter = 16
    expected = sorted([(t, HAT) for t in range(0, 16 * BARS, 2)] + [(t, KICK) for t in range(0, 16 * BARS, 4)])
    assert drums == expected and len(drums) == 48
    counts = {c: int((notes[:, 3] == c).sum()) for c in range(1, 6)}
    assert counts == {D.DRUMS: 48, D.PIANO: 32, D.GUITAR: 0, D.BASS: 32, D.STRINGS: 24}
    # one Drums beat token per 8th; strength 2 where kick and hat sound together
    beats = seq[(seq[:, D.COL_TYPE] == D.TYPE_M) & (seq[:, D.COL_INSTRUMENT] == D.DRUMS)]
    assert len(beats) == 32 and sorted(np.bincount(beats[:, D.COL_STRENGTH])[1:3].tolist()) == [16, 16]


def test_drum_loops_laid_under_a_pitched_piece(tmp_path):
    """The overlay source: a 4-bar drum loop of a GM song, repeated under a drum-less piece."""
    from miditoolkit.midi.containers import Instrument, Note
    drummed = gm_song(tmp_path / "tune.mid")
    # a loop needs 8 distinct onsets; the song's 4 bars are one loop: 32 hats (every 8th) and
    # 16 kicks (every quarter), in 16ths from the loop start
    loops = corpus.drum_loops([("openmsx/tune", drummed)])
    assert len(loops) == 1 and loops[0][0] == "openmsx/tune"
    loop = loops[0][1]
    assert sorted((o, p) for o, p, _, _ in loop) == sorted([(t, HAT) for t in range(0, 64, 2)] +
                                                           [(t, KICK) for t in range(0, 64, 4)])
    assert corpus.drum_loops([("openmsx/tune", drummed)], min_onsets=33) == []   # 32 distinct onsets only
    # a 6-bar piano piece (ticks_per_beat 96: another resolution than the loop's 480)
    piece = miditoolkit.MidiFile(ticks_per_beat=96)
    piano = Instrument(program=0, name="Piano")
    for q in range(24):                                   # a quarter note on every beat
        piano.notes.append(Note(70, 60 + q % 12, 96 * q, 96 * q + 96))
    piece.instruments = [piano]
    piece.dump(str(tmp_path / "piece.mid"))
    before = (tmp_path / "piece.mid").read_bytes()
    made = corpus.build_overlays([("bach/piece", tmp_path / "piece.mid")], [("openmsx/tune", drummed)],
                                 tmp_path / "overlay", n=5)
    assert [sid for sid, _ in made] == ["overlay/bach/piece"]
    assert (tmp_path / "piece.mid").read_bytes() == before                   # the input is not touched
    out = miditoolkit.MidiFile(str(made[0][1]))
    kit = [i for i in out.instruments if i.is_drum]
    assert len(kit) == 1 and [n.pitch for n in out.instruments[0].notes] == [n.pitch for n in piano.notes]
    # by hand: the loop (16 sixteenths a bar, 4 bars) repeated over the piece's 6 bars = 96
    # sixteenths: hats every 2nd 16th (48) and kicks every 4th (24), at 24 ticks a 16th
    got = sorted((n.start // 24, n.pitch) for n in kit[0].notes)
    assert got == sorted([(t, HAT) for t in range(0, 96, 2)] + [(t, KICK) for t in range(0, 96, 4)])
    # tokenised, the overlay's drum notes are Drums, with those counts
    data_out = tmp_path / "overlay.npz"
    dataset.build_training_set(made, data_out, max_len=2048, genre_map={made[0][0]: D.GENRE_ID["Pop"]},
                               workers=1, cache_dir=None, source="overlay")
    data = training.load_data(data_out)
    seq = np.concatenate([data["x"][0][:1], data["y"][0][: int(data["seq_len"][0])]])
    notes = tokens_to_notes(seq)
    assert int((notes[:, 3] == D.DRUMS).sum()) == 72 and int((notes[:, 3] == D.PIANO).sum()) == 24
    assert data["metadata"][0]["genre"] == "Pop" and data["metadata"][0]["source"] == "overlay"


def test_debian_source_missing_says_how_to_install(tmp_path):
    with pytest.raises(corpus.SkipFile, match="apt-get install -y planetblupi-music-midi"):
        corpus.debian_midi_files("blupi", folder=tmp_path / "nowhere")


def test_transposition_moves_pitched_parts_only():
    song = notes_to_tokens(np.array([[0, KICK, 1, D.DRUMS], [0, 60, 4, D.PIANO], [4, HAT, 1, D.DRUMS],
                                     [4, 64, 4, D.PIANO]]))
    x, y = song[None, :-1].astype(np.int64), song[None, 1:].astype(np.int64)
    init = init_tokens([D.DRUMS, D.PIANO], 1, 0)[None].astype(np.int64)
    x0 = x.copy()
    shifts = training.transpose_songs(x, y, init, np.random.default_rng(3), 6)
    k = int(shifts[0])
    assert k != 0
    note = x0[0, :, D.COL_TYPE] == D.TYPE_NOTE
    drum = note & (x0[0, :, D.COL_INSTRUMENT] == D.DRUMS)
    np.testing.assert_array_equal(x[0, drum, D.COL_PITCH], x0[0, drum, D.COL_PITCH])          # drums stay
    np.testing.assert_array_equal(x[0, note & ~drum, D.COL_PITCH], x0[0, note & ~drum, D.COL_PITCH] + k)


def test_source_weights_repeat_the_named_sources():
    meta = [{"source": s} for s in ["music21", "openmsx", "music21", "blupi", "openmsx"]]
    idx = np.array([0, 1, 2, 3, 4])
    got = dataset.oversample(idx, meta, dataset.parse_weights("openmsx=3, blupi=2"))
    assert got.tolist() == [0, 1, 1, 1, 2, 3, 3, 4, 4, 4]
    assert dataset.oversample(idx, meta, {}).tolist() == idx.tolist()
    for bad in ("openmsx", "openmsx=0", "openmsx=1.5", "=2"):
        with pytest.raises(ValueError, match="NAME=N"):
            dataset.parse_weights(bad)
    with pytest.raises(ValueError, match="lpd"):
        dataset.oversample(idx, meta, {"lpd": 2})


# ------------------------------------------------------------------------- a tiny drummed model
TINY = dict(n_layer=1, d_model=48, n_head=2, d_ff=96, emb_sizes="8,4,8,24,8,4,8", time_emb_size=8,
            init_emb_size=8, dropout=0.0, attention="torch")
# video rows [bar-beat, density, strength, i_beat, n_beat, p_beat]: 4 bars, beats of strength
# >= 2 at 16ths 4 | 8 | 12 | 2, 6, 10 of bars 0..3 (even 16ths, where the drummed songs play), one
# of strength 1 (not forced) at 0 of bar 1
ROWS = np.array([[17, 5, 0, 0, 96, 1], [5, 0, 3, 4, 96, 5], [17, 4, 0, 16, 96, 17], [1, 0, 1, 16, 96, 17],
                 [9, 0, 2, 24, 96, 26], [17, 3, 0, 32, 96, 34], [13, 0, 4, 44, 96, 46], [17, 6, 0, 48, 96, 51],
                 [3, 0, 5, 50, 96, 53], [7, 0, 2, 54, 96, 57], [11, 0, 2, 58, 96, 61]])


def drummed_song(rng, bars=4) -> np.ndarray:
    """Kick on quarters, hat on the other 8ths, a random piano note on each quarter, bass on 1."""
    notes = []
    for b in range(bars):
        for q in range(4):
            notes.append([16 * b + 4 * q, KICK, 1, D.DRUMS])
            notes.append([16 * b + 4 * q + 2, HAT, 1, D.DRUMS])
            notes.append([16 * b + 4 * q, int(rng.choice([60, 62, 64, 65, 67])), 4, D.PIANO])
        notes.append([16 * b, 36, 16, D.BASS])
    notes.sort(key=lambda n: (n[0], n[3], n[1]))
    return np.array(notes, dtype=np.int64)


def plain_song(rng, bars=4) -> np.ndarray:
    """Piano on quarters over a bass tonic, no drums (a 'music21' song)."""
    notes = []
    for b in range(bars):
        for q in range(4):
            notes.append([16 * b + 4 * q, int(rng.choice([60, 62, 64, 65, 67])), 4, D.PIANO])
        notes.append([16 * b, 36, 16, D.BASS])
    notes.sort(key=lambda n: (n[0], n[3], n[1]))
    return np.array(notes, dtype=np.int64)


@pytest.fixture(scope="module")
def drum_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("drums")
    rng = np.random.default_rng(0)
    songs, inits, meta = [], [], []
    for i in range(12):                    # 8 plain Folk songs, 4 drummed Pop songs
        drummed = i % 3 == 0
        songs.append(notes_to_tokens(drummed_song(rng) if drummed else plain_song(rng)))
        instr = [D.DRUMS, D.PIANO, D.BASS] if drummed else [D.PIANO, D.BASS]
        inits.append(init_tokens(instr, 1, D.GENRE_ID["Pop" if drummed else "Folk"]))
        meta.append({"source": "drummed" if drummed else "plain"})
    arrays = dataset.assemble_arrays(songs, inits)
    arrays["split"] = np.array([0] * 11 + [1], np.uint8)
    dataset.save_training_npz(d / "mix.npz", arrays, meta, {})
    hp = dict(name="mix", data_root=str(d), train_data="mix.npz", exp_dir=str(d / "exp"), log_dir=str(d / "logs"),
              lr=1e-2, batch_size=8, max_tokens=100000, max_len=0, epochs=30, grad_clip=3.0, seed=0,
              device="cpu", gid="", data_parallel=0, resume=0, source_weights="drummed=2", default_genre="Pop", **TINY)
    training.train(hp)
    log = (d / "logs" / "mix.log").read_text()
    assert "source weights drummed=2: 15 training sequences per pass (11 distinct)" in log   # 4 drummed x 2 + 7
    return load_checkpoint(d / "exp" / "mix" / "last.pt")


def test_default_genre_is_the_chosen_one_not_the_commonest(drum_model):
    v = drum_model.vocab
    assert v["default_genre"] == D.GENRE_ID["Pop"]                 # Folk is commoner (7 of 11 training songs)
    assert v["genres"] == [D.GENRE_ID["Pop"], D.GENRE_ID["Folk"]]
    assert v["instruments"] == [D.DRUMS, D.PIANO, D.BASS]
    data = training.load_data(Path(drum_model.checkpoint_info["path"]).parents[2] / "mix.npz")
    idx = np.flatnonzero(data["split"] == 0)
    assert training.label_vocab(data, idx)["default_genre"] == D.GENRE_ID["Folk"]
    with pytest.raises(cli.UserError, match="does not occur"):
        training.label_vocab(data, idx, default_genre="Jazz")


def test_a_model_that_knows_drums_hits_the_visual_beats_on_drums(drum_model, tmp_path):
    rows_npz = tmp_path / "clip.npz"
    np.savez(rows_npz, input=ROWS, tempo=np.float64(120.0), duration=np.float64(8.0))
    opts = pipeline.Options(out_dir=str(tmp_path / "out"), num_songs=4, seed=1, render=False)
    pipeline.run([rows_npz], drum_model, opts, log=lambda *a: None)
    for k in range(4):
        report = json.loads((tmp_path / "out" / f"clip_{k}.json").read_text())
        # the strength class from which beats are forced is the model's calibration's (SPEC 5b)
        strong = {(int(r[3]) // 16, int(r[0])) for r in ROWS if r[0] != D.BAR and r[2] >= report["min_strength"]}
        assert len(strong) >= 6
        forced = report["forced_beats"]
        on_drums = {(b, bb) for b, bb, _, instr in forced if instr == D.DRUMS}
        assert on_drums == strong                       # every strong visual beat is forced on Drums
        midi = miditoolkit.MidiFile(str(tmp_path / "out" / f"clip_{k}.mid"))
        kits = [i for i in midi.instruments if i.is_drum]
        assert len(kits) == 1 and kits[0].name == "Drums"            # the song has a drum track
        sixteenth = midi.ticks_per_beat // 4
        onsets = {n.start // sixteenth for n in kits[0].notes}
        hit = [16 * b + bb - 1 in onsets for b, bb in on_drums]
        assert all(hit), (k, sorted(on_drums), sorted(onsets))


def val_losses(csv_path: Path) -> list[float]:
    import csv
    with open(csv_path) as f:
        return [float(r["val_loss"]) for r in csv.DictReader(f)]


def test_fine_tuning_starts_from_the_given_weights(drum_model, tmp_path):
    d = Path(drum_model.checkpoint_info["path"]).parents[2]
    hp = dict(name="ft", data_root=str(d), train_data="mix.npz", exp_dir=str(tmp_path / "exp"),
              log_dir=str(tmp_path / "logs"), lr=1e-4, batch_size=8, max_tokens=100000, max_len=0, epochs=1,
              grad_clip=3.0, seed=0, device="cpu", gid="", data_parallel=0, resume=0,
              init_ckpt=drum_model.checkpoint_info["path"], **{**TINY, "d_model": 32})   # sizes come from the ckpt
    training.train(hp)
    assert "fine-tuning" in (tmp_path / "logs" / "ft.log").read_text()
    tuned = load_checkpoint(tmp_path / "exp" / "ft" / "last.pt")
    assert tuned.config.d_model == drum_model.config.d_model == 48
    scratch = val_losses(d / "logs" / "mix.csv")
    # one epoch at a small learning rate from the trained weights: about where that model ended,
    # far below the first epoch of the run from scratch
    ft = val_losses(tmp_path / "logs" / "ft.csv")[0]
    assert abs(ft - scratch[-1]) < 0.1 and ft < scratch[0] - 0.5, (ft, scratch)


def run_script(*args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_weights_and_default_genre_from_the_command_line(drum_model, tmp_path):
    d = Path(drum_model.checkpoint_info["path"]).parents[2]
    bad = run_script(ROOT / "src" / "main_cp.py", "--mode", "train", "--train_data", d / "mix.npz",
                     "--exp_dir", tmp_path, "--log_dir", tmp_path, "--source_weights", "lpd=2")
    assert bad.returncode == 2 and "--source_weights" in bad.stderr and "lpd" in bad.stderr
    assert "Traceback" not in bad.stderr
    out = tmp_path / "exported.pt"
    ok = run_script(ROOT / "src" / "export_checkpoint.py", "--ckpt", drum_model.checkpoint_info["path"],
                    "--out", out, "--half", "--default_genre", "Folk")
    assert ok.returncode == 0, ok.stderr
    assert load_checkpoint(out).vocab["default_genre"] == D.GENRE_ID["Folk"]
    never = run_script(ROOT / "src" / "export_checkpoint.py", "--ckpt", drum_model.checkpoint_info["path"],
                       "--out", tmp_path / "x.pt", "--data", d / "mix.npz", "--default_genre", "Jazz")
    assert never.returncode == 2 and "does not occur" in never.stderr and not (tmp_path / "x.pt").exists()


# ------------------------------------------------------------------------- rendering
def spectral_centroid(path: Path) -> float:
    with wave.open(str(path)) as w:
        a = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
        a = a.reshape(-1, w.getnchannels()).mean(1)
        rate = w.getframerate()
    mag = np.abs(np.fft.rfft(a))
    freq = np.fft.rfftfreq(len(a), 1.0 / rate)
    return float((mag * freq).sum() / mag.sum())


@pytest.mark.skipif(not shutil.which("fluidsynth"), reason="needs fluidsynth")
def test_drums_render_on_channel_10_with_a_gm_kit(tmp_path):
    from vidscore import rendering
    from vidscore.music.midi_write import tokens_to_midi
    hats = np.array([[t, HAT, 1, D.DRUMS] for t in range(0, 32, 2)])
    tokens_to_midi(notes_to_tokens(hats), tmp_path / "drums.mid", 120.0)
    tokens_to_midi(notes_to_tokens(hats * [1, 1, 1, 0] + [0, 0, 0, D.PIANO]), tmp_path / "piano.mid", 120.0)
    midi = miditoolkit.MidiFile(str(tmp_path / "drums.mid"))
    assert [(i.name, i.is_drum) for i in midi.instruments] == [("Drums", True)]
    chans = {m.channel for tr in mido.MidiFile(str(tmp_path / "drums.mid")).tracks for m in tr if m.type == "note_on"}
    assert chans == {9}                                   # MIDI channel 10
    # key 42 on a GM kit is a closed hi-hat (noise, energy in the kHz); on a piano it is F#2 (92.5 Hz,
    # its hammer noise and overtones put the centroid near 1.5 kHz; measured: kit 10.9 kHz, piano 1.5 kHz)
    drums = spectral_centroid(Path(rendering.render_wav(tmp_path / "drums.mid", tmp_path / "drums.wav")))
    piano = spectral_centroid(Path(rendering.render_wav(tmp_path / "piano.mid", tmp_path / "piano.wav")))
    assert drums > 5000 and drums > 4 * piano, (drums, piano)


# ------------------------------------------------------------------------- web app and CLI agree
def test_web_form_offers_only_the_instruments_the_model_knows(tmp_path):
    from conftest import save_tiny_checkpoint
    from vidscore.webui import soundtrack
    from vidscore.webui.server import AppConfig, create_app
    model = load_checkpoint(save_tiny_checkpoint(tmp_path / "nodrums.pt", instruments=(2, 3, 4, 5)))
    assert soundtrack.known_instruments(model) == {2: "Piano", 3: "Guitar", 4: "Bass", 5: "Strings"}
    html = create_app(AppConfig(data_dir=tmp_path / "a", model=model, start_worker=False)).test_client().get("/")
    html = html.get_data(as_text=True)
    assert 'id="instr-1"' not in html and 'id="instr-2"' in html and 'id="instr-5"' in html
    with pytest.raises(cli.UserError, match="not trained with Drums"):
        soundtrack.parse_options({}, ["1", "2"], model, 5)
    with pytest.raises(cli.UserError, match="not trained with Drums"):   # the CLI's check says the same
        from vidscore import controls
        controls.parse_instruments("Drums", model.vocab["instruments"])
    drummed = load_checkpoint(save_tiny_checkpoint(tmp_path / "drums.pt"))
    assert list(soundtrack.known_instruments(drummed)) == [1, 2, 3, 4, 5]


def test_calibrated_control_forces_each_beat_on_one_rhythm_track(drum_model, tmp_path):
    """Calibrated: every visual beat on Drums alone (the data's rhythm track), not on Drums and
    Piano as the original did; without Drums (--instruments) the next rhythm track takes them."""
    from vidscore.generation import calibration
    assert calibration.mapping_for(drum_model).max_forced_tracks == 1
    assert calibration.mapping_for(drum_model, "original").max_forced_tracks is None
    rows_npz = tmp_path / "clip.npz"
    np.savez(rows_npz, input=ROWS, tempo=np.float64(120.0), duration=np.float64(8.0))
    for instruments, want in [(None, {D.DRUMS}), ((D.PIANO, D.BASS), {D.PIANO})]:
        out = tmp_path / f"out{len(want)}{instruments is None}"
        opts = pipeline.Options(out_dir=str(out), num_songs=2, seed=1, render=False, instruments=instruments)
        pipeline.run([rows_npz], drum_model, opts, log=lambda *a: None)
        for k in range(2):
            forced = json.loads((out / f"clip_{k}.json").read_text())["forced_beats"]
            assert forced and {instr for *_, instr in forced} == want
            positions = [(b, bb) for b, bb, *_ in forced]
            assert len(positions) == len(set(positions))          # one forced Beat per visual beat
