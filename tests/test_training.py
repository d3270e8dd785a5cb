"""The training loop: a tiny model memorises a tiny dataset; checkpoints, resume, DDP on CPU."""
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidscore import cli
from vidscore import constants as D
from vidscore.model.cmt import load_checkpoint
from vidscore.music.representation import init_tokens, notes_to_tokens
from vidscore.training import loop as training

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(n_layer=1, d_model=32, n_head=2, d_ff=64, emb_sizes="8,4,8,16,8,4,8", time_emb_size=8,
            init_emb_size=8, dropout=0.0, attention="torch")


def song(shift: int, bars: int = 4) -> np.ndarray:
    """Piano quarter notes walking up a scale, a bass note per bar."""
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    notes = []
    for b in range(bars):
        for q in range(4):
            notes.append([16 * b + 4 * q, scale[(b * 4 + q) % 8] + shift, 4, D.PIANO])
        notes.append([16 * b, 36 + shift, 16, D.BASS])
    notes.sort(key=lambda n: (n[0], n[3]))
    return np.array(notes, dtype=np.int64)


def write_npz(path: Path, seqs: list[np.ndarray], split: list[int]) -> Path:
    L = max(len(s) for s in seqs) - 1
    n = len(seqs)
    x = np.zeros((n, L, 9), np.int32)
    y = np.zeros((n, L, 9), np.int32)
    mask = np.zeros((n, L), np.float32)
    for i, s in enumerate(seqs):
        x[i, :len(s) - 1], y[i, :len(s) - 1], mask[i, :len(s) - 1] = s[:-1], s[1:], 1
    init = np.stack([init_tokens([D.PIANO, D.BASS], 1, 0)] * n)
    np.savez(path, x=x, y=y, mask=mask, init=init, seq_len=mask.sum(1).astype(np.int32),
             split=np.array(split, np.uint8), metadata=np.array(json.dumps([{"id": i} for i in range(n)])),
             vocab=np.array("{}"))
    return path


def hp_for(tmp_path, **kw):
    hp = dict(name="tiny", data_root=str(tmp_path), train_data="tiny.npz", exp_dir=str(tmp_path / "exp"),
              log_dir=str(tmp_path / "logs"), lr=3e-3, batch_size=4, max_tokens=10000, max_len=0,
              epochs=1, grad_clip=3.0, seed=0, device="cpu", gid="", data_parallel=0, resume=0, **TINY)
    hp.update(kw)
    return hp


@pytest.fixture
def tiny_data(tmp_path):
    seqs = [notes_to_tokens(song(s)) for s in (0, 2, 5)]
    return write_npz(tmp_path / "tiny.npz", seqs, [0, 0, 1])


def test_loss_tag_matches_the_original_names():
    assert training.loss_tag(0.085) == 8          # loss_8_params.pt = [0.08, 0.09)
    assert training.loss_tag(0.19) == 19
    assert training.loss_tag(0.35) == 30
    assert training.loss_tag(1.37) == 130


def test_length_bucketed_batches_cover_every_song_once():
    lengths = np.array([5, 100, 7, 98, 6, 99])
    batches = training.make_batches(lengths, np.arange(6), batch_size=3, max_tokens=1000,
                                    rng=np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(6))
    for b in batches:   # similar lengths together: short with short, long with long
        assert lengths[b].max() - lengths[b].min() <= 2


def test_tiny_model_memorises_tiny_data(tiny_data, tmp_path):
    # Two training songs of ~35 tokens, fully deterministic given their start: a 1-layer model
    # can learn them almost exactly.  Chance level is the mean log vocab size over the seven
    # fields (~2.8 nats); 0.35 means it has learned most of every field.
    training.train(hp_for(tmp_path, epochs=40, lr=1e-2))
    rows = list(csv.DictReader(open(tmp_path / "logs" / "tiny.csv")))
    first, last = float(rows[0]["train_loss"]), float(rows[-1]["train_loss"])
    assert first > 2.0
    assert last < 0.35, last
    assert (tmp_path / "logs" / "tiny_loss.png").stat().st_size > 1000
    named = list((tmp_path / "exp" / "tiny").glob("loss_*_params.pt"))
    assert named, "a checkpoint named after the validation loss"
    model = load_checkpoint(tmp_path / "exp" / "tiny" / "last.pt")
    assert model.checkpoint_info["epoch"] == 39
    assert model.vocab["instruments"] == [D.PIANO, D.BASS]
    # provenance: the corpus's content checksum, its sources, and no path of this machine
    from vidscore.training import provenance
    prov = model.vocab["provenance"]
    assert prov["corpus"] == "tiny.npz" and prov["sources"] == {"midi": 3}
    assert prov["corpus_sha256"] == provenance.corpus_sha256(training.load_data(tiny_data))
    assert prov["code_commit"] != "" and "python" in prov["command"]
    hp = model.checkpoint_info["extra"]["hp"]
    assert not [v for v in list(prov.values()) + list(hp.values()) if str(v).startswith("/")]


def test_portable_paths_and_a_content_checksum_that_ignores_when_the_file_was_written(tmp_path):
    from vidscore import paths
    from vidscore.training import provenance
    got = provenance.portable({"a": str(paths.REPO / "dataset" / "x.npz"), "b": ["/elsewhere/y.npz", 3],
                               "c": "relative/z", "d": str(paths.REPO)})
    assert got == {"a": "dataset/x.npz", "b": ["y.npz", 3], "c": "relative/z", "d": "."}
    data = {"x": np.arange(12).reshape(1, 4, 3), "y": np.ones((1, 4, 3), int), "mask": np.ones((1, 4)),
            "metadata": [{"id": "a", "source": "midi"}]}
    one = provenance.corpus_sha256(data)
    assert one == provenance.corpus_sha256({k: (v.copy() if hasattr(v, "copy") else v) for k, v in data.items()})
    data["x"] = data["x"] + 1
    assert provenance.corpus_sha256(data) != one
    assert provenance.command_line(["src/main_cp.py", str(paths.REPO / "dataset" / "a.npz")]) == \
        "python src/main_cp.py dataset/a.npz"


def test_resume_continues_from_last_epoch(tiny_data, tmp_path):
    training.train(hp_for(tmp_path, epochs=2))
    training.train(hp_for(tmp_path, epochs=4, resume=1))
    rows = list(csv.DictReader(open(tmp_path / "logs" / "tiny.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    model = load_checkpoint(tmp_path / "exp" / "tiny" / "last.pt")
    assert model.checkpoint_info["epoch"] == 3
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] == 4 * steps[0]


def test_a_resumed_run_keeps_its_sizes_and_says_so(tiny_data, tmp_path):
    training.train(hp_for(tmp_path, epochs=1))
    training.train(hp_for(tmp_path, epochs=2, resume=1, d_model=64, n_layer=3))
    log = (tmp_path / "logs" / "tiny.log").read_text()
    assert f"note: the sizes are {tmp_path / 'exp' / 'tiny' / 'last.pt'}'s: n_layer 1 (not 3), d_model 32 (not 64)" in log
    model = load_checkpoint(tmp_path / "exp" / "tiny" / "last.pt")
    hp = model.checkpoint_info["extra"]["hp"]
    assert (hp["d_model"], hp["n_layer"]) == (model.config.d_model, model.config.n_layer) == (32, 1)


def test_no_validation_songs_is_said_in_the_log(tmp_path):
    write_npz(tmp_path / "tiny.npz", [notes_to_tokens(song(s)) for s in (0, 2, 5)], [0, 0, 0])
    training.train(hp_for(tmp_path))
    assert "note: no validation songs" in (tmp_path / "logs" / "tiny.log").read_text()
    assert not list((tmp_path / "exp" / "tiny").glob("loss_*_params.pt"))


def test_ddp_two_cpu_processes_train_and_save(tiny_data, tmp_path):
    # steps_per_epoch counts optimizer steps whatever the number of ranks: 3 steps on 2 ranks
    # take 6 batches (one song pass each: 2 training songs, batch 4), 3 on each rank.
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            str(ROOT / "src" / "main_cp.py"), "--mode", "train"]
    for k, v in hp_for(tmp_path, epochs=1, steps_per_epoch=3).items():
        args += [f"--{k}", str(v)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(args, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    model = load_checkpoint(tmp_path / "exp" / "tiny" / "last.pt")
    assert model.checkpoint_info["step"] == 3
    assert "2 process(es)" in (tmp_path / "logs" / "tiny.log").read_text()
    assert math.isfinite(model.checkpoint_info["val_loss"])


def test_epoch_batches_count_optimizer_steps_over_ranks():
    lengths = np.arange(10, 30)
    hp = dict(seed=0, batch_size=2, max_tokens=10000, steps_per_epoch=3)
    one = training.epoch_batches(lengths, np.arange(20), hp, 0)
    two = training.epoch_batches(lengths, np.arange(20), hp, 0, world=2)
    assert len(one) == 3 and len(two) == 6
    assert [b.tolist() for b in two[:3]] == [b.tolist() for b in one]   # the same endless sequence
    shares = [training.rank_batches(two, r, 2) for r in (0, 1)]
    assert [len(s) for s in shares] == [3, 3]
    assert sorted(b.tolist() for s in shares for b in s) == sorted(b.tolist() for b in two)
    # epoch 1 on 2 ranks continues where epoch 0 stopped: batches 6..11 of the sequence
    twelve = training.epoch_batches(lengths, np.arange(20), dict(hp, steps_per_epoch=12), 0)
    nxt = training.epoch_batches(lengths, np.arange(20), hp, 1, world=2)
    assert [b.tolist() for b in nxt] == [b.tolist() for b in twelve[6:12]]


def test_rank_shares_are_equal_and_drop_no_batch():
    batches = [np.array([i]) for i in range(5)]
    shares = [[int(b[0]) for b in training.rank_batches(batches, r, 2)] for r in (0, 1)]
    assert shares == [[0, 2, 4], [1, 3, 0]]          # 5 batches on 2 ranks: 3 steps, batch 0 again
    assert [int(b[0]) for b in training.rank_batches(batches, 0, 1)] == [0, 1, 2, 3, 4]
    assert [[int(b[0]) for b in training.rank_batches(batches[:1], r, 3)] for r in range(3)] == [[0], [0], [0]]


def test_gid_is_relative_to_an_existing_cuda_visible_devices():
    assert training.visible_devices("", None) is None
    assert training.visible_devices("", "3") is None                 # the environment is kept
    assert training.visible_devices("0,1", None) == "0,1"
    assert training.visible_devices("1", "") == "1"
    assert training.visible_devices("0,2", "4,5,6") == "4,6"         # ids index into the visible set
    assert training.visible_devices(" 1 ", "GPU-aa,GPU-bb") == "GPU-bb"
    for bad, visible in (("2", "4,5"), ("0,0", None), ("x", None), ("-1", None)):
        with pytest.raises(cli.UserError):
            training.visible_devices(bad, visible)


def test_device_resolution_without_a_gpu(monkeypatch):
    monkeypatch.setattr(training.torch.cuda, "is_available", lambda: False)
    assert training.pick_device("auto", 0).type == "cpu"
    assert training.pick_device("cpu", 3).type == "cpu"
    with pytest.raises(cli.UserError):
        training.pick_device("cuda", 0)
    with pytest.raises(cli.UserError):
        training.pick_device("tpu", 0)


def test_bf16_autocast_training_learns_on_cpu(tiny_data, tmp_path):
    # --amp 1 on the CPU: the forward runs in bfloat16 and the loss still falls well below chance.
    training.train(hp_for(tmp_path, epochs=25, lr=1e-2, amp=1))
    rows = list(csv.DictReader(open(tmp_path / "logs" / "tiny.csv")))
    first, last = float(rows[0]["train_loss"]), float(rows[-1]["train_loss"])
    assert first > 2.0 and last < 0.8, (first, last)
    model = load_checkpoint(tmp_path / "exp" / "tiny" / "last.pt")
    assert next(model.parameters()).dtype == torch.float32          # weights stay float32


def test_transposition_moves_notes_key_and_chords_but_not_drums():
    from vidscore.music import chords as CH
    from vidscore.music.representation import init_tokens, notes_to_tokens
    notes = np.array([[0, 60, 4, D.PIANO, 80], [0, 64, 4, D.PIANO, 80], [0, 67, 4, D.PIANO, 80],
                      [0, 36, 4, D.DRUMS, 80], [4, 69, 4, D.PIANO, 80], [8, 125, 4, D.PIANO, 80]])
    song = notes_to_tokens(notes, preset="bmt")
    x, y = song[None, :-1].astype(np.int64), song[None, 1:].astype(np.int64)
    init = init_tokens([D.PIANO, D.DRUMS], 22, 0, 0)[None].astype(np.int64)   # A minor
    x0 = x.copy()
    shifts = training.transpose_songs(x, y, init, np.random.default_rng(3), 6)
    k = int(shifts[0])
    assert -6 <= k <= 2 and k != 0                      # pitch 125 leaves room for +2 at most
    note = (x0[0, :, D.COL_TYPE] == D.TYPE_NOTE)
    drum = note & (x0[0, :, D.COL_INSTRUMENT] == D.DRUMS)
    assert (x[0, note & ~drum, D.COL_PITCH] == x0[0, note & ~drum, D.COL_PITCH] + k).all()
    assert (x[0, drum, D.COL_PITCH] == x0[0, drum, D.COL_PITCH]).all()
    assert (y[0, :-1] == x[0, 1:]).all()                   # x and y moved together
    assert init[0, 1, 1] == 13 + (9 + k) % 12               # A minor + k, still minor
    # chorder reads the first half bar (C E G on beat 0, A on beat 1) as one chord, A_m7
    a_min7 = CH.chord_id(9, "m7")
    assert x0[0, 0, D.COL_CHORD] == a_min7 and x[0, 0, D.COL_CHORD] == CH.chord_id((9 + k) % 12, "m7")
    # a song already at the top of the range can only go down
    top = notes_to_tokens(np.array([[0, 127, 4, D.PIANO], [4, 120, 4, D.PIANO]]))
    xt, yt = top[None, :-1].astype(np.int64), top[None, 1:].astype(np.int64)
    it = init_tokens([D.PIANO], 1, 0)[None].astype(np.int64)
    for seed in range(20):
        s = training.transpose_songs(xt.copy(), yt.copy(), it.copy(), np.random.default_rng(seed), 6)
        assert -6 <= s[0] <= 0


def test_a_fine_tune_grows_the_genre_vocabulary_its_parent_never_saw():
    """A corpus with more genres than the parent checkpoint knew: the genre embedding gets the new
    rows at the mean of the learnt ones, the learnt rows unchanged, and the model runs on them."""
    import torch
    from vidscore.model.cmt import CMT, ModelConfig
    torch.manual_seed(0)
    m = CMT(ModelConfig(n_layer=1, d_model=32, n_head=2, d_ff=64, emb_sizes=[8, 4, 8, 16, 8, 4, 8],
                        time_emb_size=8, init_emb_size=8, init_n_class=[9, 25, 6]))
    old = m.init_emb_genre.lut.weight.detach().clone()
    assert m.grow_init_vocab("genre", 16) and m.config.init_n_class == [16, 25, 6]
    w = m.init_emb_genre.lut.weight.detach()
    assert w.shape == (16, 8) and torch.equal(w[:9], old)
    assert torch.allclose(w[9:], old.mean(0).expand(7, -1))
    assert not m.grow_init_vocab("genre", 12)                       # never shrinks
    init = torch.zeros(1, 7, 3, dtype=torch.long)
    init[0, 0, 0] = 15                                              # a genre id only the grown table has
    toks = torch.ones(1, 4, 9, dtype=torch.long)
    out = m(toks, toks, init)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert m.init_emb_genre.lut.weight.requires_grad                # it trains
