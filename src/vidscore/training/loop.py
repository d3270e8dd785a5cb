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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidscore.music import chords
from vidscore import cli
from vidscore import compute
from vidscore.training import data_stats, dataset
from vidscore.training import provenance
from vidscore import constants as D
from vidscore.model.cmt import CMT, ModelConfig, check_config, check_vocab, field_losses, load_checkpoint, save_checkpoint


# ----------------------------------------------------------------------------- data
def load_data(path: str | os.PathLike) -> dict:
    """Load a training npz (``midi2numpy_mix.py``); one-line errors for unusable files."""
    path = Path(path)
    if not path.is_file():
        raise cli.UserError(f"training data {path} not found; build it with `make corpus` or "
                            "`python src/midi2numpy_mix.py --midi_dir DIR --out_name FILE.npz`")
    from vidscore.training import original_npz
    if original_npz.is_original(path):   # CMT's processed file: 10 raw columns, pickled metadata
        try:
            return original_npz.read(path)
        except original_npz.OriginalNpzError as e:
            raise cli.UserError(f"training data: {e}") from None
    import zipfile
    if not zipfile.is_zipfile(path):
        raise cli.UserError(f"training data {path} is not an .npz file (a zip archive of arrays, as "
                            "midi2numpy_mix.py writes); it may be cut short or another kind of file")
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
        try:
            data[key] = json.loads(str(data[key])) if key in data else None
        except ValueError:
            raise cli.UserError(f"{path}: its '{key}' entry is not JSON; rebuild the file with midi2numpy_mix.py") \
                from None
    check_arrays(data, path)
    return data


def check_arrays(data: dict, path) -> None:
    """One-line errors for arrays no model can train on (checked once, where they are read)."""
    x, y, mask = data["x"], data["y"], data["mask"]
    bad = None
    if x.ndim != 3 or y.shape != x.shape:
        bad = f"x {x.shape} and y {y.shape} must both be (songs, tokens, columns)"
    elif mask.shape != x.shape[:2]:
        bad = f"mask {mask.shape} must be (songs, tokens) {x.shape[:2]}"
    elif not all(np.issubdtype(a.dtype, np.integer) for a in (x, y, data["init"])):
        bad = f"x, y and init must hold integer tokens (got {x.dtype}, {y.dtype}, {data['init'].dtype})"
    elif min(int(x.min()), int(y.min()), int(data["init"].min())) < 0:
        bad = "x, y or init holds negative tokens"
    elif not np.issubdtype(mask.dtype, np.number) or not np.isin(mask, (0, 1)).all():
        bad = "mask must hold only 0 and 1"
    elif data["init"].ndim != 3 or len(data["init"]) != len(x):
        bad = f"init {data['init'].shape} must be (songs, rows, fields) for its {len(x)} songs"
    elif len(data["seq_len"]) != len(x) or not (0 <= int(np.min(data["seq_len"]))
                                                and int(np.max(data["seq_len"])) <= x.shape[1] + 1):
        bad = f"seq_len must give each of the {len(x)} songs a length of 0..{x.shape[1] + 1} tokens"
    elif len(data["split"]) != len(x) or not np.isin(data["split"], (0, 1)).all():
        bad = f"split must mark each of the {len(x)} songs 0 (train) or 1 (validation)"
    if bad:
        raise cli.UserError(f"{path} is not a usable training npz: {bad}; rebuild it with midi2numpy_mix.py")
    named = (data.get("vocab") or {}).get("preset")
    if x.shape[-1] not in {P.n_cols for P in D.PRESETS.values()}:
        raise cli.UserError(f"{path}: its rows have {x.shape[-1]} columns, the representations "
                            f"{', '.join(f'{P.n_cols} ({P.name})' for P in D.PRESETS.values())}; "
                            "rebuild it with midi2numpy_mix.py")
    if named in D.PRESETS and x.shape[-1] != D.PRESETS[named].n_cols:
        raise cli.UserError(f"{path}: its vocab says {named} ({D.PRESETS[named].n_cols} columns) but its rows "
                            f"have {x.shape[-1]} columns; rebuild it with midi2numpy_mix.py")
    P = D.preset(data_preset(data))
    top = np.maximum(x.reshape(-1, x.shape[-1]).max(0), y.reshape(-1, y.shape[-1]).max(0))
    for c, (name, n) in enumerate(zip(P.columns, P.n_class)):
        if c != D.COL_IBEAT and top[c] >= n:      # only the time column grows with the songs
            raise cli.UserError(f"{path}: its {name} column holds {int(top[c])}, beyond the {P.name} "
                                f"vocabulary of {n}; these are not {P.name} tokens, rebuild it with midi2numpy_mix.py")


def resplit(data: dict, val_fraction: float) -> np.ndarray:
    """The train (0) / validation (1) split: the data's own for ``val_fraction`` 0, else its songs
    split again by :func:`dataset.assign_split` (a hash of each song id, so every window of a song
    lands on the same side) with that share for validation."""
    if not val_fraction:
        return data["split"]
    if not 0 < val_fraction < 1:
        raise cli.UserError("--val_fraction must be 0 (the data's split) or a share between 0 and 1")
    meta = data.get("metadata")
    ids = [m.get("id") for m in meta] if isinstance(meta, list) and len(meta) == len(data["x"]) else None
    if not ids or any(i is None for i in ids):
        raise cli.UserError("--val_fraction: this training npz records no song ids; "
                            "use --val_fraction 0 (its own split)")
    from vidscore.training.dataset import assign_split
    split = assign_split(ids, val_fraction)
    return np.array([split[i] for i in ids], dtype=np.uint8)


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


def epoch_batches(lengths: np.ndarray, idx: np.ndarray, hp: dict, epoch: int, world: int = 1) -> list[np.ndarray]:
    """The batches of one epoch.  An epoch is a full pass over the training songs, or, with
    ``steps_per_epoch`` > 0, the next ``steps_per_epoch`` optimizer steps' worth of batches
    (``world`` batches per step, one per rank) of an endless sequence of passes (each pass
    shuffled by its own seed), so small machines validate and checkpoint more often.
    Deterministic in (seed, epoch, world), so a resumed run continues where it stopped."""
    def one_pass(k):
        rng = np.random.default_rng(hp["seed"] * 1000003 + k)
        return make_batches(lengths, idx, hp["batch_size"], hp["max_tokens"], rng)
    spe = int(hp.get("steps_per_epoch") or 0) * max(1, world)
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
        key_col = D.INIT_CELL["key"][1]
        init[i, :, key_col] = D.transpose_keys(init[i, :, key_col], k)
    return shifts


# ----------------------------------------------------------------------------- distributed
def dist_env() -> tuple[int, int, int]:
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(requested: str, local_rank: int) -> torch.device:
    """This rank's device (compute.inference_device owns the rule)."""
    return compute.inference_device(requested, local_rank)


def visible_devices(gid: str, visible: str | None) -> str | None:
    """The CUDA_VISIBLE_DEVICES to train under for ``--gid``.

    Without ``--gid`` the environment is left as it is (None).  Where CUDA_VISIBLE_DEVICES is
    already set (as cluster schedulers do), ``--gid`` ids index into it: with
    CUDA_VISIBLE_DEVICES=4,5,6 ``--gid 0,2`` means GPUs 4 and 6.  Otherwise the ids are the
    machine's own."""
    gids = [g.strip() for g in str(gid or "").split(",") if g.strip() != ""]
    if not gids:
        return None
    if not all(g.isdigit() for g in gids) or len(set(gids)) != len(gids):
        raise cli.UserError(f"--gid {gid}: give distinct GPU ids separated by commas, e.g. 0 or 0,1")
    if visible is None or visible.strip() == "":
        return ",".join(gids)
    pool = [v.strip() for v in visible.split(",") if v.strip() != ""]
    bad = [g for g in gids if int(g) >= len(pool)]
    if bad:
        raise cli.UserError(f"--gid {gid}: CUDA_VISIBLE_DEVICES={visible} makes {len(pool)} GPU(s) visible "
                            f"(ids 0..{len(pool) - 1}, relative to it); id(s) {','.join(bad)} do not exist")
    return ",".join(pool[int(g)] for g in gids)


def rank_batches(batches: list, rank: int, world: int) -> list:
    """This rank's share of an epoch's batches: the same number on every rank (so no rank waits
    for a gradient that never comes), taken round-robin; when the batches do not divide evenly
    the last ranks' shares wrap round to the first batches rather than dropping any."""
    if world == 1:
        return batches
    per = -(-len(batches) // world)
    return [batches[i % len(batches)] for i in range(rank, per * world, world)]


def _spawned(rank: int, world: int, port: int, hp: dict) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    train(hp)


def launch(hp: dict) -> None:
    """Train on the devices ``hp`` asks for: the current process, or one process per GPU
    of ``--gid`` when several are named and we are not already under torchrun."""
    visible = visible_devices(hp.get("gid"), os.environ.get("CUDA_VISIBLE_DEVICES"))
    if visible is not None:   # before anything asks torch about CUDA
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
    n_gids = len(visible.split(",")) if visible else 0
    world = n_gids if (n_gids > 1 or hp.get("data_parallel")) else 1
    if hp.get("data_parallel") and not n_gids and torch.cuda.is_available():
        world = torch.cuda.device_count()
    if n_gids and not torch.cuda.is_available():
        print(f"note: --gid {hp.get('gid')}: torch sees no GPU, so {world} CPU process(es) train", flush=True)
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
    """Train as ``hp`` says; returns the path of ``last.pt``.  The whole loop is here: set-up,
    then per epoch the training batches, the validation loss and the checkpoints."""
    check_hp(hp)
    run = setup(hp)
    for epoch in range(run.start_epoch, hp["epochs"]):
        train_loss, tok_s, t0 = train_epoch(run, epoch)
        val_loss, val_parts = evaluate(run.model, run.data, run.val_idx, hp, run.device, run.rank, run.world,
                                       amp=run.amp)
        # the same on every rank (the weights and the validation loss are), so all stop together;
        # nothing is saved: last.pt keeps the last good epoch
        if not all(torch.isfinite(p).all() for p in run.model.parameters()) or \
                (len(run.val_idx) and not math.isfinite(val_loss)):
            raise cli.UserError(f"training diverged in epoch {epoch}: the weights or the validation loss are "
                                f"not finite; {_kept(run.last)}")
        if run.main:   # the row first: stopped before the checkpoint, a resume redoes the epoch and its row
            run.log.epoch(epoch, run.step, train_loss, val_loss, val_parts, tok_s, time.time() - t0)
            saved = save_epoch(run, epoch, train_loss, val_loss)
            run.log.line(f"epoch {epoch}: train {train_loss:.4f} val {val_loss:.4f} ({tok_s:.0f} tokens/s)"
                         + (f" -> {saved}" if saved else ""))
        run.best = min(run.best, val_loss)
    run.log.plot()
    if run.world > 1:
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()
    return run.last


@dataclass
class Run:
    """What the loop carries between epochs (built by :func:`setup`)."""
    hp: dict
    rank: int
    world: int
    device: torch.device
    data: dict
    train_idx: np.ndarray
    val_idx: np.ndarray
    model: CMT              # the plain model: checkpoints, validation
    net: torch.nn.Module    # what the training step calls: the model, compiled and/or DDP-wrapped
    opt: torch.optim.Optimizer
    vocab: dict
    log: "Logger"
    last: Path
    start_epoch: int = 0
    step: int = 0           # optimizer steps so far (the same on every rank)
    best: float = math.inf  # best validation loss so far
    amp: bool = False       # bfloat16 autocast for the forward pass
    batch_idx: np.ndarray | None = None   # the training songs of one pass, weighted sources repeated (--source_weights)

    @property
    def main(self) -> bool:
        return self.rank == 0


def _process(hp: dict):
    """``(rank, world, device)``: the process group joined, threads and the seed set."""
    rank, world, local_rank = dist_env()
    device = pick_device(hp["device"], local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        compute.thread_policy(int(hp.get("threads") or 0), share=int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(hp["seed"] + rank)
    return rank, world, device


def _data(hp: dict):
    """``(data path, data, train_idx, val_idx, batch_idx)``: the training npz and its split; the
    training songs of each batch pass (small sources repeated by --source_weights)."""
    data_path = (Path(hp["data_root"]) / hp["train_data"]
                 if not os.path.isabs(hp["train_data"]) and not Path(hp["train_data"]).exists()
                 else Path(hp["train_data"]))
    data = load_data(data_path)
    data["split"] = resplit(data, float(hp.get("val_fraction") or 0))
    train_idx = np.flatnonzero(data["split"] == 0)
    val_idx = np.flatnonzero(data["split"] == 1)
    if len(train_idx) == 0:
        raise cli.UserError("the training data has no training songs (all are in the validation split); "
                            "--val_fraction 0.1 re-splits its songs, or rebuild it with more songs")
    try:   # small sources (the drummed songs) repeated so they make a fair share of the batches
        batch_idx = dataset.oversample(train_idx, data["metadata"], dataset.parse_weights(hp.get("source_weights")))
    except ValueError as e:
        raise cli.UserError(f"--source_weights: {e}") from None
    if hp.get("val_max_songs") and len(val_idx) > hp["val_max_songs"]:   # a fixed, evenly spread subset
        val_idx = val_idx[np.linspace(0, len(val_idx) - 1, hp["val_max_songs"]).astype(int)]
    return data_path, data, train_idx, val_idx, batch_idx


def _model(hp: dict, data, last: Path, resuming: bool, device):
    """``(model, hp, notes)``: a new model, the resumed one or the one fine-tuned; with a
    checkpoint, its sizes train whatever the flags say (and ``hp`` records them)."""
    if resuming:
        model = load_checkpoint(last, device=device)
        check_resume(model, data, last)
    elif hp.get("init_ckpt"):   # fine-tune (CMT's train.py -p): its weights and sizes, a fresh optimizer
        model = fine_tune_model(Path(hp["init_ckpt"]), data, device)
    else:
        model = new_model(hp, data)
    notes = []
    if resuming or hp.get("init_ckpt"):
        sizes = {k: getattr(model.config, k) for k in ("n_layer", "d_model", "n_head", "d_ff")}
        differ = [f"{k} {v} (not {hp[k]})" for k, v in sizes.items() if k in hp and hp[k] != v]
        if differ:
            notes.append(f"note: the sizes are {last if resuming else hp['init_ckpt']}'s: {', '.join(differ)}")
        hp = {**hp, **sizes}                # so the log and the checkpoint record what trains
    return model, hp, notes


def _log_start(run: Run, resuming: bool, info: dict, notes: list) -> None:
    hp, last = run.hp, run.last
    if resuming:
        run.start_epoch, run.step = int(info.get("epoch") or 0) + 1, int(info.get("step") or 0)
        best = (info.get("extra") or {}).get("best_val", math.inf)
        run.best = float(best) if isinstance(best, (int, float)) and math.isfinite(best) else math.inf
        run.log.line(f"resuming {last} after epoch {run.start_epoch - 1} (step {run.step}, "
                     f"best validation loss {run.best:.4f})")
    elif hp.get("init_ckpt"):
        run.log.line(f"fine-tuning {hp['init_ckpt']} (its weights and sizes; a new optimizer, epochs counted from 0)")
    elif hp["resume"]:
        run.log.line(f"no {last} to resume from: starting afresh")
    for note in notes:
        run.log.line(note)
    n_params = sum(p.numel() for p in run.model.parameters())
    run.log.line(f"model {n_params / 1e6:.2f} M parameters, {len(run.train_idx)} train / {len(run.val_idx)} "
                 f"validation sequences, {run.world} process(es) on {run.device.type}; "
                 f"hp {json.dumps(hp, sort_keys=True)}")
    if len(run.batch_idx) != len(run.train_idx):
        run.log.line(f"source weights {hp['source_weights']}: {len(run.batch_idx)} training sequences per pass "
                     f"({len(run.train_idx)} distinct)")


def setup(hp: dict) -> Run:
    """Process group, data, the model (new or resumed), optimizer, wrappers and the log."""
    rank, world, device = _process(hp)
    data_path, data, train_idx, val_idx, batch_idx = _data(hp)
    exp_dir, log_dir = Path(hp["exp_dir"]) / hp["name"], Path(hp["log_dir"])
    last = exp_dir / "last.pt"
    cli.check_outputs([data_path], [last] + [log_dir / f"{hp['name']}{s}" for s in (".log", ".csv", "_loss.png")],
                      hint="choose another --name, --exp_dir or --log_dir")
    if rank == 0:   # part files of a killed run (kill -9) are removed; a live run's are kept
        cli.clean_stale_parts(exp_dir)
        cli.clean_stale_parts(log_dir, recursive=False)
    resuming = bool(hp["resume"]) and last.exists()
    if not resuming:
        previous_run(exp_dir, bool(hp.get("overwrite")), rank == 0)
    model, hp, notes = _model(hp, data, last, resuming, device)
    if len(val_idx) == 0:
        notes.append("note: no validation songs, so no validation loss and no loss_X_params.pt (only last.pt); "
                     "--val_fraction 0.1 sets a tenth of the songs aside")
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=hp["lr"])
    info = model.checkpoint_info if resuming else {}
    if info.get("optimizer"):
        opt.load_state_dict(info["optimizer"])   # read with the model by load_checkpoint
    net = model
    if hp.get("compile"):
        net = torch.compile(net)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)

    config = model.config
    vocab = {"preset": config.preset, "n_class": list(config.n_class), "init_n_class": list(config.init_n_class),
             "fields": list(config.layout.columns),
             **label_vocab(data, train_idx, default_genre=hp.get("default_genre") or None),
             "data_stats": data_stats.data_stats(data, train_idx),   # for stat_mix.py (SPEC 5b)
             # (checkpoints are written by rank 0 alone: the others skip hashing the corpus)
             "provenance": provenance.provenance(data, data_path) if rank == 0 else {}}
    if hp.get("init_ckpt"):      # a fine-tuned model's provenance names its parent's
        parent = (getattr(model, "vocab", None) or {}).get("provenance") or {}
        vocab["provenance"]["fine_tuned_from"] = {"checkpoint": provenance.portable(str(hp["init_ckpt"])),
                                                  **{k: v for k, v in parent.items() if k != "fine_tuned_from"}}
    run = Run(hp=hp, rank=rank, world=world, device=device, data=data, train_idx=train_idx, val_idx=val_idx,
              model=model, net=net, opt=opt, vocab=vocab, log=Logger(Path(hp["log_dir"]), hp["name"], rank == 0,
                                                                     fields=config.layout.heads),
              last=last, amp=bool(hp.get("amp")), batch_idx=batch_idx)
    _log_start(run, resuming, info, notes)
    return run


def previous_run(exp_dir: Path, overwrite: bool, main: bool) -> None:
    """A new run must not silently replace another's checkpoints: refused while ``exp_dir`` holds
    them (``last.pt``, ``loss_*_params.pt``), unless ``overwrite``, which removes them first (on
    the main rank) so that no stale checkpoint is left beside the new run's."""
    old = [p for p in [exp_dir / "last.pt", *sorted(exp_dir.glob("loss_*_params.pt"))] if p.is_file()]
    if not old:
        return
    if not overwrite:
        raise cli.UserError(f"{exp_dir} already holds a run ({', '.join(p.name for p in old[:3])}"
                            f"{', ...' if len(old) > 3 else ''}): --resume 1 continues it, --overwrite 1 replaces it, "
                            "or choose another --name")
    if main:
        for p in old:
            p.unlink()


def check_representation(model, data: dict, path: Path, flag: str) -> None:
    """Refuse a checkpoint (``--resume``, ``--init_ckpt``) on data of another representation."""
    preset, P = data_preset(data), model.config.layout
    if preset != P.name or data["x"].shape[-1] != P.n_cols:
        raise cli.UserError(f"{flag} {path} is a {P.name} model ({P.n_cols} columns) but the training data is "
                            f"{preset} ({data['x'].shape[-1]} columns); use data of its representation "
                            f"(midi2numpy_mix.py --representation {P.name})")
    if data["init"].shape[-1] != len(P.init_fields):
        raise cli.UserError(f"{flag} {path} expects {len(P.init_fields)} init fields, the data has "
                            f"{data['init'].shape[-1]}")


def new_model(hp: dict, data: dict) -> CMT:
    """A freshly initialised model of the hp block's size for the data's representation."""
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
    check_config(config, "the model flags")
    return CMT(config)


def fine_tune_model(path: Path, data: dict, device) -> CMT:
    """The checkpoint at ``path`` to fine-tune on ``data``: its weights and sizes; refused when the
    data holds classes beyond its vocabularies."""
    model = load_checkpoint(path, device=device)
    check_representation(model, data, path, "--init_ckpt")
    config = model.config
    for c, n in list(enumerate(config.n_class))[:D.COL_IBEAT]:
        top = int(max(data["x"][..., c].max(), data["y"][..., c].max()))
        if top >= n:
            raise cli.UserError(f"--init_ckpt {path}: its {config.layout.columns[c]} vocabulary has "
                                f"{n} classes but the training data holds {top}; fine-tune on data of its kind")
    for name, need in zip(config.layout.init_fields, init_n_class(data)):   # labels it never saw: grown
        if name != "instrument" and model.grow_init_vocab(name, need):
            print(f"note: --init_ckpt {path}: its {name} vocabulary grows to {need} classes for this data")
    return model


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast of the forward pass (``--amp 1``); weights and optimizer stay float32."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def train_epoch(run: Run, epoch: int) -> tuple[float, float, float]:
    """One epoch of optimizer steps; returns (mean training loss over ranks, tokens/s, start time)."""
    hp, world = run.hp, run.world
    # steps_per_epoch counts optimizer steps: with N ranks an epoch takes N times as many batches
    idx = run.train_idx if run.batch_idx is None else run.batch_idx
    batches = rank_batches(epoch_batches(run.data["seq_len"].astype(np.int64), idx, hp, epoch, world),
                           run.rank, world)
    run.net.train()
    t0, tokens, total = time.time(), 0, 0.0
    bar = cli.progress(batches, desc=f"epoch {epoch}", unit="batch", disable=not run.main)
    aug = np.random.default_rng([hp["seed"], epoch, run.rank])   # same shifts when a run is resumed
    for ids in bar:
        x, y, mask, init = to_batch(run.data, ids, hp["max_len"], run.device, int(hp.get("transpose") or 0), aug)
        with autocast(run.device, run.amp):
            losses = field_losses(run.net(x, y, init), y, mask)
        loss = sum(losses.values()) / len(losses)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), hp["grad_clip"])
        # the norm is the same on every rank (gradients are averaged), so all stop together;
        # nothing is saved: last.pt keeps the last good epoch
        if not (torch.isfinite(norm) and math.isfinite(loss.item())):
            raise cli.UserError(f"training diverged at epoch {epoch}, step {run.step + 1}: the loss is "
                                f"{loss.item():g} (not finite); {_kept(run.last)}")
        run.opt.step()
        run.step += 1
        tokens += int(mask.sum().item())
        total += loss.item()
        if run.main and hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tokens * world / (time.time() - t0):.0f}")
    train_loss = _mean_over_ranks(total / max(len(batches), 1), world, run.device)
    return train_loss, tokens * world / max(time.time() - t0, 1e-9), t0


def save_epoch(run: Run, epoch: int, train_loss: float, val_loss: float) -> Path | None:
    """The end-of-epoch checkpoints (main rank): ``last.pt`` always, and
    ``loss_<X>_params.pt`` when the validation loss is the best so far (returned)."""
    best_val = min(run.best, val_loss)
    extra = {"hp": provenance.portable(run.hp), "best_val": best_val, "train_loss": train_loss}
    save_checkpoint(run.last, run.model, vocab=run.vocab, optimizer=run.opt, epoch=epoch,
                    step=run.step, val_loss=val_loss, extra=extra)
    if not val_loss < run.best:
        return None
    named = run.last.parent / f"loss_{loss_tag(val_loss)}_params.pt"
    save_checkpoint(named, run.model, vocab=run.vocab, epoch=epoch, step=run.step, val_loss=val_loss, extra=extra)
    return named


def evaluate(model, data, val_idx, hp, device, rank=0, world=1, amp=False) -> tuple[float, dict]:
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
        with autocast(device, amp):
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


def _kept(last: Path) -> str:
    if last.exists():
        return (f"nothing was saved from this epoch, so {last} holds the last good one: "
                "lower --lr or --grad_clip and --resume 1")
    return "no checkpoint was written: lower --lr or --grad_clip and start again"


def check_hp(hp: dict) -> None:
    """One-line errors for training flags no run can use (before any data is read)."""
    def number(key, lo, hi=math.inf, lo_open=False):
        if hp.get(key) is None:
            return
        v = hp[key]
        ok = isinstance(v, (int, float)) and math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi
        if not ok:
            raise cli.UserError(f"--{key} must be {'above' if lo_open else 'at least'} {lo:g}"
                                f"{'' if hi == math.inf else f' and at most {hi:g}'}, got {v!r}")
    number("lr", 0, lo_open=True)
    number("grad_clip", 0, lo_open=True)
    number("dropout", 0, 0.99)
    for key in ("batch_size", "max_tokens"):
        number(key, 1)
    number("epochs", 1)
    for key in ("steps_per_epoch", "val_max_songs", "max_len", "seed"):
        number(key, 0)
    number("transpose", 0, 127)
    for key in ("amp", "compile", "resume", "overwrite", "data_parallel"):
        if hp.get(key) not in (None, 0, 1, False, True):
            raise cli.UserError(f"--{key} is 0 or 1, got {hp[key]!r}")
    if hp.get("threads") is not None:
        number("threads", 0)
    check_name(hp.get("name"))


def check_name(name) -> None:
    """A run's name is one folder name: exp/<name>/ and logs/<name>.* must stay where they are."""
    name = "" if name is None else str(name)
    if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise cli.UserError(f"--name {name!r}: give a plain name for the run (letters, digits, '-', '_'; no '/', "
                            "no leading '.'): it names exp/<name>/ and logs/<name>.*")


def check_resume(model, data: dict, path: Path) -> None:
    """Refuse to resume a checkpoint on data of another representation or vocabulary."""
    check_representation(model, data, path, "--resume:")
    P = model.config.layout
    need = [max(int(data["x"][..., c].max()), int(data["y"][..., c].max())) + 1 for c in range(P.n_cols)]
    check_vocab(model, dict(zip(P.columns, need)), source=f"--resume {path} on this data")
    init_need = [int(data["init"][..., c].max()) + 1 for c in range(len(P.init_fields))]
    init_names = ["init_instr" if f == "instrument" else f for f in P.init_fields]
    check_vocab(model, dict(zip(init_names, init_need)), source=f"--resume {path} on this data")


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
    from vidscore import controls
    out = {"instruments": trained_instruments(data, idx), **controls.vocab_from_init(data["init"][idx])}
    if default_genre not in (None, ""):
        genres = out.get("genres") or []
        names = ", ".join(D.GENRES[int(g)] for g in genres)
        try:
            gid = D.genre_id(default_genre)
        except KeyError:
            raise cli.UserError(f"default genre {default_genre!r} is not a genre; the training data has {names}") \
                from None
        if gid not in genres:
            raise cli.UserError(f"default genre {D.GENRES[gid]} does not occur in the training songs; "
                                f"they have {names}")
        out["default_genre"] = gid
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
