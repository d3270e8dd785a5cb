"""Train the compound-word Transformer (cmt or bmt tokens), or compose music for videos with it.

    python src/main_cp.py --mode train --train_data music21.npz --name mymodel
    torchrun --nproc_per_node 2 src/main_cp.py --mode train ...      # several GPUs (or CPUs)
    python src/main_cp.py --mode inference --videos videos/demo.mp4  # video in, video with music out
    python src/main_cp.py                  # BMT's way: edit the block below (mode, ...), then run

Every entry of the hyperparameter block below can be overridden by a flag of the same name
(``--lr 3e-4``); ``--preset small`` selects the bundled model's size.  The token
representation (cmt or bmt) comes from the training data (``midi2numpy_mix.py
--representation``) and is recorded in the checkpoint, which inference reads it from.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cli
import dictionary_mix as D

# ------------------------------------------------------------------ hyperparameters
# Edit here; every entry is also a flag (--name value).  Defaults are the published CMT.
HP = dict(
    mode="inference",            # train | inference (BMT: edit here, then `python src/main_cp.py`)
    # run and data
    name="cmt",                  # exp/<name>/ holds checkpoints, logs/<name>.* the logs
    data_root="dataset",         # --train_data is looked up here unless it is a path
    train_data="music21.npz",    # training npz from midi2numpy_mix.py / prepare_corpus.py
    exp_dir="exp",               # checkpoints go to <exp_dir>/<name>/
    log_dir="logs",              # <log_dir>/<name>.log, .csv and _loss.png
    # model (SPEC section 3)
    n_layer=12,                  # Transformer layers
    d_model=512,                 # hidden size
    n_head=8,                    # attention heads (d_model / n_head per head)
    d_ff=2048,                   # feed-forward size
    dropout=0.1,                 # dropout in the embeddings and every block
    emb_sizes="64,32,64,512,128,32,64",   # bar-beat, type, density, pitch, duration, instrument, strength (bmt data adds tempo, chord, velocity: pitch/4, /2, /4, or give all 10)
    time_emb_size=256,           # beat-timing (p_beat) embedding size
    init_emb_size=64,            # genre / key / instrument embedding size each
    attention="auto",            # auto | torch | fast_transformers (training kernel)
    # training (SPEC section 4)
    lr=1e-4,                     # Adam learning rate
    batch_size=6,                # songs per batch (per process)
    max_tokens=60000,            # padded tokens per batch (length-bucketed batches)
    max_len=0,                   # crop songs to this many tokens (0: no crop)
    epochs=200,                  # epochs to train (a resumed run counts the ones done)
    steps_per_epoch=0,           # 0: an epoch is a full pass; N: validate and checkpoint every N batches
    val_fraction=0.0,            # 0: the data's own train/validation split; F: re-split its songs, a share F (by a hash of each song id) for validation
    val_max_songs=0,             # 0: validate on every validation song; N: on a fixed subset of N
    grad_clip=3.0,               # gradient-norm clip
    source_weights="",           # e.g. "openmsx=4,blupi=4": repeat each song of these sources N times per pass (small sources weigh more); "": all 1
    default_genre="",            # the genre the checkpoint uses when inference does not choose one ("": the commonest of the training data)
    transpose=0,                 # augmentation: shift each training song by a random -N..N semitones per batch (key label and chords too); 0: off
    amp=0,                       # 1: bfloat16 autocast for the forward pass (GPUs with bf16: faster, less memory); weights stay float32
    compile=0,                   # 1: torch.compile the model for training (minutes of compiling first; pays off on long GPU runs)
    seed=0,                      # same seed, same batches / same songs
    device="auto",               # auto | cpu | cuda (auto: the GPU where torch sees one, for training and inference)
    gid="",                      # GPU ids as in BMT, e.g. "0" or "0,1" (several: one process each); relative to CUDA_VISIBLE_DEVICES when that is set
    data_parallel=0,             # 1: use every visible GPU (BMT's flag)
    resume=0,                    # 1: continue from exp/<name>/last.pt
    overwrite=0,                 # 1: a new run replaces the checkpoints of an earlier run of this --name (0: such a run is refused)
    init_ckpt="",                # fine-tune: start from this checkpoint's weights and sizes (a new optimizer, epoch 0)
    # inference (SPEC section 5)
    videos="videos/demo.mp4",    # a video, a video npz, or a folder of them
    ckpt="",                     # default: the bundled model, exp/bundled/model.pt
    num_songs=1,                 # songs per video, generated together as one batch
    max_video_s=3600.0,          # longer videos are refused before any work (cut them into parts)
    out_dir="inference",         # where <name>_<k>.mid/.wav/.mp4/.json go
    C=D.DEFAULT_C,               # probability of taking the video's bar density (published: 0.7)
    is_tempo=0,                  # 1: use --my_tempo instead of the video's tempo
    my_tempo=0.0,                # the user tempo in bpm (with --is_tempo 1)
    exact=0,                     # 1: the original's 360p optical flow (slower); 0: fast 180p
    density_threshold=D.DEFAULT_MIN_STRENGTH,  # visual beats with a strength class below this are not forced (published: 2)
    thresholds="calibrated",     # video -> class mapping: calibrated (the checkpoint's, fitted to its data by stat_mix.py) | original (CMT's, fitted for LPD)
    instruments="",              # e.g. "Piano,Bass": the instruments the music may use ("": all it knows)
    key="",                      # e.g. "D minor" ("": the commonest key of the training data)
    genre="",                    # e.g. "Folk" ("": the commonest genre of the training data)
    emotion="",                  # bmt models: Q1 happy/excited, Q2 tense, Q3 sad, Q4 calm ("": the commonest of the training data)
    program="",                  # General MIDI programs for rendering, e.g. "Piano=0,Strings=48"
    render=1,                    # 0: stop at MIDI
    keep_audio=0,                # 1: keep the video's own sound and lay the music under it (ducked while the sound is loud)
    music_gain_db=-6.0,          # the music's level under the kept sound, in dB (with --keep_audio 1)
    loudness=-16.0,              # the final mix's integrated loudness in LUFS (EBU R128; -16 suits online video; 0: as rendered)
    max_tokens_per_bar=160,      # generation closes a bar that runs longer than this many tokens
    sampling="type=1.0/0.9,barbeat=1.2/none,density=1.0/0.9,pitch=1.0/0.9,duration=2.0/0.9,instr=1.0/0.9,strength=1.0/0.9,tempo=1.0/0.9,chord=1.0/0.9,velocity=1.0/0.9",  # per field temperature/top-p (none: no nucleus), SPEC section 3
    dtype="auto",                # inference weights: auto (the fastest here of float32, bfloat16 and, on the CPU, int8: timed on a few steps and cached) | float32 | bfloat16 | int8 (CPU)
    threads=0,                   # torch threads per process; 0: the cores not busy with other work (at least 1), when it starts and every second while it generates
)

PRESETS = {
    "published": {},
    # the bundled model: small enough to train on a 2-core CPU in about an hour
    "small": dict(n_layer=4, d_model=256, n_head=4, d_ff=1024, emb_sizes="32,16,32,128,64,16,32",
                  time_emb_size=64, init_emb_size=32, lr=5e-4, batch_size=8, max_tokens=16384,
                  max_len=2048, epochs=16, steps_per_epoch=200, val_max_songs=200),
}


def _comments() -> dict[str, str]:
    """The comment beside each entry of the HP block, reused as the flag's help."""
    import re
    text = Path(__file__).read_text()
    block = text[text.index("HP = dict("):text.index("PRESETS = {")]
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s+(\w+)=.*?#\s*(.*)$", block, re.M)}


def parse_args(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    notes = _comments()
    ap.add_argument("--mode", choices=["train", "inference"], default=None,
                    help=f"{notes.get('mode', '')} (default: {HP['mode']!r}, from the block at the top of this file)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="published",
                    help="a named set of hyperparameters applied before the other flags")
    for key, default in HP.items():
        if key == "mode":
            continue
        kind = type(default)
        ap.add_argument(f"--{key}", type=kind, default=None, metavar=kind.__name__.upper(),
                        help=f"{notes.get(key, '')} (default: {default!r})".strip())
    args = ap.parse_args(argv)
    hp = dict(HP)
    hp.update(PRESETS[args.preset])
    hp.update({k: v for k, v in vars(args).items() if k in HP and v is not None})
    hp["mode"], hp["preset"] = args.mode or hp["mode"], args.preset
    if hp["mode"] not in ("train", "inference"):
        raise cli.UserError(f"mode {hp['mode']!r} in the HP block of main_cp.py: use 'train' or 'inference'")
    return resolve_paths(hp)


def resolve_paths(hp: dict) -> dict:
    """dataset/, exp/, logs/, inference/, videos/ are the repository's folders from any working folder."""
    import paths
    for key in ("data_root", "exp_dir", "log_dir", "out_dir", "videos", "ckpt", "train_data", "init_ckpt"):
        if hp.get(key):
            hp[key] = str(paths.repo_path(hp[key]))
    return hp


def inference(hp: dict, videos: list | None = None) -> None:
    """Compose for ``hp["videos"]`` (a file or folder), or for every path of ``videos`` (files or
    folders; gen_midi_conditional's glob) as one batch: one model load, one plan checked up front,
    a bad input reported and the others done."""
    import pipeline

    ckpt = Path(hp["ckpt"]) if hp["ckpt"] else pipeline.DEFAULT_CKPT
    if not ckpt.is_file():
        raise cli.UserError(f"no checkpoint at {ckpt}: train one with `python src/main_cp.py --mode train` "
                            "or pass --ckpt pointing at a checkpoint (the released CMT loss_8_params.pt works)")
    if not 1 <= hp["num_songs"] <= MAX_SONGS:
        raise cli.UserError(f"--num_songs must be 1..{MAX_SONGS} (songs are composed together, in memory)")
    if not hp["max_video_s"] > 0:
        raise cli.UserError("--max_video_s must be a positive number of seconds")
    inputs = [q for v in (videos if videos is not None else [hp["videos"]]) for q in pipeline.collect_inputs(v)]
    pipeline.check_plan(inputs, pipeline.Options(out_dir=hp["out_dir"], num_songs=hp["num_songs"]), (ckpt,))
    model = pipeline.load_model(ckpt, hp["device"], hp["dtype"], threads=hp["threads"], batch=hp["num_songs"])
    opts = pipeline.options_from_hp(hp, model)
    results = pipeline.run(inputs, model, opts, keep_going=True)
    if any(r.files for r in results):
        print("\nwritten:")
    for r in results:
        for f in r.files:
            print(f"  {f}")
    failed = [r.name for r in results if r.error]
    if failed:
        raise cli.UserError(f"{len(failed)} of {len(results)} inputs failed ({', '.join(failed)}; "
                            "reasons above); the others were done")


#: The most songs one run composes per video (they are generated together, in memory).
MAX_SONGS = 64


def main() -> None:
    hp = parse_args()
    if hp["seed"] < 0:
        raise cli.UserError("--seed must be 0 or more")
    if hp["mode"] == "train":
        import training
        training.launch(hp)
    else:
        inference(hp)


if __name__ == "__main__":
    cli.run(main)
