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
    thresholds: str = "calibrated"      # video -> class mapping: the model's calibration, or "original"


@dataclass
class Result:
    name: str
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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


def metadata_beside(npz: Path, rows: np.ndarray) -> dict | None:
    """The metadata JSON written with a video npz (``<stem>_metadata.json``, ``<stem>.json`` or
    the original's ``metadata.json``), if there is one and it gives the npz's rows (same bars
    and beats under the original's thresholds); else None."""
    from video2npz.metadata import load_metadata, metadata_to_rows
    for cand in (npz.with_name(f"{npz.stem}_metadata.json"), npz.with_suffix(".json"), npz.with_name("metadata.json")):
        if not cand.is_file():
            continue
        try:
            meta = load_metadata(cand, npz.stem)
            orig = metadata_to_rows(meta)
        except (cli.UserError, ValueError, TypeError, KeyError):
            continue
        if orig.shape == rows[:, :6].shape and np.array_equal(orig[:, [0, 3]], rows[:, [0, 3]]):
            return meta
    return None


def video_rows(path: Path, opts: Options, mapping=None) -> tuple[np.ndarray, float, float, Path | None, list[str]]:
    """(rows, tempo, duration, video file or None, files written) for one input.

    ``mapping`` (``calibration.Mapping``, default the original's): the video -> class mapping of
    the rows.  A video npz holds classes, not the motion and weights they came from: when the
    metadata JSON written with it lies beside it, the rows are recomputed from it under
    ``mapping``; otherwise the npz's classes are used as they are (with a note when the mapping
    is not the original's).  (The npz this pipeline writes holds the rows it used.)"""
    import calibration
    mapping = mapping or calibration.original(opts.min_strength)
    out_dir = Path(opts.out_dir)
    if path.suffix == ".npz":
        try:
            z = np.load(path, allow_pickle=False)
            rows = np.asarray(z["input"])
            tempo = float(z["tempo"]) if "tempo" in z.files else None
            duration = float(z["duration"]) if "duration" in z.files else None
        except Exception as e:  # noqa: BLE001
            raise cli.UserError(f"{path} is not a video npz with an 'input' array ({e}); "
                                "make one with src/video2npz/video2npz.sh") from None
        if rows.ndim != 2 or rows.shape[1] < 5 or len(rows) == 0:
            raise cli.UserError(f"{path}: 'input' must be rows of [bar-beat, density, strength, i_beat, n_beat, p_beat]")
        if opts.tempo:
            tempo = opts.tempo
        if tempo is None:
            tempo = 120.0
            print(f"note: {path.name} records no tempo; writing the MIDI at 120 bpm (set one with --my_tempo)", file=sys.stderr)
        if duration is None:
            duration = float(rows[0, 4]) * 60.0 / (4 * tempo)
        meta = metadata_beside(path, rows) if not opts.tempo else None
        if meta is not None:
            rows = mapping.rows(meta)
        elif mapping.name != "original":
            print(f"note: {path.name}: no metadata JSON beside it, so its classes are used as they are "
                  f"(made with the original's thresholds, not the model's calibration)", file=sys.stderr)
        return rows, tempo, duration, None, []
    from video2npz import analyse_video
    meta = analyse_video(str(path), exact=opts.exact, tempo=opts.tempo)
    rows = mapping.rows(meta)
    stem = path.stem
    meta_path, npz_path = out_dir / f"{stem}_metadata.json", out_dir / f"{stem}.npz"
    cli.write_text_atomic(meta_path, json.dumps(meta, indent=1))
    with cli.atomic_path(npz_path) as tmp:
        np.savez(tmp, input=rows, tempo=np.float64(meta["tempo"]), duration=np.float64(meta["duration"]))
    return rows, float(meta["tempo"]), float(meta["duration"]), path, [str(meta_path), str(npz_path)]


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


def check_outputs_safe(inputs: list[Path], outputs: list[Path]) -> None:
    ins = {p.resolve() for p in inputs}
    for o in outputs:
        if o.resolve() in ins:
            raise cli.UserError(f"output {o} would overwrite an input file; choose another --out_dir")


def make_controls(model, opts: Options, mapping) -> generation.Controls:
    """The generation controls of ``opts`` under a video -> class ``mapping`` (its forced tracks,
    strength clamp and the strength class from which visual beats are forced)."""
    known = tuple((getattr(model, "vocab", None) or {}).get("instruments") or ())   # classes it was trained on
    return generation.Controls(C=opts.C, min_strength=mapping.min_strength,
                               instruments=opts.instruments or known or None,
                               forced_tracks=mapping.forced_tracks, strength_max=mapping.strength_max)


def run(inputs: list[Path], model, opts: Options, log=print) -> list[Result]:
    from model import check_vocab
    from numpy2midi_mix import tokens_to_midi
    import metrics

    out_dir = Path(opts.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    import calibration
    mapping = calibration.mapping_for(model, opts.thresholds, opts.min_strength)
    for note in mapping.notes:
        log(f"note: {note}")
    controls = make_controls(model, opts, mapping)
    init = init_block(model, opts)
    warned: set[str] = set()
    for path in inputs:
        name = path.stem
        res = Result(name)
        planned = [out_dir / f"{name}_{k}{ext}" for k in range(opts.num_songs) for ext in (".mid", ".wav", ".mp4", ".json")]
        if path.suffix != ".npz":
            planned += [out_dir / f"{name}_metadata.json", out_dir / f"{name}.npz"]
        check_outputs_safe(inputs, planned)
        rows, tempo, duration, video, written = video_rows(path, opts, mapping)
        res.files += written
        check_vocab(model, {"barbeat": int(rows[:, 0].max()) + 1, "density": int(rows[:, 1].max()) + 1,
                            "strength": int(rows[:, 2].max()) + 1}, source=str(path))
        n_bars = int((rows[:, 0] == D.BAR).sum())
        log(f"{name}: {duration:.1f} s, {tempo:.1f} bpm, {n_bars} bars, "
            f"{int(((rows[:, 0] != D.BAR) & (rows[:, 2] >= mapping.min_strength)).sum())} visual beats to force "
            f"({mapping.name} thresholds)")
        bar = cli.progress(desc=f"{name}: composing {opts.num_songs} song(s)", unit="token")
        controls.tempo = tempo        # bmt models compose for the tempo the MIDI is played at
        songs = generation.generate(model, rows, init, opts.num_songs, controls=controls,
                                    seed=opts.seed, progress=bar)
        bar.close()
        for k, song in enumerate(songs):
            base = out_dir / f"{name}_{k}"
            tokens = np.asarray(song.tokens, dtype=np.int64)
            tokens_to_midi(tokens, f"{base}.mid", tempo, programs=opts.programs)
            res.files.append(f"{base}.mid")
            report = {"video": str(path), "tempo": tempo, "duration": duration, "n_bars": n_bars,
                      "n_tokens": len(tokens), "seed": opts.seed, "C": opts.C, "thresholds": mapping.name,
                      "min_strength": mapping.min_strength,
                      "control_errors": metrics.control_errors_from_tokens(tokens, rows, mapping.min_strength,
                                                                         tracks=song.tracks),
                      "forced_beats": [list(map(int, f)) for f in song.forced]}
            cli.write_text_atomic(f"{base}.json", json.dumps(report, indent=1))
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
        results.append(res)
    return results
