"""The main job: videos (or their npz) in, MIDI, WAV and the same video with music out.

For each input: analyse the video (or read its npz), generate ``num_songs`` songs together
under the video's rhythm controls, write ``<name>_<k>.mid`` at the video's tempo and
``<name>_<k>.json`` with the control errors, render ``<name>_<k>.wav`` with FluidSynth and mux
``<name>_<k>.mp4`` with ffmpeg.  Without FluidSynth or ffmpeg the MIDI is still written and a
one-line message says what to install.  Inputs are never overwritten.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import cli
import dictionary_mix as D
import generation
import rendering

VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
DEFAULT_CKPT = Path(__file__).resolve().parents[1] / "exp" / "bundled" / "model.pt"


@dataclass
class Options:
    out_dir: str = "inference"
    num_songs: int = 1
    C: float = 0.7
    seed: int = 0
    tempo: float | None = None          # user tempo (BMT's is_tempo / my_tempo)
    exact: bool = False                 # the original's full-resolution optical flow
    min_strength: int = 2               # visual beats weaker than this are not forced
    instruments: tuple[int, ...] | None = None
    key: int | None = None
    genre: int | None = None
    emotion: int | None = None          # bmt models: 1..4 = Q1..Q4
    programs: dict | None = None
    render: bool = True
    max_video_s: float = 3600.0         # longer videos are refused before any work


@dataclass
class Result:
    name: str
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None            # the one-line reason this input failed (batch runs go on)


def collect_inputs(path: str | os.PathLike) -> list[Path]:
    """A video/npz file, or every video and npz file in a folder (sorted)."""
    p = Path(path)
    if p.is_dir():
        items = sorted(q for q in p.iterdir() if q.is_file() and (q.suffix.lower() in VIDEO_EXTS or q.suffix == ".npz"))
        if not items:
            raise cli.UserError(f"{p} holds no video (.mp4, .mov, ...) or .npz files")
        return items
    if not p.exists():
        raise cli.UserError(f"{p} does not exist; pass a video file, a video npz, or a folder of them")
    return [p]


def video_rows(path: Path, opts: Options) -> tuple[np.ndarray, float, float, Path | None, list[str]]:
    """(rows, tempo, duration, video file or None, files written) for one input."""
    from video2npz import metadata
    out_dir = Path(opts.out_dir)
    if path.suffix == ".npz":
        rows, tempo, duration = metadata.load_video_npz(path, limit_s=opts.max_video_s)
        if opts.tempo:
            tempo = opts.tempo
        if tempo is None:
            tempo = 120.0
            print(f"note: {path.name} records no tempo; writing the MIDI at 120 bpm (set one with --my_tempo)", file=sys.stderr)
        if duration is None:
            duration = float(rows[0, metadata.ROW_N_BEAT]) * 60.0 / (4 * tempo)
        return rows, tempo, duration, None, []
    from video2npz import analyse_video, metadata_to_rows
    check_video_length(path, opts.max_video_s)
    meta = analyse_video(str(path), exact=opts.exact, tempo=opts.tempo)
    metadata.check_duration(meta["duration"], f"{path.name} duration", opts.max_video_s)
    rows = metadata_to_rows(meta)
    stem = path.stem
    meta_path, npz_path = out_dir / f"{stem}_metadata.json", out_dir / f"{stem}.npz"
    cli.write_json_atomic(meta_path, meta)
    with cli.atomic_path(npz_path) as tmp:
        np.savez(tmp, input=rows, tempo=np.float64(meta["tempo"]), duration=np.float64(meta["duration"]))
    return rows, float(meta["tempo"]), float(meta["duration"]), path, [str(meta_path), str(npz_path)]


def check_video_length(path: Path, max_s: float) -> None:
    """Refuse a video longer than ``max_s`` seconds from its header, before decoding it."""
    from video2npz.decode import VideoSource
    with VideoSource(path) as src:
        fps, count = src.props.fps, src.props.frame_count
    if fps > 0 and count > 0 and count / fps > max_s:
        raise cli.UserError(f"{path.name} lasts {count / fps:.0f} s; at most {max_s:g} s is accepted "
                            "(--max_video_s), so cut it into parts")


def init_block(model, opts: Options) -> np.ndarray:
    """The 7 global tokens: the released checkpoint's constant block, or real labels."""
    info = getattr(model, "checkpoint_info", {}) or {}
    if info.get("format") == "released":
        return np.asarray(D.RELEASED_INIT_BLOCK)
    from representation import init_tokens
    vocab = getattr(model, "vocab", None) or {}
    instruments = list(opts.instruments or vocab.get("instruments") or range(1, 6))
    n_key = model.config.init_n_class[1]
    key = opts.key if opts.key is not None else vocab.get("default_key", 1 if n_key > 1 else 0)
    genre = opts.genre if opts.genre is not None else vocab.get("default_genre", 0)
    emotion = None
    if model.config.preset == "bmt":
        emotion = opts.emotion if opts.emotion is not None else vocab.get("default_emotion", 0)
    return np.asarray(init_tokens(instruments, key, genre, emotion))


def inference_dtype(name: str, model):
    """The dtype to generate in.  Generation reads every weight once per token, so halving the
    bytes halves the time where the CPU has native bfloat16 arithmetic ("auto" picks it
    there); elsewhere bfloat16 would be emulated and slower, so "auto" keeps float32."""
    import torch
    if name not in ("auto", "float32", "bfloat16"):
        raise cli.UserError("--dtype: choose auto, float32 or bfloat16")
    if name == "auto":
        on_cpu = next(model.parameters()).device.type == "cpu"
        native = on_cpu and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        name = "bfloat16" if native else "float32"
    return getattr(torch, name)


def planned_outputs(path: Path, opts: Options) -> list[Path]:
    """Every file :func:`run` may write for one input."""
    out_dir = Path(opts.out_dir)
    name = path.stem
    planned = [out_dir / f"{name}_{k}{ext}" for k in range(opts.num_songs) for ext in (".mid", ".wav", ".mp4", ".json")]
    if path.suffix != ".npz":
        planned += [out_dir / f"{name}_metadata.json", out_dir / f"{name}.npz"]
    return planned


def check_outputs_safe(inputs: list[Path], outputs: list[Path]) -> None:
    cli.check_outputs(inputs, outputs, hint="choose another --out_dir")


def check_plan(inputs: list[Path], opts: Options, other_inputs: tuple = ()) -> None:
    """Before anything runs: the output folder is writable, no output is an input (nor one of
    ``other_inputs``, e.g. the checkpoint), and no two inputs (clip.mp4 and clip.npz) would
    write the same files."""
    cli.check_out_dir(opts.out_dir)
    outputs = [o for p in inputs for o in planned_outputs(p, opts)]
    by_stem: dict[str, Path] = {}
    for p in inputs:
        if p.stem in by_stem:
            raise cli.UserError(f"{by_stem[p.stem].name} and {p.name} would write the same files "
                                f"({p.stem}_0.mid, ...); rename one or run them separately")
        by_stem[p.stem] = p
    check_outputs_safe([*inputs, *other_inputs], outputs)


def run(inputs: list[Path], model, opts: Options, log=print, keep_going: bool = False) -> list[Result]:
    """Compose for every input.  A bad input raises UserError, or with ``keep_going`` gets one
    line on stderr and a Result with ``error`` set, and the run goes on with the others."""
    check_plan(inputs, opts)
    cli.clean_stale_parts(opts.out_dir, recursive=False)
    results, warned = [], set()
    for path in inputs:
        try:
            results.append(run_one(path, model, opts, log, warned))
        except cli.UserError as e:
            if not keep_going or len(inputs) == 1:
                raise
            msg = " ".join(str(e).split())
            print(f"{path.name}: error: {msg}", file=sys.stderr)
            results.append(Result(path.stem, error=msg))
    return results


def run_one(path: Path, model, opts: Options, log=print, warned: set | None = None) -> Result:
    """Compose for one input (see :func:`run`); ``warned``: missing-program notes already printed."""
    from model import check_vocab
    from numpy2midi_mix import tokens_to_midi
    import metrics

    out_dir = Path(opts.out_dir)
    known = tuple((getattr(model, "vocab", None) or {}).get("instruments") or ())   # classes it was trained on
    controls = generation.Controls(C=opts.C, min_strength=opts.min_strength,
                                   instruments=opts.instruments or known or None)
    init = init_block(model, opts)
    name = path.stem
    res = Result(name)
    rows, tempo, duration, video, written = video_rows(path, opts)
    res.files += written
    check_vocab(model, {"barbeat": int(rows[:, 0].max()) + 1, "density": int(rows[:, 1].max()) + 1,
                        "strength": int(rows[:, 2].max()) + 1}, source=str(path))
    n_bars = int((rows[:, 0] == D.BAR).sum())
    log(f"{name}: {duration:.1f} s, {tempo:.1f} bpm, {n_bars} bars, "
        f"{int(((rows[:, 0] != D.BAR) & (rows[:, 2] >= opts.min_strength)).sum())} visual beats to force")
    bar = cli.progress(desc=f"{name}: composing {opts.num_songs} song(s)", unit="token")
    controls.tempo = tempo        # bmt models compose for the tempo the MIDI is played at
    songs = generation.generate(model, rows, init, opts.num_songs, controls=controls,
                                seed=opts.seed, progress=bar)
    bar.close()
    warned = set() if warned is None else warned
    for k, song in enumerate(songs):
        base = out_dir / f"{name}_{k}"
        tokens = np.asarray(song.tokens, dtype=np.int64)
        tokens_to_midi(tokens, f"{base}.mid", tempo, programs=opts.programs)
        res.files.append(f"{base}.mid")
        report = {"video": str(path), "tempo": tempo, "duration": duration, "n_bars": n_bars,
                  "n_tokens": len(tokens), "seed": opts.seed, "C": opts.C,
                  "control_errors": metrics.control_errors_from_tokens(tokens, rows, opts.min_strength,
                                                                     tracks=song.tracks),
                  "forced_beats": [list(map(int, f)) for f in song.forced]}
        cli.write_json_atomic(f"{base}.json", report)
        res.files.append(f"{base}.json")
        if not opts.render:
            continue
        try:
            wav = rendering.render_wav(f"{base}.mid", f"{base}.wav")
            res.files.append(wav)
            if video is not None:
                res.files.append(rendering.mux(video, wav, f"{base}.mp4"))
        except rendering.MissingProgram as e:
            if str(e) not in warned:
                print(f"note: {e}", file=sys.stderr)
                warned.add(str(e))
            res.notes.append(str(e))
    return res

