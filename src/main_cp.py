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

from vidscore import cli, hparams
from vidscore import constants as D

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
    scene_cuts="",               # sections at the video's scene cuts: "" (the detected cuts), 0 (none: one section), or cut times in seconds, e.g. "8.0,16.0"
    mood=1,                      # 1: where --key, --genre, --emotion or --my_tempo are not given, the picture's mood (valence, arousal) chooses the mode, genre, emotion and the tempo's octave; 0: the checkpoint's defaults
    render=1,                    # 0: stop at MIDI
    stems=0,                     # 1: also one WAV per instrument (Drums, Piano, ...) in <out_dir>/<name>_<k>_stems/, as long as the mix and summing to it
    keep_audio=0,                # 1: keep the video's own sound and lay the music under it (ducked while the sound is loud)
    music_gain_db=-6.0,          # the music's level under the kept sound, in dB (with --keep_audio 1)
    loudness=-16.0,              # the final mix's integrated loudness in LUFS (EBU R128; -16 suits online video; 0: as rendered)
    max_tokens_per_bar=160,      # generation closes a bar that runs longer than this many tokens
    sampling="type=1.0/0.9,barbeat=1.2/none,density=1.0/0.9,pitch=1.0/0.9,duration=2.0/0.9,instr=1.0/0.9,strength=1.0/0.9,tempo=1.0/0.9,chord=1.0/0.9,velocity=1.0/0.9",  # per field temperature/top-p (none: no nucleus), SPEC section 3
    dtype="auto",                # inference weights: auto (int8 on a CPU, bfloat16 on a GPU that has it, else float32: the same on every machine of a kind) | fastest (timed here on a few steps, cached; the songs follow that machine's timing) | float32 | bfloat16 | int8 (CPU)
    threads=0,                   # torch threads per process; 0: the cores not busy with other work (at least 1), when it starts and every second while it generates
)

PRESETS = {
    "published": {},
    # the bundled model: small enough to train on a 2-core CPU in about an hour
    "small": dict(n_layer=4, d_model=256, n_head=4, d_ff=1024, emb_sizes="32,16,32,128,64,16,32",
                  time_emb_size=64, init_emb_size=32, lr=5e-4, batch_size=8, max_tokens=16384,
                  max_len=2048, epochs=16, steps_per_epoch=200, val_max_songs=200),
}


def parse_args(argv=None) -> dict:
    """The HP block, then --preset, then the flags given (see vidscore.hparams)."""
    return hparams.parse(HP, PRESETS, argv, doc=__doc__, source=__file__)


resolve_paths = hparams.resolve_paths


def inference(hp: dict, videos: list | None = None) -> None:
    """Compose for ``hp["videos"]`` or for every path of ``videos``, as one batch."""
    from vidscore.generation import batch
    batch.compose(hp, videos)


def main() -> None:
    hp = parse_args()
    if hp["seed"] < 0:
        raise cli.UserError("--seed must be 0 or more")
    if hp["mode"] == "train":
        from vidscore.training import loop as training
        training.launch(hp)
    else:
        inference(hp)


if __name__ == "__main__":
    cli.run(main)
