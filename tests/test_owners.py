"""One owner per concept: each test pins a place where two implementations used to disagree.

Values are worked out by hand or come from an independent route (muspy, the original's formula)."""
import json
import math

import numpy as np
import pytest
import torch
from miditoolkit import Instrument, MidiFile, Note, TempoChange

from vidscore import constants as D
from vidscore.evaluation import report as evaluate
from vidscore.evaluation import metrics as M
from vidscore.music import representation as R
from vidscore.video import metadata as VM

TPB = 480
STEP = TPB // 4  # MIDI ticks per 16th


def write_midi(path, tracks, tempo=120.0):
    """tracks: [(name, program, is_drum, [(onset_16th, pitch, dur_16ths), ...]), ...]"""
    midi = MidiFile(ticks_per_beat=TPB)
    midi.tempo_changes = [TempoChange(tempo, 0)]
    for name, program, is_drum, notes in tracks:
        inst = Instrument(program=program, is_drum=is_drum, name=name)
        inst.notes = [Note(velocity=80, pitch=p, start=o * STEP, end=(o + d) * STEP) for o, p, d in notes]
        midi.instruments.append(inst)
    midi.dump(str(path))


# ----------------------------------------------------------------------------- program -> class

def gm_family_by_hand(program: int) -> int:
    """The LPD-5 merge written out from the General MIDI family names."""
    if program <= 7:
        return D.PIANO          # acoustic / electric pianos
    if 24 <= program <= 31:
        return D.GUITAR
    if 32 <= program <= 39:
        return D.BASS
    if 96 <= program <= 103 or 112 <= program <= 127:
        return 0                # synth effects, percussive, sound effects: left out
    return D.STRINGS            # chromatic percussion, organ, strings, ensemble, brass, reed, pipe, synth, ethnic


def test_all_128_programs_get_one_class_through_the_tokenizer_and_through_evaluation(tmp_path):
    # one unnamed track per program, told apart by its pitch (= program); 21 notes so the tokenizer keeps it
    path = tmp_path / "gm.mid"
    write_midi(path, [("", prog, False, [(k, prog, 1) for k in range(21)]) for prog in range(128)])
    tokens, _ = R.midi_to_tokens(path)
    notes = tokens[tokens[:, D.COL_TYPE] == D.TYPE_NOTE]
    by_tokenizer = {int(p) - 1: int(c) for p, c in notes[:, [D.COL_PITCH, D.COL_INSTRUMENT]]}
    ev_notes, _ = evaluate.load_midi(path)
    by_evaluation = {int(n["pitch"]): int(n["instrument"]) for n in ev_notes}
    expected = {p: gm_family_by_hand(p) for p in range(128) if gm_family_by_hand(p)}
    assert by_tokenizer == expected
    assert by_evaluation == expected
    assert expected[16] == D.STRINGS and expected[0] == D.PIANO and 120 not in expected  # organ, piano, FX


# ----------------------------------------------------------------------------- tokens -> notes

def test_metrics_reads_tokens_as_representation_does():
    rng = np.random.default_rng(3)
    raw = np.stack([np.sort(rng.integers(0, 64, 40)), rng.integers(30, 90, 40), rng.integers(1, 17, 40),
                    rng.integers(1, 6, 40)], axis=1)
    notes = R.dedupe_and_sort(raw)
    tokens = R.notes_to_tokens(notes)
    got = M.notes_from_tokens(tokens)
    want = M.as_notes(R.tokens_to_notes(tokens))
    assert np.array_equal(got, want)
    assert np.array_equal(got, M.as_notes(notes))         # and both give back the notes tokenised
    # a duration token of 1 (0 ticks) is a 1-tick note in both readings
    tokens[tokens[:, D.COL_TYPE] == D.TYPE_NOTE, D.COL_DURATION] = 1
    assert set(M.notes_from_tokens(tokens)["duration"].tolist()) == {1}


# ----------------------------------------------------------------------------- p_beat

def test_p_beat_is_one_function_floor_for_tokens_round_for_video_rows():
    # 3 of 40 ticks: 7.5 % -> tokens floor to 7 (+1), video rows round half to even to 8 (+1)
    assert int(R.p_beat(3, 40)) == 8 and int(R.p_beat(3, 40, rounding="round")) == 9
    # 23 of 40: the original's expression round(23 / 40 * 100) is round(57.49999999999999) = 57;
    # the old rows code, round(100 * 23 / 40) = round(57.5), gave 58
    assert round(23 / 40 * 100) == 57
    assert int(R.p_beat(23, 40, rounding="round")) == 58
    # a video of 10 s at 60 bpm has n_beat = 40; a beat at bar 1, tick 7 is i_beat 23
    meta = {"duration": 10.0, "tempo": 60.0, "vbeats": [{"bar": 1, "tick": 7, "weight": 0.5}],
            "flow_magnitude_per_bar": [0.0, 0.0, 0.0]}
    rows = VM.metadata_to_rows(meta)
    beat = rows[rows[:, VM.ROW_BARBEAT] != D.BAR][0]
    assert beat[VM.ROW_I_BEAT] == 23 and beat[VM.ROW_N_BEAT] == 40 and beat[VM.ROW_P_BEAT] == 58
    # the original's formula over a range of songs
    for n in (37, 40, 80, 120, 333):
        for i in range(n + 1):
            assert int(R.p_beat(i, n, rounding="round")) == round(i / n * 100) + 1
            assert int(R.p_beat(i, n)) == min(int(100 * i / n) + 1, 101)


# ----------------------------------------------------------------------------- metadata -> rows, files

META = {"duration": 8.0, "tempo": 120.0,
        "vbeats": [{"start_time": 0.0, "bar": 0, "tick": 0, "weight": 0.95},
                   {"start_time": 0.625, "bar": 0, "tick": 5, "weight": 0.3},
                   {"start_time": 2.5, "bar": 1, "tick": 4, "weight": 0.999}],
        "flow_magnitude_per_bar": [0.01, 0.6, 2.5, 0.2]}


def test_evaluation_derives_the_video_rows_as_inference_does(tmp_path):
    meta_file = VM.metadata_path(tmp_path, "clip")
    meta_file.write_text(json.dumps(META))
    from_meta = evaluate.load_video(metadata=meta_file, name="clip")
    rows = VM.metadata_to_rows(META)
    VM.save_npz(VM.npz_path(tmp_path, "clip"), rows, META["tempo"], META["duration"])
    from_npz = evaluate.load_video(npz=VM.npz_path(tmp_path, "clip"), name="clip")
    for field in ("kept_ticks", "kept_strengths", "bar_index", "bar_density"):
        assert getattr(from_meta, field).tolist() == getattr(from_npz, field).tolist(), field
    # by hand: strength classes of 0.95, 0.3, 0.999 are 5, 2, 8; kept (>= 2) are all three;
    # flow 0.01, 0.6, 2.5, 0.2 -> density classes 1, 9, 15, 8, stored + 1
    assert from_meta.kept_ticks.tolist() == [0, 5, 20] and from_meta.kept_strengths.tolist() == [5, 2, 8]
    assert from_meta.bar_density.tolist() == [2, 10, 16, 9]


def test_metadata_file_is_named_one_way_where_written_and_where_looked_for(tmp_path):
    assert VM.metadata_path(tmp_path, "clip") == tmp_path / "clip_metadata.json"
    VM.metadata_path(tmp_path, "clip").write_text(json.dumps(META))
    write_midi(tmp_path / "clip_0.mid", [("Piano", 0, False, [(0, 60, 4)])])
    song = evaluate.load_generated(tmp_path)[0][0]
    video = evaluate.find_video(song, None)
    assert video is not None and video.name == "clip" and video.sources == [str(tmp_path / "clip_metadata.json")]


def test_video_suffixes_are_one_list():
    from vidscore.generation import job as pipeline
    from vidscore.video import pipeline as vp
    assert pipeline.VIDEO_EXTS == vp.VIDEO_EXTENSIONS == D.VIDEO_SUFFIXES
    assert evaluate.MIDI_SUFFIXES == D.MIDI_SUFFIXES


# ----------------------------------------------------------------------------- the loss

def test_the_loss_is_written_once_and_matches_hand_values():
    from vidscore.model.cmt import CMT, ModelConfig, field_losses
    torch.manual_seed(0)
    # all-zero logits: each masked token costs log(n_classes) in every field
    n = {"type": 4, "barbeat": 18, "density": 18}
    logits = {k: torch.zeros(2, 5, c) for k, c in n.items()}
    y = torch.zeros(2, 5, D.N_COLS, dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.float32)
    parts = field_losses(logits, y, mask)
    for k, c in n.items():
        assert float(parts[k]) == pytest.approx(math.log(c))
    # the model's own loss is the mean of the same per-field losses
    m = CMT(ModelConfig(n_layer=1, d_model=32, n_head=2, d_ff=64, emb_sizes=[8, 4, 8, 16, 8, 4, 8],
                        time_emb_size=8, init_emb_size=8, init_n_class=[7, 25, 6], dropout=0.0)).eval()
    x = torch.randint(1, 3, (2, 6, D.N_COLS))
    x[..., D.COL_IBEAT] = torch.arange(6)
    y = torch.randint(1, 3, (2, 6, D.N_COLS))
    init = torch.zeros(2, D.N_INIT_ROWS, 3, dtype=torch.long)
    mask = torch.ones(2, 6)
    with torch.no_grad():
        total, named = m.loss(x, y, mask, init)
        again = field_losses(m(x, y, init), y, mask, m.layout)
    assert set(named) == set(again) == set(m.layout.heads)
    assert float(total) == pytest.approx(float(torch.stack(list(again.values())).mean()), rel=1e-6)


# ----------------------------------------------------------------------------- muspy as an independent check

def test_metrics_agree_with_muspy_on_a_real_midi_file(tmp_path):
    muspy = pytest.importorskip("muspy")
    rng = np.random.default_rng(11)
    for seed in range(3):
        # two bars (muspy's groove consistency compares neighbouring bars, our GPS all pairs: the
        # same number for two bars); the last note ends inside bar 2 so muspy sees two measures
        onsets = sorted(set(rng.integers(0, 31, 14).tolist()))
        piano = [(o, int(rng.integers(48, 84)), 1) for o in onsets]
        drums = [(o, 36, 1) for o in range(0, 28, 4)]
        path = tmp_path / f"s{seed}.mid"
        write_midi(path, [("Piano", 0, False, piano), ("Drums", 0, True, drums)])
        notes, _ = evaluate.load_midi(path)
        music = muspy.read_midi(str(path))
        music.adjust_resolution(D.TICKS_PER_BEAT)
        assert M.pitch_class_entropy(notes, window_bars=M.n_bars(notes)) == pytest.approx(
            muspy.pitch_class_entropy(music), abs=1e-12)
        assert M.grooving_pattern_similarity(notes) == pytest.approx(
            muspy.groove_consistency(music, D.TICKS_PER_BAR), abs=1e-12)


# ----------------------------------------------------------------------------- settings: one place, one translation

def test_the_hyperparameter_block_is_what_the_libraries_use():
    from vidscore.generation import generate as generation
    from vidscore.generation import job as pipeline
    from vidscore.model import sampling
    from main_cp import HP
    assert pipeline.parse_sampling(HP["sampling"]) == sampling.SAMPLING
    assert HP["max_tokens_per_bar"] == generation.Controls().max_tokens_per_bar == pipeline.Options().max_tokens_per_bar
    assert HP["C"] == pipeline.Options().C == D.DEFAULT_C == 0.7
    assert HP["density_threshold"] == pipeline.Options().min_strength == D.DEFAULT_MIN_STRENGTH == 2


def test_cli_and_web_app_turn_the_same_settings_into_the_same_options(tmp_path, tiny_ckpt):
    from vidscore.generation import job as pipeline
    from main_cp import HP
    from vidscore.webui import soundtrack
    model = pipeline.load_model(tiny_ckpt, "cpu", "float32")
    hp = dict(HP, C=0.5, sampling="barbeat=1.0/0.8", max_tokens_per_bar=99)   # an edited block reaches both
    cli_opts = pipeline.options_from_hp(dict(hp, out_dir=str(tmp_path), num_songs=2, seed=7, density_threshold=3,
                                             instruments="Piano,Bass", is_tempo=1, my_tempo=96.0, render=0), model)
    form = soundtrack.parse_options({"threshold": "3", "num_songs": "2", "tempo_mode": "manual", "tempo": "96",
                                     "seed": "7"}, ["2", "4"], model, max_songs=5)
    web_opts = soundtrack.pipeline_options(form, tmp_path, model, hp)
    assert web_opts == cli_opts
    assert (cli_opts.C, cli_opts.max_tokens_per_bar, cli_opts.sampling["barbeat"]) == (0.5, 99, (1.0, 0.8))


@pytest.mark.parametrize("bad", ["0", "20", "250", "fast"])
def test_tempo_is_checked_one_way_everywhere(bad, tmp_path):
    from vidscore import cli
    from vidscore import controls
    from vidscore.generation import job as pipeline
    from vidscore.video import analysis
    from vidscore.webui import soundtrack
    for check in (lambda: controls.check_tempo(bad), lambda: analysis.check_tempo(bad),
                  lambda: soundtrack.parse_options({"tempo_mode": "manual", "tempo": bad}, ["1"], None, 5),
                  lambda: pipeline.options_from_hp({"is_tempo": 1, "my_tempo": bad}, None)):
        with pytest.raises(cli.UserError, match="32 to 224"):
            check()
    assert controls.check_tempo("32") == 32.0 and analysis.check_tempo(224) == 224.0


def test_controls_table_names_each_init_cell_once_and_training_reads_it():
    from vidscore import controls
    from vidscore.training import loop as training
    cells = [c.init_cell for c in controls.CONTROLS.values() if c.init_cell]
    assert len(cells) == len(set(cells)) == 3
    block = R.init_tokens([2, 4], key_id=8, genre_id=5, emotion=3)
    for name, (r, c) in D.INIT_CELL.items():
        assert block[r, c] == {"genre": 5, "key": 8, "emotion": 3}[name]
    inits = np.stack([R.init_tokens([2], 8, 5, 3), R.init_tokens([2], 8, 7, 1), R.init_tokens([2], 3, 7, 1)])
    data = {"init": inits, "x": np.zeros((3, 4, D.N_COLS), np.int64)}
    data["x"][:, 0, D.COL_INSTRUMENT] = 2
    vocab = training.label_vocab(data, np.arange(3))
    assert vocab == {"instruments": [2], "keys": [3, 8], "default_key": 8, "genres": [5, 7], "default_genre": 7,
                     "emotions": [1, 3], "default_emotion": 1}


def test_val_fraction_from_the_hyperparameter_block_resplits_by_song():
    from vidscore import cli
    from vidscore.training import loop as training
    from vidscore.training.dataset import assign_split
    ids = [f"song{i // 2}" for i in range(40)]            # two windows per song
    data = {"x": np.zeros((40, 2, D.N_COLS)), "split": np.zeros(40, np.uint8),
            "metadata": [{"id": i} for i in ids]}
    assert training.resplit(data, 0.0) is data["split"]   # 0: the data's own split
    split = training.resplit(data, 0.5)
    want = assign_split(ids, 0.5)
    assert split.tolist() == [want[i] for i in ids] and 0 < split.sum() < 40
    assert all(split[k] == split[k + 1] for k in range(0, 40, 2))   # a song's windows stay together
    with pytest.raises(cli.UserError, match="val_fraction"):
        training.resplit({**data, "metadata": None}, 0.2)
