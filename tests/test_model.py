"""The CMT model: logits, recurrent generation, loss, checkpoints of both formats."""
import math

import pytest
import torch

from vidscore.model import attention
from vidscore.model import cmt as M
from vidscore.cli import UserError

FT_SKIP = "pytorch-fast-transformers is not installed (its causal_product kernel cannot be imported)"
SMALL = dict(n_class=[18, 3, 18, 40, 18, 6, 20, 102, 600], init_n_class=[7, 1, 6],
             emb_sizes=[8, 4, 8, 16, 8, 4, 8], time_emb_size=16, init_emb_size=8,
             d_model=64, n_layer=3, n_head=8, d_ff=96, dropout=0.1)


def small_model(seed=0, **over):
    torch.manual_seed(seed)
    return M.CMT(M.ModelConfig(**{**SMALL, **over})).eval()


def tokens(cfg, B, L, seed=1):
    g = torch.Generator().manual_seed(seed)
    cols = [torch.randint(0, n, (B, L), generator=g) for n in cfg.n_class[:8]]
    cols.append(torch.randint(0, 4000, (B, L), generator=g).sort(dim=1).values)  # i_beat grows
    return torch.stack(cols, -1)


def init_rows(cfg, B, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, n, (B, 7), generator=g) for n in cfg.init_n_class], -1)


def batch(cfg, B=2, L=23):
    seq = tokens(cfg, B, L + 1)
    return seq[:, :-1], seq[:, 1:], init_rows(cfg, B)


@pytest.fixture
def one_thread():
    """Step-by-step loops run many tiny ops: one thread avoids waiting on a busy second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


# ---- structure -------------------------------------------------------------------------
def test_published_size_parameter_count():
    m = M.CMT()
    d, ff, L = 512, 2048, 12
    lin = lambda i, o: i * o + o  # noqa: E731
    emb = (18 * 64 + 3 * 32 + 18 * 64 + 129 * 512 + 18 * 128 + 6 * 32 + 20 * 64 + 102 * 256
           + (7 + 1 + 6) * 64)
    layers = L * (4 * lin(d, d) + lin(d, ff) + lin(ff, d) + 2 * 2 * d)
    rest = (lin(192, d) + lin(896, d) + lin(256, d) + 2 * d + lin(544, d)
            + sum(lin(d, n) for n in (18, 3, 18, 129, 18, 6, 20)))
    assert M.count_parameters(m) == emb + layers + rest == 39_006_324


def test_state_dict_uses_released_key_names_and_no_positional_table():
    keys = set(small_model().state_dict())
    expected = {f"{m}.lut.weight" for m in (
        "init_emb_genre", "init_emb_key", "init_emb_instrument", "encoder_emb_barbeat", "encoder_emb_type",
        "encoder_emb_beat_density", "encoder_emb_pitch", "encoder_emb_duration", "encoder_emb_instr",
        "encoder_emb_onset_density", "encoder_emb_time_encoding")}
    linears = ["init_in_linear", "encoder_in_linear", "encoder_time_linear", "transformer_encoder.norm",
               "project_concat_type"] + [f"proj_{f}" for f in (
                   "barbeat", "type", "beat_density", "pitch", "duration", "instr", "onset_density")]
    for n in range(3):
        p = f"transformer_encoder.layers.{n}."
        linears += [p + f"attention.{x}_projection" for x in ("query", "key", "value", "out")]
        linears += [p + x for x in ("linear1", "linear2", "norm1", "norm2")]
    expected |= {f"{m}.{w}" for m in linears for w in ("weight", "bias")}
    assert keys == expected


def test_positional_encoding_matches_the_original_table():
    d, n = 64, 300
    pe = torch.zeros(n, d)  # the standard table, built the textbook way
    pos = torch.arange(n, dtype=torch.float).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    enc = M.BeatPositionalEncoding(d)
    assert torch.allclose(enc.table(n), pe, atol=1e-6)
    idx = torch.tensor([[3, 3, 17], [0, 299, 5]])
    assert torch.allclose(enc(idx), pe[idx], atol=1e-6)
    # hand values: position 1, dims 0/1 are sin(1), cos(1)
    assert enc(torch.tensor([1]))[0, :2].tolist() == pytest.approx([math.sin(1), math.cos(1)], abs=1e-6)


# ---- teacher-forced logits -------------------------------------------------------------
def test_forward_keys_shapes_and_init_removed():
    m = small_model()
    x, y, init = batch(m.config, B=2, L=11)
    with torch.no_grad():
        out = m(x, y, init)
    assert list(out) == ["type", "barbeat", "density", "pitch", "duration", "instr", "strength"]
    for k, n in zip(M.LOGIT_KEYS, (3, 18, 18, 40, 18, 6, 20)):
        assert out[k].shape == (2, 11, n)


def test_causality_and_teacher_forcing():
    m = small_model()
    x, y, init = batch(m.config, B=1, L=12)
    with torch.no_grad():
        base = m(x, y, init)
        x2 = x.clone()
        x2[:, 8:] = tokens(m.config, 1, 4, seed=9)  # change the future of position 7
        later = m(x2, y, init)
        assert max_diff({k: v[:, :8] for k, v in base.items()}, {k: v[:, :8] for k, v in later.items()}) == 0
        assert (base["pitch"][:, 8:] - later["pitch"][:, 8:]).abs().max() > 1e-3
        # the type-conditioned heads read the target type; nothing else of y matters
        y2 = y.clone()
        y2[..., 1] = (y[..., 1] + 1) % 3
        flipped = m(x, y2, init)
        assert torch.equal(flipped["type"], base["type"])
        assert (flipped["pitch"] - base["pitch"]).abs().max() > 1e-3
        y3 = y.clone()
        y3[..., [0, 2, 3, 4, 5, 6, 7, 8]] = 0
        assert max_diff(m(x, y3, init), base) == 0
        # the init rows condition everything
        init2 = init.clone()
        init2[:, 0, 0] = (init[:, 0, 0] + 1) % 7
        assert (m(x, y, init2)["type"] - base["type"]).abs().max() > 1e-4


def test_loss_matches_a_hand_written_masked_cross_entropy():
    m = small_model()
    x, y, init = batch(m.config, B=2, L=9)
    mask = torch.ones(2, 9)
    mask[0, 6:] = 0
    mask[1, 2:] = 0
    with torch.no_grad():
        total, parts = m.loss(x, y, mask, init)
        logits = m(x, y, init)
    expected = {}
    for name in M.LOGIT_KEYS:
        col = M.COLUMNS.index(name)
        logp = logits[name].log_softmax(-1)
        s, n = 0.0, 0
        for b in range(2):
            for t in range(9):
                if mask[b, t]:
                    s -= logp[b, t, y[b, t, col]].item()
                    n += 1
        expected[name] = s / n
    assert parts == pytest.approx(expected, rel=1e-5)
    assert total.item() == pytest.approx(sum(expected.values()) / 7, rel=1e-5)


def test_loss_backward_and_dropout_in_training_mode():
    m = small_model().train()
    x, y, init = batch(m.config, B=2, L=10)
    total, _ = m.loss(x, y, torch.ones(2, 10), init)
    total.backward()
    assert m.transformer_encoder.layers[0].attention.query_projection.weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert max_diff(m(x, y, init), m(x, y, init)) > 0  # dropout active


# ---- recurrent generation == parallel forward -----------------------------------------
def _step_logits(m, x, y, init):
    state = m.start(init)
    rows = []
    for t in range(x.shape[1]):
        h, state = m.step(x[:, t], state)
        rows.append({"type": m.predict_type(h), **m.predict_fields(h, y[:, t, 1])})
    return {k: torch.stack([r[k] for r in rows], 1) for k in rows[0]}


def test_recurrent_steps_give_the_parallel_logits(one_thread):
    m = small_model()
    x, y, init = batch(m.config, B=3, L=40)
    with torch.no_grad():
        par = m(x, y, init)
    assert max_diff(_step_logits(m, x, y, init), par) <= 1e-4


def test_recurrent_steps_published_size(one_thread):
    torch.manual_seed(0)
    m = M.CMT().eval()
    x, y, init = batch(m.config, B=2, L=12)
    with torch.no_grad():
        m.set_attention("torch")
        par = m(x, y, init)
        if attention.fast_transformers_available():  # the original's kernel agrees too
            m.set_attention("fast_transformers")
            assert max_diff(m(x, y, init), par) <= 1e-4
    assert max_diff(_step_logits(m, x, y, init), par) <= 1e-4


@pytest.mark.skipif(not attention.fast_transformers_available(), reason=FT_SKIP)
def test_kernel_backend_equals_torch_backend_and_steps(one_thread):
    m = small_model()
    x, y, init = batch(m.config, B=2, L=70)
    with torch.no_grad():
        m.set_attention("torch")
        ref = m(x, y, init)
        m.set_attention("fast_transformers")
        ker = m(x, y, init)
    assert max_diff(ker, ref) <= 1e-4
    assert max_diff(_step_logits(m, x, y, init), ker) <= 1e-4


def test_prefill_then_step_and_select_state(one_thread):
    m = small_model()
    x, y, init = batch(m.config, B=3, L=15)
    with torch.no_grad():
        par = m(x, y, init)
    state = m.start(init)
    h, state = m.prefill(x[:, :10], state)
    assert (m.predict_type(h) - par["type"][:, :10]).abs().max() <= 1e-4
    kept = M.select_state(state, torch.tensor([2, 0]))
    for t in range(10, 15):
        h, kept = m.step(x[[2, 0], t], kept)
    assert (m.predict_type(h) - par["type"][[2, 0], 14]).abs().max() <= 1e-4


def test_fused_projection_follows_weight_updates(one_thread):
    m = small_model()
    x, y, init = batch(m.config, B=1, L=6)
    _step_logits(m, x, y, init)  # builds the fused cache
    with torch.no_grad():
        for layer in m.transformer_encoder.layers:
            layer.attention.key_projection.weight.mul_(1.5)
        m.proj_pitch.weight.mul_(1.5)          # the fused field heads follow too
        m.proj_duration.bias.add_(0.5)
        par = m(x, y, init)
    assert max_diff(_step_logits(m, x, y, init), par) <= 1e-4


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_frozen_step_is_the_eager_step(one_thread, precision):
    """CMT.freeze traces the step and the heads: the same logits bit for bit (traced at batch 1,
    run here at batch 3), and the traces go wherever the model could change."""
    import copy
    import pickle
    eager = small_model().eval()
    if precision == "int8":
        eager.quantize_int8()
    frozen = copy.deepcopy(eager).freeze()
    assert "_traced" in frozen.__dict__
    x, y, init = batch(eager.config, B=3, L=30)
    a, b = _step_logits(frozen, x, y, init), _step_logits(eager, x, y, init)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert frozen.__dict__["_traced"][3] is not None                    # a trace for this batch size
    assert set(frozen.state_dict()) == set(eager.state_dict())          # no entries for the traces
    assert "_traced" not in copy.deepcopy(frozen).__dict__              # copies and pickles drop them
    assert "_traced" not in pickle.loads(pickle.dumps(frozen)).__dict__
    frozen.train()                                                      # training mode: eager again
    assert "_traced" not in frozen.__dict__
    if precision == "float32":
        frozen.eval().freeze().to(torch.float64)                        # a new precision: eager again
        assert "_traced" not in frozen.__dict__
        frozen.float().freeze().quantize_int8()
        assert "_traced" not in frozen.__dict__


# ---- checkpoints: our format ------------------------------------------------------------
def test_save_load_ours_identical_logits_and_metadata(tmp_path):
    m = small_model(seed=3)
    x, y, init = batch(m.config, B=2, L=12)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    m.train()
    m.loss(x, y, torch.ones(2, 12), init)[0].backward()
    opt.step()
    m.eval()
    vocab = {"pitch": ["none"] + [f"Note_Pitch_{i}" for i in range(39)], "genre": {"Pop": 5}}
    path = tmp_path / "ckpt" / "loss_8_params.pt"
    M.save_checkpoint(path, m, vocab=vocab, optimizer=opt, epoch=4, step=1234, val_loss=torch.tensor(0.75),
                      extra={"note": "test"})
    assert sorted(p.name for p in path.parent.iterdir()) == ["loss_8_params.pt"]  # no temp left behind

    raw = torch.load(path, weights_only=True)  # our format is plain data + tensors
    assert "encoder_pos_emb.pe" not in raw["model"]
    assert raw["epoch"] == 4 and raw["config"]["n_layer"] == 3

    got = M.load_checkpoint(path)
    assert not got.training
    assert got.config == m.config and got.vocab == vocab
    info = got.checkpoint_info
    assert (info["format"], info["epoch"], info["step"], info["val_loss"], info["extra"]) == \
        ("ours", 4, 1234, 0.75, {"note": "test"})
    with torch.no_grad():
        assert max_diff(got(x, y, init), m(x, y, init)) == 0
    opt2 = torch.optim.Adam(got.parameters(), lr=1e-4)
    opt2.load_state_dict(info["optimizer"])
    s1, s2 = opt.state_dict()["state"][0], opt2.state_dict()["state"][0]
    assert torch.equal(s1["exp_avg"], s2["exp_avg"]) and float(s1["step"]) == float(s2["step"]) == 1.0


def test_half_checkpoint_is_smaller_and_close(tmp_path):
    m = small_model(seed=4)
    x, y, init = batch(m.config, B=1, L=10)
    M.save_checkpoint(tmp_path / "full.pt", m)
    M.save_checkpoint(tmp_path / "half.pt", m, half=True)
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size
    got = M.load_checkpoint(tmp_path / "half.pt")
    assert next(got.parameters()).dtype == torch.float32
    with torch.no_grad():
        assert max_diff(got(x, y, init), m(x, y, init)) < 0.05


def test_save_rejects_values_the_safe_loader_could_not_read(tmp_path):
    with pytest.raises(TypeError, match="vocab"):
        M.save_checkpoint(tmp_path / "c.pt", small_model(), vocab={"pitch": {1, 2}})
    assert not list(tmp_path.iterdir())


def test_config_round_trip_and_unknown_fields():
    cfg = M.ModelConfig(**SMALL)
    assert M.ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="n_layers"):
        M.ModelConfig.from_dict({"n_layers": 3})


# ---- checkpoints: the released format ---------------------------------------------------
def released_state_dict(m, max_pos=1000, aliases=False):
    """A state dict laid out like the original's DataParallel save, built by hand."""
    sd = {}
    for k, v in m.state_dict().items():
        if aliases:  # the spelling of another version of the original code
            k = k.replace("encoder_emb_beat_density", "encoder_emb_density").replace(
                "proj_onset_density", "proj_strength")
        sd["module." + k] = v.clone()
    d = m.config.d_model
    pe = torch.zeros(max_pos, d)
    pos = torch.arange(max_pos, dtype=torch.float).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    sd["module.encoder_pos_emb.pe"] = pe.unsqueeze(0)
    return sd


@pytest.mark.parametrize("aliases,legacy", [(False, False), (True, True)])
def test_released_format_loads_with_sizes_from_shapes(tmp_path, aliases, legacy):
    m = small_model(seed=5, n_class=[18, 3, 17, 50, 18, 6, 21, 102, 600], n_layer=2)
    x, y, init = batch(m.config, B=2, L=14)
    path = tmp_path / "released.pt"
    # legacy: the pre-1.6 (non-zip) serialisation an old PyTorch would have written
    torch.save(released_state_dict(m, aliases=aliases), path, _use_new_zipfile_serialization=not legacy)
    got = M.load_checkpoint(path)
    c = got.config
    assert c.n_class[:8] == [18, 3, 17, 50, 18, 6, 21, 102] and c.init_n_class == [7, 1, 6]
    assert (c.n_layer, c.d_model, c.n_head, c.d_ff, c.max_pos) == (2, 64, 8, 96, 1000)
    assert c.emb_sizes == SMALL["emb_sizes"] and c.time_emb_size == 16 and c.init_emb_size == 8
    assert got.checkpoint_info["format"] == "released" and got.vocab is None and not got.training
    with torch.no_grad():
        assert max_diff(got(x, y, init), m(x, y, init)) == 0
    # and it re-saves in our format
    M.save_checkpoint(tmp_path / "ours.pt", got)
    with torch.no_grad():
        assert max_diff(M.load_checkpoint(tmp_path / "ours.pt")(x, y, init), m(x, y, init)) == 0


def test_released_format_with_a_foreign_positional_table_is_refused(tmp_path):
    sd = released_state_dict(small_model())
    sd["module.encoder_pos_emb.pe"] = torch.randn_like(sd["module.encoder_pos_emb.pe"])
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="positional table"):
        M.load_checkpoint(tmp_path / "bad.pt")


def test_released_format_missing_weights_is_a_user_error(tmp_path):
    sd = released_state_dict(small_model())
    del sd["module.transformer_encoder.layers.1.linear2.bias"]
    torch.save(sd, tmp_path / "cut.pt")
    with pytest.raises(UserError, match="linear2.bias") as e:
        M.load_checkpoint(tmp_path / "cut.pt")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("content", [b"not a checkpoint at all", None, {"weights": [1, 2]}])
def test_unreadable_or_unknown_files_give_one_line_errors(tmp_path, content):
    path = tmp_path / "x.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(UserError) as e:
        M.load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


# ---- vocabulary checks -----------------------------------------------------------------
def test_check_vocab_names_the_field_and_both_sizes():
    m = M.CMT(M.ModelConfig(**SMALL))
    M.check_vocab(m, [18, 3, 18, 40, 18, 6, 20, 102, 99999], "data")  # fits; i_beat is free
    M.check_vocab(m.config, {"bar-beat": 18, "p_beat": 101, "genre": 7}, "video.npz")
    with pytest.raises(UserError) as e:
        M.check_vocab(m, {"barbeat": 18, "pitch": 129}, "train_data.npz")
    msg = str(e.value)
    assert "train_data.npz" in msg and "'pitch'" in msg and "129" in msg and "40" in msg
    with pytest.raises(UserError, match="'p_beat'.*110.*102"):
        M.check_vocab(m, {"beat_timing": 110}, "video.npz")
    with pytest.raises(UserError, match="'genre'.*9.*7"):
        M.check_vocab(m, {"genre": 9}, "data")
    with pytest.raises(ValueError):
        M.check_vocab(m, {"tempo": 3}, "data")


def test_unavailable_backend_is_a_user_error():
    m = small_model()
    with pytest.raises(UserError):
        m.set_attention("flash")
    if not attention.fast_transformers_available():
        with pytest.raises(UserError, match="not installed"):
            m.set_attention("fast_transformers")
