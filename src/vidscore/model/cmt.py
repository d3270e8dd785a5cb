"""The Controllable Music Transformer (SPEC sections 3 and 8): config, model, loss, checkpoints.

Input rows are compound tokens in a representation preset's column order (dictionary_mix;
``cmt`` has 9 int64 columns, ``bmt`` appends tempo, chord and velocity):

    0 barbeat  1 type  2 density  3 pitch  4 duration  5 instr  6 strength
    7 p_beat / p_time (beat timing, embedded)  8 i_beat (absolute tick, indexes the positional
    encoding)  [9 tempo  10 chord  11 velocity]

and a block of "init" rows [genre, key, instrument(, emotion)] (7 of them in the published
setup) that is prepended to every sequence.

The model builds its embeddings and heads from the preset's field list, so one code path
serves both presets.  Data flow (names are the released checkpoint's module names, so its
state dict loads without a renaming table; bmt adds encoder_emb_/proj_ tempo, chord, velocity
and init_emb_emotion):

    tokens -> one embedding per field (lookup * sqrt(dim)), concatenated -> encoder_in_linear
           + encoder_time_linear(beat-timing embedding) + sinusoidal PE[i_beat] -> dropout
    init   -> one embedding per init field, concatenated -> init_in_linear   (no PE)
    [init ; tokens] -> transformer_encoder: n_layer post-LN blocks with causal linear
           attention (attention.py) + GELU feed-forward, final LayerNorm -> h
    type logits = proj_type(h)
    other logits = proj_<field>(project_concat_type([h ; type embedding]))
           where the type is the teacher-forced target (training) or the sampled one.

Two ways to run it:

* ``model(x, y, init)``: teacher-forced logits for whole sequences (training, checks);
* ``start(init)`` then ``step(tokens, state)`` per compound token: the recurrent form of
  linear attention, constant work per token, batched over songs (generation).

Checkpoints: :func:`save_checkpoint` writes our format (the config names the preset),
:func:`load_checkpoint` reads it and the released CMT file (a DataParallel state dict).
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidscore.model import attention
from vidscore import constants as D
from vidscore.cli import UserError, atomic_path

_LINEAR_INT8 = torch.ops.quantized.linear_dynamic.default   # (x, packed weights, reduce_range)
_TRACE_KEYS = ("_traced", "_type_logits")   # CMT.freeze's traces and the last traced step's type logits

# Field names of the cmt preset, in the model's column order.
COLUMNS = ("barbeat", "type", "density", "pitch", "duration", "instr", "strength", "p_beat", "i_beat")
# The keys of the cmt logits dict, type first (it is predicted first).
LOGIT_KEYS = D.PRESETS["cmt"].heads
# Other spellings accepted by check_vocab.
_ALIASES = {"bar-beat": "barbeat", "bar_beat": "barbeat", "beat_density": "density",
            "instrument": "instr", "onset_density": "strength", "time_encoding": "p_beat",
            "beat_timing": "p_beat", "init_genre": "genre", "init_key": "key",
            "init_instrument": "init_instr", "init_emotion": "emotion"}

CHECKPOINT_FORMAT = "cmt-checkpoint"
CHECKPOINT_VERSION = 1
RELEASED_HEADS = 8  # not recoverable from weight shapes; the published value


@dataclass
class ModelConfig:
    """Sizes of the model; the defaults are the published ones (released checkpoint)."""
    # classes per column of the preset; n_class[8] = max i_beat + 1 is informational (not embedded)
    n_class: list[int] = field(default_factory=lambda: [18, 3, 18, 129, 18, 6, 20, 102, 5025])
    init_n_class: list[int] = field(default_factory=lambda: [7, 1, 6])  # genre, key, instrument(, emotion)
    # embedding sizes of the preset's fields: barbeat, type, density, pitch, duration, instr,
    # strength (, tempo, chord, velocity)
    emb_sizes: list[int] = field(default_factory=lambda: [64, 32, 64, 512, 128, 32, 64])
    time_emb_size: int = 256      # p_beat / p_time embedding
    init_emb_size: int = 64       # each of genre, key, instrument
    d_model: int = 512
    n_layer: int = 12
    n_head: int = 8
    d_ff: int = 2048
    dropout: float = 0.1
    max_pos: int = 20000          # rows of the original's positional table (see _beat_pe)
    attention: str = "auto"       # "auto" | "torch" | "fast_transformers"
    preset: str = "cmt"           # representation preset (dictionary_mix.PRESETS)

    @property
    def layout(self) -> "D.Preset":
        return D.preset(self.preset)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config field(s): {', '.join(unknown)}")
        return cls(**{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in d.items()})

    def validate(self) -> None:
        P = self.layout
        if len(self.n_class) < P.n_cols - 1 or len(self.emb_sizes) != len(P.fields) \
                or len(self.init_n_class) != len(P.init_fields):
            raise ValueError(f"the {P.name} preset needs n_class of {P.n_cols} entries, emb_sizes "
                             f"{len(P.fields)}, init_n_class {len(P.init_fields)}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
        if self.d_model % 2:
            raise ValueError("d_model must be even (sinusoidal positional encoding)")
        try:
            attention.resolve_backend(self.attention)
        except ValueError as e:  # unknown name, or fast_transformers asked for but missing
            raise UserError(str(e)) from None


class Embeddings(nn.Module):
    """Lookup table scaled by sqrt(dim)."""

    def __init__(self, n_token: int, dim: int):
        super().__init__()
        weight = torch.empty(n_token, dim)
        if not weight.is_meta:   # nn.Embedding's own init, N(0, 1); a meta model (shapes only,
            nn.init.normal_(weight)   # check_config) skips it: on meta it imports torch._dynamo
        self.lut = nn.Embedding.from_pretrained(weight, freeze=False)
        self.scale = math.sqrt(dim)

    def forward(self, x):
        return self.lut(x) * self.scale


class BeatPositionalEncoding(nn.Module):
    """Sinusoidal encoding (base 10000) indexed by i_beat; computed on the fly.

    Same values as the original's 20000 x d_model table (PE[p, 2i] = sin(p * w_i),
    PE[p, 2i+1] = cos(p * w_i)), without storing the 40 MB buffer; positions past the
    table (where the original crashed) follow the same formula.
    """

    def __init__(self, d_model: int):
        super().__init__()
        # (computed on the CPU whatever the default device: on a meta device, for check_config,
        # these ops would import torch._dynamo, 0.8 s; .to() moves the buffer like any other)
        div = torch.exp(torch.arange(0, d_model, 2, device="cpu").float() * (-math.log(10000.0) / d_model))
        self.register_buffer("div_term", div, persistent=False)

    def forward(self, index):
        angle = index.unsqueeze(-1).to(self.div_term.dtype) * self.div_term
        return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2)

    def table(self, n: int) -> torch.Tensor:
        return self(torch.arange(n, device=self.div_term.device))


def _linear(module, x):
    """A Linear layer in the hot loop: F.linear on its tensors (no module-call overhead), or,
    once CMT.quantize_int8 has replaced it, the int8 kernel called directly on its packed
    weights: the same call as the quantized module's forward (reduce_range, float32 out)
    without the module call and the operator packet's Python dispatch checks.  The kernel
    quantizes its whole input with one scale, so a batch is split into its songs (rows along
    the first dimension), each quantized as it would be alone: song k is the same whatever the
    number of songs (batch 8, published size: 0.37 -> 0.72 ms per token per song)."""
    if type(module) is nn.Linear:
        return F.linear(x, module.weight, module.bias)
    packed = module.__dict__.get("int8_packed")
    if packed is not None:
        if x.shape[0] == 1:
            return _LINEAR_INT8(x, packed, True)
        return torch.cat([_LINEAR_INT8(row, packed, True) for row in x.split(1)])
    return module(x)


class CausalLinearSelfAttention(nn.Module):
    """Multi-head self-attention with the causal linear kernel (attention.py)."""

    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query_projection = nn.Linear(d_model, d_model)
        self.key_projection = nn.Linear(d_model, d_model)
        self.value_projection = nn.Linear(d_model, d_model)
        self.out_projection = nn.Linear(d_model, d_model)
        self._fused = (None, None)  # (key, (weight, bias)) of the fused q/k/v projection
        self.qkv_int8 = None        # the fused q/k/v projection in int8 (CMT.quantize_int8)

    def forward(self, x, backend="torch", state=None, return_state=False):
        B, L, d = x.shape
        H = self.n_head
        q = self.query_projection(x).view(B, L, H, -1).transpose(1, 2)
        k = self.key_projection(x).view(B, L, H, -1).transpose(1, 2)
        v = self.value_projection(x).view(B, L, H, -1).transpose(1, 2)
        out = attention.causal_linear_attention(q, k, v, backend=backend, initial_state=state,
                                                return_state=return_state)
        if return_state:
            out, state = out
        out = self.out_projection(out.transpose(1, 2).reshape(B, L, d))
        return (out, state) if return_state else out

    def fused_qkv(self):
        """One (3d x d) weight for q, k, v: a single matmul per layer per generated token.

        Cached, and rebuilt whenever a projection's parameters change (tensor versions).
        """
        params = [self.query_projection.weight, self.key_projection.weight,
                  self.value_projection.weight, self.query_projection.bias,
                  self.key_projection.bias, self.value_projection.bias]
        key = tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in params)
        if self._fused[0] != key:
            with torch.no_grad():
                self._fused = (key, (torch.cat(params[:3]), torch.cat(params[3:])))
        return self._fused[1]

    def step(self, x, state):
        B, d = x.shape
        if self.qkv_int8 is not None:   # int8 weights (CMT.quantize_int8): modules, not F.linear
            qkv = _linear(self.qkv_int8, x)
        else:
            qkv = F.linear(x, *self.fused_qkv())
        q, k, v = qkv.view(B, 3, self.n_head, -1).unbind(1)
        out, state = attention.recurrent_step(q, k, v, state)
        return _linear(self.out_projection, out.reshape(B, d)), state


class EncoderLayer(nn.Module):
    """Post-LayerNorm block: x = LN1(x + attn(x)); x = LN2(x + FFN(x)), GELU."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention = CausalLinearSelfAttention(cfg.d_model, cfg.n_head)
        self.linear1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.linear2 = nn.Linear(cfg.d_ff, cfg.d_model)
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def _feed_forward(self, x):
        return self.dropout(self.linear2(self.dropout(F.gelu(self.linear1(x)))))

    def forward(self, x, backend="torch", state=None, return_state=False):
        a = self.attention(x, backend, state, return_state)
        if return_state:
            a, state = a
        x = self.norm1(x + self.dropout(a))
        x = self.norm2(x + self._feed_forward(x))
        return (x, state) if return_state else x

    def step(self, x, state):
        """One token per sequence, x (B, d_model).  Plain F.* calls: this is the hot loop."""
        a, state = self.attention.step(x, state)
        p = self.dropout.p if self.training else 0.0
        if p:
            a = F.dropout(a, p, True)
        n1, n2 = self.norm1, self.norm2
        x = F.layer_norm(x + a, n1.normalized_shape, n1.weight, n1.bias, n1.eps)
        y = F.gelu(_linear(self.linear1, x))
        if p:
            y = F.dropout(y, p, True)
        y = _linear(self.linear2, y)
        if p:
            y = F.dropout(y, p, True)
        return F.layer_norm(x + y, n2.normalized_shape, n2.weight, n2.bias, n2.eps), state


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_layer))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x, backend="torch", states=None, return_state=False):
        new_states = []
        for i, layer in enumerate(self.layers):
            st = states[i] if states is not None else None
            if return_state:
                x, st = layer(x, backend, st, True)
                new_states.append(st)
            else:
                x = layer(x, backend, st)
        x = self.norm(x)
        return (x, new_states) if return_state else x

    def step(self, x, states):
        new_states = []
        for layer, st in zip(self.layers, states):
            x, st = layer.step(x, st)
            new_states.append(st)
        return self.norm(x), new_states


class CMT(nn.Module):
    """The compound-word linear Transformer of CMT.

    Attributes set by :func:`load_checkpoint`: ``config``, ``vocab`` (dict or None) and
    ``checkpoint_info`` (dict).  The generation API (start/step/prefill/predict_*) runs
    under ``torch.inference_mode``.
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        cfg = config or ModelConfig()
        cfg.validate()
        self.config = cfg
        self.vocab: dict | None = None
        self.checkpoint_info: dict = {}
        n, e, P = cfg.n_class, cfg.emb_sizes, cfg.layout
        self.layout = P

        for name, k in zip(P.init_fields, cfg.init_n_class):
            setattr(self, f"init_emb_{name}", Embeddings(k, cfg.init_emb_size))
        self.init_in_linear = nn.Linear(len(P.init_fields) * cfg.init_emb_size, cfg.d_model)

        for f, size in zip(P.fields, e):
            setattr(self, f"encoder_emb_{f.module}", Embeddings(n[f.col], size))
        self.encoder_emb_time_encoding = Embeddings(n[P.time_col], cfg.time_emb_size)
        self.encoder_pos_emb = BeatPositionalEncoding(cfg.d_model)
        self.encoder_in_linear = nn.Linear(sum(e), cfg.d_model)
        self.encoder_time_linear = nn.Linear(cfg.time_emb_size, cfg.d_model)
        self.emb_dropout = nn.Dropout(cfg.dropout)

        self.transformer_encoder = Encoder(cfg)

        self.project_concat_type = nn.Linear(cfg.d_model + e[1], cfg.d_model)
        for f in P.fields:   # (type included: its head reads h directly)
            if f.head:
                setattr(self, f"proj_{f.module}", nn.Linear(cfg.d_model, n[f.col]))
        self._emb = [(f"encoder_emb_{f.module}", f.col) for f in P.fields]
        self._init_emb = [f"init_emb_{name}" for name in P.init_fields]
        self._heads = [(f.name, f"proj_{f.module}") for f in P.fields if f.head and f.name != "type"]

    # ---- embeddings -------------------------------------------------------------------
    def embed_tokens(self, x):
        """(..., n_cols) compound tokens -> (..., d_model) inputs of the stack (dropout applied)."""
        embs = torch.cat([getattr(self, m)(x[..., col]) for m, col in self._emb], dim=-1)
        t = self.layout.time_col
        h = _linear(self.encoder_in_linear, embs) + _linear(self.encoder_time_linear,
                                                             self.encoder_emb_time_encoding(x[..., t]))
        return self.emb_dropout(h + self.encoder_pos_emb(x[..., D.COL_IBEAT]))

    def embed_init(self, init):
        """(..., n_init_fields) rows [genre, key, instrument(, emotion)] -> (..., d_model); no PE."""
        embs = torch.cat([getattr(self, m)(init[..., i]) for i, m in enumerate(self._init_emb)], dim=-1)
        return _linear(self.init_in_linear, embs)

    def backend(self, device=None) -> str:
        return attention.resolve_backend(self.config.attention, device)

    def set_attention(self, name: str) -> None:
        """Choose the training attention backend; raises UserError if unavailable."""
        try:
            attention.resolve_backend(name)
        except ValueError as e:
            raise UserError(str(e)) from None
        self.config.attention = name

    # ---- teacher-forced (training) path -----------------------------------------------
    def forward_hidden(self, x, init):
        """Hidden states (B, L, d_model) after the final LayerNorm, init positions removed."""
        h = torch.cat([self.embed_init(init), self.embed_tokens(x)], dim=1)
        h = self.transformer_encoder(h, self.backend(x.device))
        return h[:, init.shape[1]:]

    def heads(self, h, type_ids) -> dict[str, torch.Tensor]:
        """Type-conditioned heads from hidden states and the (given) type of each position."""
        y = _linear(self.project_concat_type, torch.cat([h, self.encoder_emb_type(type_ids)], dim=-1))
        return {name: _linear(getattr(self, m), y) for name, m in self._heads}

    def forward(self, x, y, init) -> dict[str, torch.Tensor]:
        """Teacher-forced logits.

        x, y: (B, L, n_cols) int64 inputs and targets (y = x shifted by one); init: (B, n_init,
        n_init_fields).  Returns one (B, L, vocab) tensor per predicted field of the preset (type,
        barbeat, density, pitch, duration, instr, strength (, tempo, chord, velocity)); the
        type-conditioned heads see the target type y[..., 1].
        """
        h = self.forward_hidden(x, init)
        return {"type": self.proj_type(h), **self.heads(h, y[..., 1])}

    def loss(self, x, y, mask, init) -> tuple[torch.Tensor, dict[str, float]]:
        """SPEC section 4: :func:`field_losses` of the teacher-forced logits; total = their mean."""
        parts = field_losses(self(x, y, init), y, mask, self.layout)
        total = torch.stack(list(parts.values())).mean()
        return total, {k: float(v.detach()) for k, v in parts.items()}

    # ---- recurrent (generation) path --------------------------------------------------
    @torch.inference_mode()
    def start(self, init):
        """Run the init rows (B, n_init, n_init_fields) through the stack; returns the per-layer state.

        The state is a list (one entry per layer) of (S (B,H,E,E), Z (B,H,E)) tensors;
        index both with a batch index to keep or drop songs (see :func:`select_state`).
        """
        _, state = self.transformer_encoder(self.embed_init(init), "torch", None, True)
        return state

    @torch.inference_mode()
    def prefill(self, x, state):
        """Run several tokens (B, L, n_cols) in parallel from ``state``; returns (h (B,L,d), state)."""
        return self.transformer_encoder(self.embed_tokens(x), "torch", state, True)

    @torch.inference_mode()
    def step(self, tokens, state):
        """One compound token per sequence: tokens (B, n_cols) int64 -> (h (B, d_model), new state).

        h is after the final LayerNorm; the input state is left unchanged.
        """
        traced = self._trace_for(tokens.shape[0])
        if traced is not None:   # the trace computes the type logits too: predict_type(h) reads them
            h, type_logits, state = traced(tokens, state)
            self.__dict__["_type_logits"] = (h, type_logits)
            return h, list(state)
        return self.transformer_encoder.step(self.embed_tokens(tokens), state)

    def __getstate__(self):                  # copies and pickles leave the traces behind
        state = self.__dict__.copy()
        for key in _TRACE_KEYS:
            state.pop(key, None)
        return state

    def _drop_traces(self) -> None:
        for key in _TRACE_KEYS:
            self.__dict__.pop(key, None)

    def _apply(self, fn, *args, **kwargs):   # .to(), .float(), .cuda(): the traces are stale
        self._drop_traces()
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True):       # training: the traces ran in eval mode
        if mode:
            self._drop_traces()
        return super().train(mode)

    def grow_init_vocab(self, name: str, n: int) -> bool:
        """Give init field ``name`` (genre, key, ...) ``n`` classes when it has fewer: the new rows
        start at the mean of the learnt ones, so a fine-tune can learn labels its parent never
        saw (a corpus with more genres).  Returns whether it grew."""
        i = list(self.layout.init_fields).index(name)
        emb = getattr(self, f"init_emb_{name}").lut
        have = emb.weight.shape[0]
        if n <= have:
            return False
        with torch.no_grad():
            mean = emb.weight.mean(0, keepdim=True)
            weight = torch.cat([emb.weight, mean.expand(n - have, -1)]).clone()
        getattr(self, f"init_emb_{name}").lut = nn.Embedding.from_pretrained(weight, freeze=False)
        self.config.init_n_class[i] = n
        return True

    def freeze(self, batch: int = 1) -> "CMT":
        """For generation only, from now on: the step (token embedding, the whole stack and the
        type head) and the field heads run as TorchScript traces of the eager code: the same
        operations and values, without the Python overhead of its ~200 small operations per
        token (published size, int8, 2 cores: 2.5 -> 1.7 ms per step with the heads; tracing
        takes 0.5 s).  One trace per batch size (int8 splits the batch into its songs, see
        :func:`_linear`): ``batch``'s now, the others when first used.  Call it after the
        precision is set (compute.prepare does).  A change of precision or device (``.to``),
        ``train()`` or ``quantize_int8`` drops the traces; weights changed in place are not
        noticed.  Where tracing fails, or a trace disagrees with the eager code, the eager code
        runs.  Returns self."""
        self.eval()
        self._drop_traces()
        self.__dict__["_traced"] = {}   # batch -> trace or None; not a submodule: no state-dict entries
        self._trace_for(batch)
        return self

    def _trace_for(self, batch: int):
        """The trace for ``batch`` songs (made now if the model is frozen and it is new), or None."""
        traces = self.__dict__.get("_traced")
        if traces is None:
            return None
        if batch not in traces:
            traces[batch] = self._make_trace(batch)
        return traces[batch]

    def _make_trace(self, batch: int):
        import warnings
        P = self.layout
        device = next(self.parameters()).device
        tokens = torch.zeros(batch, P.n_cols, dtype=torch.long, device=device)
        init = torch.zeros(batch, 1, len(P.init_fields), dtype=torch.long, device=device)
        types = torch.zeros(batch, dtype=torch.long, device=device)
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")   # deprecation and tracer notes: the trace is checked below
                state = [tuple(t.clone() for t in st) for st in self.start(init)]
                h = self.transformer_encoder.step(self.embed_tokens(tokens), state)[0]
                traced = torch.jit.trace_module(_Generation(self), {"forward": (tokens, state), "fields": (h, types)},
                                                check_trace=False)
                traced_h, traced_type, _ = traced(tokens, state)
                same = torch.equal(traced_h, h) and torch.equal(traced_type, _linear(self.proj_type, h)) and all(
                    torch.equal(a, b) for a, b in zip(traced.fields(h, types), self._eager_fields(h, types).values()))
        except Exception:   # noqa: BLE001 - any failure of the tracer leaves the eager path
            return None
        return traced if same else None

    def quantize_int8(self) -> "CMT":
        """Generation with int8 weights (inference only, CPU): every Linear layer of the stack
        and the heads becomes a dynamically quantized one (weights int8 per tensor, activations
        quantized on the fly), with q, k and v fused into one layer per block.  Reads a quarter
        of float32's bytes per token.  The embeddings stay float32.  In place; returns self.
        The state dict then no longer has the checkpoint's layout: do not save such a model."""
        import warnings

        from torch.ao.quantization import quantize_dynamic
        self._drop_traces()
        with warnings.catch_warnings():   # torch marks the eager API deprecated; it is what runs here
            warnings.simplefilter("ignore")
            for layer in self.transformer_encoder.layers:
                att = layer.attention
                w, b = att.fused_qkv()
                fused = nn.Linear(w.shape[1], w.shape[0])
                with torch.no_grad():
                    fused.weight.copy_(w)
                    fused.bias.copy_(b)
                att.qkv_int8 = quantize_dynamic(nn.Sequential(fused), {nn.Linear}, dtype=torch.qint8)[0]
                att._fused = (None, None)
            quantize_dynamic(self, {nn.Linear}, dtype=torch.qint8, inplace=True)
        for m in self.modules():   # the hot loop calls the kernel on these directly (_linear)
            if getattr(m, "version", None) == 4 and getattr(m, "_packed_params", None) is not None \
                    and m._packed_params.dtype == torch.qint8:
                m.int8_packed = m._packed_params._packed_params
        self.int8 = True
        return self.eval()

    @torch.inference_mode()
    def predict_type(self, h):
        """(B, d_model) -> (B, n_type) type logits."""
        known = self.__dict__.get("_type_logits")
        if known is not None and known[0] is h:   # this h came from the traced step
            return known[1]
        return _linear(self.proj_type, h)

    @torch.inference_mode()
    def predict_fields(self, h, type_ids) -> dict[str, torch.Tensor]:
        """Type-conditioned logits of every predicted field but type: the same values as
        :meth:`heads`, with the field heads fused into one matrix product (generation)."""
        traced = self._trace_for(h.shape[0])
        if traced is not None:
            return dict(zip((name for name, _ in self._heads), traced.fields(h, type_ids)))
        return self._eager_fields(h, type_ids)

    def _eager_fields(self, h, type_ids) -> dict[str, torch.Tensor]:
        if getattr(self, "int8", False):
            return self.heads(h, type_ids)
        y = self.project_concat_type(torch.cat([h, self.encoder_emb_type(type_ids)], dim=-1))
        w, b, sizes = self.fused_heads()
        return dict(zip((name for name, _ in self._heads), F.linear(y, w, b).split(sizes, dim=-1)))

    def fused_heads(self):
        """The field heads (not type's) stacked into one weight and bias, cached and rebuilt
        whenever a head's parameters change (tensor versions)."""
        mods = [getattr(self, m) for _, m in self._heads]
        params = [m.weight for m in mods] + [m.bias for m in mods]
        key = tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in params)
        cached = getattr(self, "_fused_heads", (None, None))
        if cached[0] != key:
            with torch.no_grad():
                cached = (key, (torch.cat([m.weight for m in mods]), torch.cat([m.bias for m in mods]),
                                [m.out_features for m in mods]))
            self._fused_heads = cached
        return cached[1]


class _Generation(nn.Module):
    """What CMT.freeze traces: ``forward`` is CMT.step with predict_type (tokens, state -> h,
    type logits, state as a tuple), ``fields`` is CMT.predict_fields (the logits as a tuple).
    One module traced with both methods: its submodules are converted once."""

    def __init__(self, model: CMT):
        super().__init__()
        self.model = model

    def forward(self, tokens, state):
        h, state = self.model.transformer_encoder.step(self.model.embed_tokens(tokens), state)
        return h, _linear(self.model.proj_type, h), tuple(state)

    def fields(self, h, type_ids):
        return tuple(self.model._eager_fields(h, type_ids).values())


def field_losses(logits: dict, y: torch.Tensor, mask: torch.Tensor,
                 layout: "D.Preset" = D.PRESETS["bmt"]) -> dict[str, torch.Tensor]:
    """The loss of SPEC section 4, per predicted field: cross-entropy (no reduction) against the
    field's column of ``y``, times the sequence mask, summed / mask sum (an empty mask counts as 1).

    ``logits`` maps head names to (B, L, classes); the training loop (which may run the model
    wrapped in DDP) and :meth:`CMT.loss` both call this, so the loss is written once.  The
    columns are the same in both presets for the fields they share, hence the bmt default.
    """
    mask = mask.float()
    denom = mask.sum().clamp_min(1.0)
    out = {}
    for name, lg in logits.items():
        ce = F.cross_entropy(lg.transpose(1, 2).float(), y[..., layout.field(name).col], reduction="none")
        out[name] = (ce * mask).sum() / denom
    return out


def select_state(state, index):
    """Keep (and reorder) the songs of a generation state: index is a batch index/mask."""
    return [(S[index], Z[index]) for S, Z in state]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_vocab(model_or_config, data_sizes, source: str) -> None:
    """Fail with one line when data needs more classes than the model has.

    ``data_sizes``: classes the data needs (max value + 1) per field, either a list in
    column order or a dict keyed by column name ("barbeat", "type", "density", "pitch",
    "duration", "instr", "strength", "p_beat" (bmt: "p_time", "tempo", "chord", "velocity");
    SPEC spellings such as "bar-beat", "instrument", "onset_density" accepted) or by the init
    fields ("genre", "key", "init_instr", "emotion").  i_beat is not checked: its positional
    encoding is computed for any position.
    """
    cfg = model_or_config.config if isinstance(model_or_config, nn.Module) else model_or_config
    columns = [_ALIASES.get(c, c) for c in cfg.layout.columns]
    init_names = ["init_instr" if f == "instrument" else f for f in cfg.layout.init_fields]
    items = list(zip(columns, data_sizes)) if isinstance(data_sizes, (list, tuple)) else list(data_sizes.items())
    for raw, need in items:
        name = _ALIASES.get(raw, raw)
        if name == "i_beat":
            continue
        if name in columns:
            have, where = cfg.n_class[columns.index(name)], "column"
        elif name in init_names:
            have, where = cfg.init_n_class[init_names.index(name)], "init field"
        else:
            raise ValueError(f"check_vocab: unknown field {raw!r} for the {cfg.preset} preset")
        if int(need) > int(have):
            raise UserError(f"{source}: {where} '{name}' needs {int(need)} classes but the model has "
                            f"{int(have)}: use a checkpoint trained with this vocabulary, or retrain")


# ---- checkpoints --------------------------------------------------------------------
def _unwrap(model: nn.Module) -> nn.Module:
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile wrapper
            model = model._orig_mod
        else:
            return model


def _plain(obj, where: str):
    """Check obj is loadable by torch.load(weights_only=True); numbers become Python numbers."""
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, dict):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy scalars
        return obj.item()
    raise TypeError(f"save_checkpoint: {where} holds a {type(obj).__name__}; only dicts, lists, "
                    f"str, numbers, None and tensors can be stored")


def save_checkpoint(path, model, *, vocab: dict | None = None, optimizer=None, epoch=None, step=None,
                    val_loss=None, extra: dict | None = None, half: bool = False) -> None:
    """Write our checkpoint format atomically.

    Contents: config, vocab, weights (fp16 when ``half``: half the size, for shipping),
    and for resuming the optimizer state, epoch, step and validation loss.  Loadable
    with ``torch.load(path, weights_only=True)``; the positional table is not stored.
    """
    model = _unwrap(model)
    sd = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        sd[k] = v.half() if half and v.is_floating_point() else v.clone()
    obj = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "config": model.config.to_dict(), "vocab": _plain(vocab, "vocab"), "model": sd,
        "optimizer": _plain(optimizer.state_dict(), "optimizer") if optimizer is not None else None,
        "epoch": _plain(epoch, "epoch"), "step": _plain(step, "step"),
        "val_loss": None if val_loss is None else float(val_loss),
        "extra": _plain(extra, "extra"), "half": bool(half),
    }
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path, device="cpu") -> CMT:
    """Load a checkpoint of either format; returns the model in eval mode on ``device``.

    * ours (:func:`save_checkpoint`): config, vocab and weights as saved;
    * the released CMT file: a state dict (optionally with DataParallel's "module."
      prefix, or wrapped as {"state_dict": ...}).  Vocab sizes and embedding sizes come
      from the weight shapes, the layer count from the keys, d_model and d_ff from
      shapes; the head count cannot be read from shapes and is the published 8.  The
      stored positional table ``encoder_pos_emb.pe`` is checked against ours, not kept.

    Sets ``model.vocab`` (dict or None) and ``model.checkpoint_info`` (format, epoch,
    step, val_loss, extra, optimizer state or None, path).  The attention backend is
    reset to "auto".  Raises UserError (one line) for missing, unreadable or unknown files.
    """
    return model_from_checkpoint(read_checkpoint(path), path, device)


def read_checkpoint(path) -> object:
    """The stored object of a checkpoint file (``torch.load`` with ``weights_only=True``), or a
    one-line UserError that says what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    return _read_checkpoint_file(path)


def model_from_checkpoint(obj, path, device="cpu") -> CMT:
    """The model of a checkpoint already read by :func:`read_checkpoint` (``obj`` is not changed);
    see :func:`load_checkpoint`."""
    path = Path(path)
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        model = _load_ours(obj, path)
    else:
        sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
        if not (isinstance(sd, dict) and sd and all(isinstance(v, torch.Tensor) for v in sd.values())
                and any("transformer_encoder.layers." in k for k in sd)):
            raise UserError(f"{path} is not a CMT checkpoint (neither our format nor the released "
                            f"state dict)")
        model = _load_released(sd, path)
    model.checkpoint_info["path"] = str(path)
    return model.to(device).eval()


def _read_checkpoint_file(path: Path):
    """torch.load with weights_only=True; a file it cannot read gets a one-line reason that says
    what is wrong with the file (never torch's advice to load it unsafely)."""
    import zipfile
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
    if size == 0:
        raise UserError(f"checkpoint {path} is empty (0 bytes): copy or download it again")
    is_zip = zipfile.is_zipfile(path)
    if head.startswith(b"PK") and not is_zip:
        raise UserError(f"checkpoint {path} is truncated or damaged: its zip archive ({size} bytes) has no "
                        "end; copy or download it again")
    if is_zip:
        names = []
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()           # every record against its checksum
                names = z.namelist()
        except (OSError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError):
            bad = "?"
        if bad is not None:
            raise UserError(f"checkpoint {path} is damaged: a record inside it ({bad.rsplit('/', 1)[-1]}) fails "
                            "its checksum; copy or download it again")
        if names and all(n.endswith(".npy") for n in names):
            raise UserError(f"{path} is a numpy .npz (training data or an analysed video), not a checkpoint; "
                            "pass a .pt checkpoint (exp/NAME/last.pt, or the bundled exp/bundled/model.pt)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - classified below, one line each
        text = " ".join(str(e).split())
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsafe:
        what = unsafe.group(1)
        raise UserError(f"checkpoint {path} is refused: besides tensors and plain data it stores {what}, and "
                        "loading such objects can run code; use a checkpoint saved by this project "
                        "(src/main_cp.py or src/export_checkpoint.py)")
    if is_zip:
        raise UserError(f"checkpoint {path} is damaged (its contents cannot be read as a PyTorch "
                        "checkpoint): copy or download it again")
    if head[:1] == b"\x80":
        raise UserError(f"checkpoint {path} is damaged or truncated (an old-style PyTorch file that ends "
                        "early or holds unreadable data): copy or download it again")
    raise UserError(f"{path} is not a PyTorch checkpoint (neither a zip archive nor a pickled state dict)")


#: Bounds on a model config read from a checkpoint or given as flags: far above any CMT, far
#: below what would exhaust memory (a 62 kB file must not make us allocate 275 GB).
CONFIG_LIMITS = dict(n_layer=256, d_model=16384, n_head=1024, d_ff=65536, time_emb_size=16384,
                     init_emb_size=16384, max_pos=10_000_000)
MAX_CLASSES, MAX_EMB = 1_000_000, 16384
MAX_PARAMETERS = 2_000_000_000


def check_config(cfg: ModelConfig, source: str, weights: dict | None = None) -> None:
    """Refuse (UserError) a config with non-integer, non-positive or absurd sizes, or one whose
    model would have more than :data:`MAX_PARAMETERS` weights, before any memory is allocated;
    with ``weights`` (a state dict), also one whose weight names and shapes differ from them."""
    def whole(v, lo, hi, name):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise UserError(f"{source}: model config {name} must be a whole number {lo}..{hi}, got {v!r}")
    for name, hi in CONFIG_LIMITS.items():
        whole(getattr(cfg, name), 1, hi, name)
    for name, hi in (("n_class", MAX_CLASSES), ("init_n_class", MAX_CLASSES), ("emb_sizes", MAX_EMB)):
        values = getattr(cfg, name)
        if not isinstance(values, list) or not values:
            raise UserError(f"{source}: model config {name} must be a list of whole numbers")
        for v in values:
            whole(v, 1, hi, name)
    if isinstance(cfg.dropout, bool) or not isinstance(cfg.dropout, (int, float)) or not 0 <= cfg.dropout < 1:
        raise UserError(f"{source}: model config dropout must be in [0, 1), got {cfg.dropout!r}")
    if cfg.preset not in D.PRESETS:
        raise UserError(f"{source}: model config names an unknown preset {cfg.preset!r}")
    try:
        with torch.device("meta"):          # shapes only: nothing is allocated
            meta = CMT(cfg)
    except (TypeError, ValueError) as e:
        raise UserError(f"{source}: bad model config ({' '.join(str(e).split())})") from None
    n = count_parameters(meta)
    if n > MAX_PARAMETERS:
        raise UserError(f"{source}: its config describes a model of {n / 1e9:.1f} billion weights "
                        f"({n * 4 / 2**30:.0f} GiB); at most {MAX_PARAMETERS / 1e9:.0f} billion are accepted")
    if weights is not None:
        want = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
        have = {k: tuple(v.shape) for k, v in weights.items()}
        missing, extra = sorted(want.keys() - have.keys()), sorted(have.keys() - want.keys())
        wrong = [k for k in want.keys() & have.keys() if want[k] != have[k]]
        if missing or extra or wrong:
            detail = (f"lacks {missing[0]}" if missing else f"has an unknown weight {extra[0]}" if extra
                      else f"{wrong[0]} is {have[wrong[0]]}, its config says {want[wrong[0]]}")
            raise UserError(f"{source} does not fit the model its config describes: {detail}")


def _check_state_dict(sd, path) -> None:
    """The weights entry: a dict of finite tensors by name."""
    if not isinstance(sd, dict) or not sd:
        raise UserError(f"checkpoint {path}: its 'model' entry must be a dict of weight tensors, "
                        f"got {type(sd).__name__}")
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise UserError(f"checkpoint {path}: its 'model' entry holds {type(v).__name__} under {k!r}, "
                            "not a weight tensor")
    for k, v in sd.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            n = int((~torch.isfinite(v)).sum())
            raise UserError(f"checkpoint {path}: {n} weights of {k} are NaN or infinite (the training run "
                            "that wrote it diverged); use an earlier checkpoint")


def _load_weights(model: CMT, sd: dict, path) -> None:
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise UserError(f"checkpoint {path} does not fit the model it describes: {detail[:300]}") from None


def _load_ours(obj: dict, path) -> CMT:
    if obj.get("version", 0) > CHECKPOINT_VERSION:
        raise UserError(f"checkpoint {path} has format version {obj['version']}; this code reads "
                        f"up to {CHECKPOINT_VERSION}: update the code")
    if not isinstance(obj.get("config"), dict):
        raise UserError(f"checkpoint {path} has no model config (its 'config' entry is not a dict)")
    for key, kinds in (("vocab", dict), ("optimizer", dict), ("extra", dict), ("epoch", int), ("step", int)):
        if obj.get(key) is not None and (not isinstance(obj[key], kinds) or isinstance(obj[key], bool)):
            raise UserError(f"checkpoint {path}: its '{key}' entry must be a {kinds.__name__}, "
                            f"got {type(obj[key]).__name__}")
    _check_state_dict(obj.get("model"), path)
    try:
        cfg = ModelConfig.from_dict({**obj["config"], "attention": "auto"})
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"checkpoint {path} has a bad model config: {e}") from None
    check_config(cfg, f"checkpoint {path}", obj["model"])
    try:
        model = CMT(cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"checkpoint {path} has a bad model config: {e}") from None
    _load_weights(model, obj["model"], path)
    model.vocab = obj.get("vocab")
    model.checkpoint_info = {"format": "ours", "epoch": obj.get("epoch"), "step": obj.get("step"),
                             "val_loss": obj.get("val_loss"), "extra": obj.get("extra"),
                             "optimizer": obj.get("optimizer"), "half": obj.get("half", False)}
    return model


# Key spellings of other versions of the original code -> ours.
_RELEASED_ALIASES = {"encoder_emb_density.": "encoder_emb_beat_density.",
                     "encoder_emb_strength.": "encoder_emb_onset_density.",
                     "proj_density.": "proj_beat_density.", "proj_strength.": "proj_onset_density."}


def released_config(sd: dict, path="checkpoint") -> ModelConfig:
    """Derive the ModelConfig of a released-format state dict (prefix already removed)."""
    def shape(key):
        if key not in sd:
            raise UserError(f"{path} lacks the weight {key!r}: not a complete CMT state dict")
        return tuple(sd[key].shape)

    luts = ["encoder_emb_barbeat", "encoder_emb_type", "encoder_emb_beat_density", "encoder_emb_pitch",
            "encoder_emb_duration", "encoder_emb_instr", "encoder_emb_onset_density"]
    lut_shapes = [shape(f"{m}.lut.weight") for m in luts]
    time_shape = shape("encoder_emb_time_encoding.lut.weight")
    init_shapes = [shape(f"init_emb_{m}.lut.weight") for m in ("genre", "key", "instrument")]
    if len({s[1] for s in init_shapes}) != 1:
        raise UserError(f"{path}: init embeddings of different sizes {[s[1] for s in init_shapes]} "
                        f"are not supported")
    layers = {int(m.group(1)) for k in sd if (m := re.match(r"transformer_encoder\.layers\.(\d+)\.", k))}
    d_model = shape("encoder_in_linear.weight")[0]
    n_class = [s[0] for s in lut_shapes] + [time_shape[0], ModelConfig().n_class[8]]
    return ModelConfig(
        n_class=n_class, init_n_class=[s[0] for s in init_shapes], emb_sizes=[s[1] for s in lut_shapes],
        time_emb_size=time_shape[1], init_emb_size=init_shapes[0][1], d_model=d_model,
        n_layer=max(layers) + 1 if layers else 0, n_head=RELEASED_HEADS if d_model % RELEASED_HEADS == 0 else 1,
        d_ff=shape("transformer_encoder.layers.0.linear1.weight")[0],
        max_pos=sd["encoder_pos_emb.pe"].shape[1] if "encoder_pos_emb.pe" in sd else ModelConfig().max_pos,
    )


def _load_released(sd: dict, path) -> CMT:
    clean = {}
    for k, v in sd.items():
        k = k.removeprefix("module.")
        for old, new in _RELEASED_ALIASES.items():
            if k.startswith(old):
                k = new + k[len(old):]
        clean[k] = v
    _check_state_dict(clean, path)
    cfg = released_config(clean, path)
    check_config(cfg, f"checkpoint {path}")
    model = CMT(cfg)
    pe = clean.pop("encoder_pos_emb.pe", None)
    if pe is not None:
        pe = pe.float().reshape(-1, pe.shape[-1])
        if pe.shape[1] != cfg.d_model:
            raise UserError(f"{path}: positional table width {pe.shape[1]} != d_model {cfg.d_model}")
        rows = torch.tensor([0, 1, 2, 100, pe.shape[0] // 2, pe.shape[0] - 1])
        ours = model.encoder_pos_emb(rows)
        if (pe[rows] - ours).abs().max() > 1e-3:
            raise UserError(f"{path}: its positional table is not the standard sinusoidal one this "
                            f"code computes")
    _load_weights(model, clean, path)
    model.vocab = None
    model.checkpoint_info = {"format": "released", "epoch": None, "step": None, "val_loss": None,
                             "extra": None, "optimizer": None, "half": False}
    return model
