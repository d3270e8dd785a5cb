"""The training loop, plain and in one place (SPEC section 4).

One process per device.  Under ``torchrun`` (or ``--gid 0,1`` which spawns the processes
itself) the model is wrapped in DistributedDataParallel: NCCL on GPUs, gloo on CPUs.  Each
rank takes its share of length-bucketed batches; logged losses are averaged over ranks, so
they do not scale with the GPU count as the original's DataParallel losses did.

Every epoch ends with a validation loss, ``exp/<name>/last.pt`` (for ``--resume``) and, when
the validation loss improves, ``exp/<name>/loss_<X>_params.pt``; all files are written
atomically, so killing the run at any moment loses at most the current epoch.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import chords
import cli
import dataset
import dictionary_mix as D
from model import CMT, ModelConfig, load_checkpoint, save_checkpoint

# logits key -> target column of y, from the presets (bmt's fields include cmt's)
TARGETS = {f.name: f.col for f in D.PRESETS["bmt"].fields if f.head}


# ----------------------------------------------------------------------------- data
def load_data(path: str | os.PathLike) -> dict:
    """Load a training npz (``midi2numpy_mix.py``); one-line errors for unusable files."""
    path = Path(path)
    if not path.is_file():
        raise cli.UserError(f"training data {path} not found; build it with `make corpus` or "
                            "`python src/midi2numpy_mix.py --midi_dir DIR --out_name FILE.npz`")
    try:
        z = np.load(path, allow_pickle=False)
        data = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise cli.UserError(f"cannot read training data {path}: {e}") from None
    for key in ("x", "y", "mask"):
        if key not in data:
            raise cli.UserError(f"{path} has no '{key}' array; it is not a training npz from midi2numpy_mix.py")
    n = len(data["x"])
    if n == 0:
        raise cli.UserError(f"{path} holds no songs")
    if "init" not in data:   # the original's files: every song got the same init block
        data["init"] = np.repeat(np.asarray(D.RELEASED_INIT_BLOCK)[None], n, 0)
    if "seq_len" not in data:
        data["seq_len"] = data["mask"].sum(1).astype(np.int64)
    if "split" not in data:  # the original had no validation split: hold out every 20th song
        data["split"] = (np.arange(n) % 20 == 19).astype(np.uint8)
    for key in ("metadata", "vocab"):
        data[key] = json.loads(str(data[key])) if key in data else None
    return data


def data_preset(data: dict) -> str:
    """The representation preset of a training npz: its vocab says, else its column count."""
    named = (data.get("vocab") or {}).get("preset")
    if named:
        try:
            return D.preset(named).name
        except ValueError as e:
            raise cli.UserError(f"training data: {e}") from None
    n_cols = data["x"].shape[-1]
    for P in D.PRESETS.values():
        if P.n_cols == n_cols:
            return P.name
    raise cli.UserError(f"training data rows have {n_cols} columns; expected 9 (cmt) or 12 (bmt)")


def data_n_class(data: dict) -> list[int]:
    """Vocab sizes for a new model: the representation's full sizes, grown if the data needs more."""
    P = D.preset(data_preset(data))
    seen = [int(data["x"][..., c].max()) + 1 for c in range(P.n_cols)]
    seen = [max(a, int(data["y"][..., c].max()) + 1) for c, a in enumerate(seen)]
    base = list(D.RELEASED_N_CLASS) if P.name == "cmt" else list(P.n_class)
    n_class = [max(a, b) for a, b in zip(base, seen)]
    n_class[D.COL_TYPE] = max(seen[D.COL_TYPE], 3)
    return n_class


def make_batches(lengths: np.ndarray, idx: np.ndarray, batch_size: int, max_tokens: int,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """Length-bucketed batches: similar lengths together, at most ``batch_size`` songs and
    ``max_tokens`` padded tokens each; batch order shuffled."""
    jitter = rng.random(len(idx))
    order = idx[np.lexsort((jitter, lengths[idx]))]
    batches, cur = [], []
    for i in order:
        longest = max([lengths[j] for j in cur] + [lengths[i]])
        if cur and (len(cur) >= batch_size or longest * (len(cur) + 1) > max_tokens):
            batches.append(np.array(cur))
            cur = []
        cur.append(i)
    if cur:
        batches.append(np.array(cur))
    rng.shuffle(batches)
    return batches


def epoch_batches(lengths: np.ndarray, idx: np.ndarray, hp: dict, epoch: int) -> list[np.ndarray]:
    """The batches of one epoch.  An epoch is a full pass over the training songs, or, with
    ``steps_per_epoch`` > 0, the next that many batches of an endless sequence of passes (each
    pass shuffled by its own seed), so small machines validate and checkpoint more often.
    Deterministic in (seed, epoch), so a resumed run continues where it stopped."""
    def one_pass(k):
        rng = np.random.default_rng(hp["seed"] * 1000003 + k)
        return make_batches(lengths, idx, hp["batch_size"], hp["max_tokens"], rng)
    spe = int(hp.get("steps_per_epoch") or 0)
    if spe <= 0:
        return one_pass(epoch)
    n = len(one_pass(0))
    start, out = epoch * spe, []
    while len(out) < spe:
        k, i = divmod(start + len(out), n)
        out.extend(one_pass(k)[i:i + spe - len(out)])
    return out


def to_batch(data: dict, ids: np.ndarray, max_len: int | None, device, transpose: int = 0,
             rng: np.random.Generator | None = None) -> tuple:
    """Tensors (x, y, mask, init) of the songs ``ids``; with ``transpose`` > 0 each song is
    shifted by a random number of semitones (see :func:`transpose_songs`)."""
    L = int(data["seq_len"][ids].max())
    if max_len:
        L = min(L, max_len)
    x, y = data["x"][ids, :L].astype(np.int64), data["y"][ids, :L].astype(np.int64)
    init = data["init"][ids].astype(np.int64)
    if transpose > 0:
        transpose_songs(x, y, init, rng or np.random.default_rng(), transpose)
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=device)  # noqa: E731
    return t(x), t(y), t(data["mask"][ids, :L].astype(np.float32)), t(init)


def transpose_songs(x: np.ndarray, y: np.ndarray, init: np.ndarray, rng: np.random.Generator,
                    max_shift: int) -> np.ndarray:
    """Data augmentation, in place: shift each song by k semitones, k uniform in
    [-max_shift, max_shift] but limited so every note stays in MIDI 0..127.  Pitched notes
    (not Drums) move, and with them the key label (the same mode, the tonic moved by k) and,
    in bmt rows, the chord roots.  Returns the shifts.  A corpus with a few common keys then
    shows every key, and the model must read the key token to know which one it is in."""
    shifts = np.zeros(len(x), dtype=np.int64)
    for i in range(len(x)):
        notes = [(a[:, D.COL_TYPE] == D.TYPE_NOTE) & (a[:, D.COL_PITCH] > 0) & (a[:, D.COL_INSTRUMENT] != D.DRUMS)
                 for a in (x[i], y[i])]
        pitches = np.concatenate([x[i][notes[0], D.COL_PITCH], y[i][notes[1], D.COL_PITCH]]) - 1
        if len(pitches) == 0:
            continue
        lo, hi = max(-max_shift, -int(pitches.min())), min(max_shift, 127 - int(pitches.max()))
        k = int(rng.integers(lo, hi + 1)) if hi >= lo else 0
        if k == 0:
            continue
        shifts[i] = k
        for a, sel in zip((x[i], y[i]), notes):
            a[sel, D.COL_PITCH] += k
            if a.shape[1] > D.COL_CHORD:
                a[:, D.COL_CHORD] = chords.transpose(a[:, D.COL_CHORD], k)
        init[i, :, 1] = D.transpose_keys(init[i, :, 1], k)
    return shifts


# ----------------------------------------------------------------------------- loss
def field_losses(logits: dict, y: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per predicted field: cross-entropy (no reduction) times the mask, summed / mask sum."""
    denom = mask.sum().clamp_min(1.0)
    out = {}
    for key in logits:
        col = TARGETS[key]
        ce = F.cross_entropy(logits[key].transpose(1, 2).float(), y[..., col], reduction="none")
        out[key] = (ce * mask).sum() / denom
    return out


# ----------------------------------------------------------------------------- distributed
def dist_env() -> tuple[int, int, int]:
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise cli.UserError("--device cuda asked for, but torch sees no GPU; use --device cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def _spawned(rank: int, world: int, port: int, hp: dict) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    train(hp)


def launch(hp: dict) -> None:
    """Train on the devices ``hp`` asks for: the current process, or one process per GPU
    of ``--gid`` when several are named and we are not already under torchrun."""
    gids = [g for g in str(hp.get("gid") or "").split(",") if g.strip() != ""]
    if gids:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", ",".join(gids))
    world = len(gids) if (len(gids) > 1 or hp.get("data_parallel")) else 1
    if hp.get("data_parallel") and not gids and torch.cuda.is_available():
        world = torch.cuda.device_count()
    if world > 1 and "WORLD_SIZE" not in os.environ:
        import socket

        import torch.multiprocessing as mp
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.spawn(_spawned, args=(world, port, hp), nprocs=world, join=True)
    else:
        train(hp)


# ----------------------------------------------------------------------------- the loop
def train(hp: dict) -> Path:
    rank, world, local_rank = dist_env()
    device = pick_device(hp["device"], local_rank)
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    main = rank == 0
    torch.manual_seed(hp["seed"] + rank)

    data = load_data(Path(hp["data_root"]) / hp["train_data"]
                     if not os.path.isabs(hp["train_data"]) and not Path(hp["train_data"]).exists()
                     else hp["train_data"])
    lengths = data["seq_len"].astype(np.int64)
    train_idx = np.flatnonzero(data["split"] == 0)
    val_idx = np.flatnonzero(data["split"] == 1)
    if len(train_idx) == 0:
        raise cli.UserError("the training data has no training songs (all are in the validation split)")
    try:   # small sources (the drummed songs) repeated so they make a fair share of the batches
        batch_idx = dataset.oversample(train_idx, data["metadata"], dataset.parse_weights(hp.get("source_weights")))
    except ValueError as e:
        raise cli.UserError(f"--source_weights: {e}") from None

    exp_dir = Path(hp["exp_dir"]) / hp["name"]
    log_dir = Path(hp["log_dir"])
    last = exp_dir / "last.pt"
    start_epoch, step, best = 0, 0, math.inf
    if hp["resume"] and last.exists():
        model = load_checkpoint(last, device=device)
        info = model.checkpoint_info
        start_epoch, step = int(info.get("epoch") or 0) + 1, int(info.get("step") or 0)
        best = float(info.get("extra", {}).get("best_val", math.inf))
        config = model.config
        resumed = f"resuming {last} after epoch {start_epoch - 1} (step {step}, best validation loss {best:.4f})"
    else:
        resumed = f"no {last} to resume from: starting afresh" if hp["resume"] else ""
        preset = data_preset(data)   # the representation (cmt/bmt) comes from the data
        try:
            emb_sizes = D.preset(preset).emb_sizes(int(v) for v in str(hp["emb_sizes"]).split(","))
        except ValueError as e:
            raise cli.UserError(f"--emb_sizes: {e}") from None
        config = ModelConfig(
            preset=preset, n_class=data_n_class(data), init_n_class=init_n_class(data),
            emb_sizes=emb_sizes,
            time_emb_size=hp["time_emb_size"], init_emb_size=hp["init_emb_size"],
            d_model=hp["d_model"], n_layer=hp["n_layer"], n_head=hp["n_head"], d_ff=hp["d_ff"],
            dropout=hp["dropout"], attention=hp["attention"])
        model = CMT(config)
        if hp.get("init_ckpt"):   # fine-tuning: the weights (and sizes) of an earlier model, a fresh optimizer
            model = init_from(hp["init_ckpt"], config)
            config = model.config
            resumed = f"fine-tuning {hp['init_ckpt']} (its sizes; a new optimizer, epochs counted from 0)"
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=hp["lr"])
    if hp["resume"] and last.exists() and model.checkpoint_info.get("optimizer"):
        opt.load_state_dict(model.checkpoint_info["optimizer"])   # read with the model by load_checkpoint
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    vocab = {"preset": config.preset, "n_class": list(config.n_class), "init_n_class": list(config.init_n_class),
             "fields": list(config.layout.columns),
             **label_vocab(data, train_idx, default_genre=hp.get("default_genre") or None)}
    n_params = sum(p.numel() for p in model.parameters())
    log = Logger(log_dir, hp["name"], main, fields=config.layout.heads)
    if resumed:
        log.line(resumed)
    log.line(f"model {n_params / 1e6:.2f} M parameters, {len(train_idx)} train / {len(val_idx)} "
             f"validation sequences, {world} process(es) on {device.type}; hp {json.dumps(hp, sort_keys=True)}")
    if len(batch_idx) != len(train_idx):
        log.line(f"source weights {hp['source_weights']}: {len(batch_idx)} training sequences per pass "
                 f"({len(train_idx)} distinct)")

    if hp.get("val_max_songs") and len(val_idx) > hp["val_max_songs"]:   # a fixed, evenly spread subset
        val_idx = val_idx[np.linspace(0, len(val_idx) - 1, hp["val_max_songs"]).astype(int)]
    for epoch in range(start_epoch, hp["epochs"]):
        batches = epoch_batches(lengths, batch_idx, hp, epoch)
        if world > 1:   # equal shares, so no rank waits for a gradient that never comes
            per = max(1, len(batches) // world)
            batches = (batches * world)[: per * world][rank::world]
        net.train()
        t0, tokens, total = time.time(), 0, 0.0
        bar = cli.progress(batches, desc=f"epoch {epoch}", unit="batch", disable=not main)
        aug = np.random.default_rng([hp["seed"], epoch, rank])   # same shifts when a run is resumed
        for ids in bar:
            x, y, mask, init = to_batch(data, ids, hp["max_len"], device, int(hp.get("transpose") or 0), aug)
            losses = field_losses(net(x, y, init), y, mask)
            loss = sum(losses.values()) / len(losses)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), hp["grad_clip"])
            opt.step()
            step += 1
            tokens += int(mask.sum().item())
            total += loss.item()
            if main and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tokens * world / (time.time() - t0):.0f}")
        train_loss = _mean_over_ranks(total / max(len(batches), 1), world, device)
        tok_s = tokens * world / max(time.time() - t0, 1e-9)
        val_loss, val_parts = evaluate(model, data, val_idx, hp, device, rank, world)
        if main:
            best_val = min(best, val_loss)
            extra = {"hp": hp, "best_val": best_val, "train_loss": train_loss}
            save_checkpoint(last, model, vocab=vocab, optimizer=opt, epoch=epoch,
                            step=step, val_loss=val_loss, extra=extra)
            saved = ""
            if val_loss < best:
                named = exp_dir / f"loss_{loss_tag(val_loss)}_params.pt"
                save_checkpoint(named, model, vocab=vocab, epoch=epoch, step=step, val_loss=val_loss, extra=extra)
                saved = f" -> {named}"
            log.epoch(epoch, step, train_loss, val_loss, val_parts, tok_s, time.time() - t0)
            log.line(f"epoch {epoch}: train {train_loss:.4f} val {val_loss:.4f} "
                     f"({tok_s:.0f} tokens/s){saved}")
        best = min(best, val_loss)
    log.plot()
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()
    return last


def init_from(path: str | os.PathLike, config: ModelConfig):
    """A model with the weights of checkpoint ``path`` (fp32), for fine-tuning on data that
    ``config`` (made from the data) describes: same preset, vocabularies at least as large."""
    if not Path(path).is_file():
        raise cli.UserError(f"--init_ckpt {path} not found")
    model = load_checkpoint(path).float()
    old = model.config
    if old.preset != config.preset:
        raise cli.UserError(f"--init_ckpt {path} is a {old.preset} model; the training data is {config.preset}")
    small = [i for i, (a, b) in enumerate(zip(old.n_class, config.n_class)) if a < b] + \
        [f"init {i}" for i, (a, b) in enumerate(zip(old.init_n_class, config.init_n_class)) if a < b]
    if small:
        raise cli.UserError(f"--init_ckpt {path}: its vocabularies are smaller than the data needs "
                            f"(fields {small}); train from scratch instead")
    model.checkpoint_info = {}
    return model


@torch.no_grad()
def evaluate(model, data, val_idx, hp, device, rank=0, world=1) -> tuple[float, dict]:
    """Validation loss: token-weighted over the validation songs (NaN when there are none)."""
    if len(val_idx) == 0:
        return float("nan"), {}
    model.eval()
    rng = np.random.default_rng(0)
    batches = make_batches(data["seq_len"].astype(np.int64), val_idx, hp["batch_size"], hp["max_tokens"], rng)
    fields = model.layout.heads
    sums = torch.zeros(len(fields) + 1, dtype=torch.float64, device=device)
    for ids in batches[rank::world]:
        x, y, mask, init = to_batch(data, ids, hp["max_len"], device)
        parts = field_losses(model(x, y, init), y, mask)
        n = mask.sum()
        sums[:-1] += torch.stack([parts[k] * n for k in fields]).double()
        sums[-1] += n.double()
    if world > 1:
        import torch.distributed as dist
        dist.all_reduce(sums)
    model.train()
    per = (sums[:-1] / sums[-1].clamp_min(1)).tolist()
    parts = dict(zip(fields, per))
    return float(np.mean(per)), parts


def _mean_over_ranks(value: float, world: int, device) -> float:
    if world == 1:
        return value
    import torch.distributed as dist
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item() / world)


def loss_tag(loss: float) -> int:
    """The original's checkpoint names: int(100 * loss) below 0.2 (loss_8 = [0.08, 0.09)),
    tens of hundredths above (loss 0.35 -> loss_30, 1.37 -> loss_130)."""
    return int(100 * loss) if loss < 0.2 else int(10 * loss) * 10


def init_n_class(data: dict) -> list[int]:
    P = D.preset(data_preset(data))
    if data["init"].shape[-1] != len(P.init_fields):
        raise cli.UserError(f"training data init rows have {data['init'].shape[-1]} fields; the {P.name} "
                            f"preset needs {len(P.init_fields)} ({', '.join(P.init_fields)})")
    seen = [int(data["init"][..., c].max()) + 1 for c in range(len(P.init_fields))]
    base = list(D.RELEASED_INIT_N_CLASS) + [len(D.EMOTIONS)] * (len(P.init_fields) - 3)
    return [max(a, b) for a, b in zip(base, seen)]


def label_vocab(data: dict, idx: np.ndarray, default_genre: str | int | None = None) -> dict:
    """What the checkpoint records of its training labels, for inference defaults and checks:
    the instrument classes played, the genres and keys (bmt: emotions) of the init tokens, and
    the commonest of each (what inference uses when the user does not choose).  ``default_genre``
    (a name or id among the training genres) replaces the commonest genre as the default."""
    init = data["init"][idx]
    genres, g_count = np.unique(init[:, 0, 0], return_counts=True)
    keys, k_count = np.unique(init[:, 1, 1], return_counts=True)
    g_default = int(genres[g_count.argmax()])
    if default_genre not in (None, ""):
        names = ", ".join(D.GENRES[int(g)] for g in genres)
        try:
            g_default = D.genre_id(default_genre)
        except KeyError:
            raise cli.UserError(f"default genre {default_genre!r} is not a genre; the training data has {names}") \
                from None
        if g_default not in genres:
            raise cli.UserError(f"default genre {D.GENRES[g_default]} does not occur in the training songs; "
                                f"they have {names}")
    out = {"instruments": trained_instruments(data, idx),
           "genres": genres.tolist(), "keys": keys.tolist(),
           "default_genre": g_default, "default_key": int(keys[k_count.argmax()])}
    if init.shape[-1] > 3:
        emotions, e_count = np.unique(init[:, 0, 3], return_counts=True)
        out.update(emotions=emotions.tolist(), default_emotion=int(emotions[e_count.argmax()]))
    return out


def trained_instruments(data: dict, idx: np.ndarray) -> list[int]:
    """Instrument classes that occur in the training songs' tokens."""
    instr = data["x"][idx][..., D.COL_INSTRUMENT]
    return sorted(int(c) for c in np.unique(instr) if c > 0)


class Logger:
    """logs/<name>.log (text), logs/<name>.csv (one row per epoch), logs/<name>_loss.png."""

    def __init__(self, log_dir: Path, name: str, active: bool, fields=D.PRESETS["cmt"].heads):
        self.active = active
        self.fields = tuple(fields)
        self.text = log_dir / f"{name}.log"
        self.csv = log_dir / f"{name}.csv"
        self.png = log_dir / f"{name}_loss.png"
        self.plotted = 0.0
        if active:
            log_dir.mkdir(parents=True, exist_ok=True)

    def line(self, msg: str) -> None:
        if not self.active:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.text, "a") as f:
            f.write(f"{stamp} {msg}\n")
        print(msg, flush=True)

    def epoch(self, epoch, step, train_loss, val_loss, parts, tok_s, seconds) -> None:
        rows = []
        if self.csv.exists():
            with open(self.csv) as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < epoch]   # drop rows a resume redoes
        row = {"epoch": epoch, "step": step, "train_loss": f"{train_loss:.5f}", "val_loss": f"{val_loss:.5f}",
               **{f"val_{k}": f"{parts.get(k, float('nan')):.5f}" for k in self.fields},
               "tokens_per_s": f"{tok_s:.1f}", "seconds": f"{seconds:.1f}"}
        rows.append(row)
        with cli.atomic_path(self.csv) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            w.writeheader()
            w.writerows(rows)
        if time.time() - self.plotted > 20:       # redraw at most every 20 s (and at the end)
            self.plot()

    def plot(self) -> None:
        if not self.active or not self.csv.exists():
            return
        with open(self.csv) as f:
            rows = list(csv.DictReader(f))
        self.plotted = time.time()
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        ep = [int(r["epoch"]) for r in rows]
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
        ax.plot(ep, [float(r["train_loss"]) for r in rows], label="train", marker=".")
        ax.plot(ep, [float(r["val_loss"]) for r in rows], label="validation", marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"loss (mean over {len(self.fields)} fields)")
        ax.set_title(self.png.stem.replace("_loss", "") + ": loss")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        with cli.atomic_path(self.png) as tmp:
            fig.savefig(tmp)
        plt.close(fig)
