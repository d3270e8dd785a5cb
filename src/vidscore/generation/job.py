"""The main job: videos (or their npz) in, MIDI, WAV and the same video with music out.

For each input: analyse the video (or read its npz), generate ``num_songs`` songs together
under the video's rhythm controls, write ``<name>_<k>.mid`` at the video's tempo and
``<name>_<k>.json`` with the control errors, render ``<name>_<k>.wav`` with FluidSynth and mux
``<name>_<k>.mp4`` with ffmpeg (the music alone, or under the video's own sound with
``keep_audio``; loudness-normalised to ``loudness`` LUFS).  Without FluidSynth or ffmpeg the
MIDI is still written and a one-line message says what to install.  Inputs are never
overwritten.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidscore import cli, paths
from vidscore import compute   # (first: its CPU reading starts the thread policy's window, see compute.IMPORTED)
from vidscore import constants as D
from vidscore.generation import generate as generation
from vidscore import rendering
from vidscore.video.metadata import (ROW_BARBEAT, ROW_DENSITY, ROW_I_BEAT, ROW_N_BEAT, ROW_STRENGTH, metadata_path, npz_path,
                                save_npz)

VIDEO_EXTS = D.VIDEO_SUFFIXES
DEFAULT_CKPT = paths.REPO / "exp" / "bundled" / "model.pt"


@dataclass
class Options:
    out_dir: str = "inference"
    num_songs: int = 1
    C: float = D.DEFAULT_C              # probability of taking the video's bar density
    seed: int = 0
    tempo: float | None = None          # user tempo (BMT's is_tempo / my_tempo)
    exact: bool = False                 # the original's full-resolution optical flow
    min_strength: int = D.DEFAULT_MIN_STRENGTH   # visual beats weaker than this are not forced
    instruments: tuple[int, ...] | None = None
    key: int | None = None
    genre: int | None = None
    emotion: int | None = None          # bmt models: 1..4 = Q1..Q4
    programs: dict | None = None
    render: bool = True
    stems: bool = False                 # also one WAV per instrument class, summing to the mix (vidscore.stems)
    keep_audio: bool = False            # keep the video's own sound, the music under it (ducked)
    music_gain_db: float = -6.0         # the music's level under the kept sound (dB)
    loudness: float | None = -16.0      # the final mix's loudness in LUFS (EBU R128); None: as rendered
    max_tokens_per_bar: int = 160       # a bar that runs longer is closed by force
    sampling: dict | None = None        # field -> (temperature, top_p or None); None: sampling.SAMPLING
    max_video_s: float = 3600.0         # longer videos are refused before any work
    thresholds: str = "calibrated"      # video -> class mapping: the model's calibration, or "original"
    scene_cuts: tuple | None = None     # sections at these cuts (s); None: the detected ones; (): no sections
    mood: bool = True                   # key, genre, emotion, tempo octave from the picture where not given


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
        # hidden files are not inputs: macOS's ._clip.mp4 resource forks, our own .part files
        items = sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")
                       and (q.suffix.lower() in VIDEO_EXTS or q.suffix == ".npz"))
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
    from vidscore.video.metadata import load_metadata, metadata_to_rows
    for cand in (npz.with_name(f"{npz.stem}_metadata.json"), npz.with_suffix(".json"), npz.with_name("metadata.json")):
        if not cand.is_file():
            continue
        try:
            meta = load_metadata(cand, npz.stem)
            orig = metadata_to_rows(meta)
        except (cli.UserError, ValueError, TypeError, KeyError):
            continue
        if orig.shape == rows[:, :6].shape and np.array_equal(orig[:, [ROW_BARBEAT, ROW_I_BEAT]], rows[:, [ROW_BARBEAT, ROW_I_BEAT]]):
            return meta
    return None


def video_rows(path: Path, opts: Options, mapping=None) -> tuple[np.ndarray, float, float, Path | None, list[str],
                                                                   dict | None]:
    """(rows, tempo, duration, video file or None, files written, its metadata or None) for one input.

    ``mapping`` (``calibration.Mapping``, default the original's): the video -> class mapping of
    the rows.  A video npz holds classes, not the motion and weights they came from: when the
    metadata JSON written with it lies beside it, the rows are recomputed from it under
    ``mapping``; otherwise the npz's classes are used as they are (with a note when the mapping
    is not the original's).  (The npz this pipeline writes holds the rows it used.)"""
    from vidscore.generation import calibration
    from vidscore.video import metadata
    mapping = mapping or calibration.original(opts.min_strength)
    out_dir = Path(opts.out_dir)
    if path.suffix == ".npz":
        rows, tempo, duration = metadata.load_video_npz(path, limit_s=opts.max_video_s)
        if opts.tempo:
            tempo = opts.tempo
        if tempo is None:
            tempo = 120.0
            print(f"note: {path.name} records no tempo; writing the MIDI at 120 bpm (set one with --my_tempo)", file=sys.stderr)
        if duration is None:
            duration = float(rows[0, ROW_N_BEAT]) * 60.0 / (D.TICKS_PER_BEAT * tempo)
        meta = metadata_beside(path, rows) if not opts.tempo else None
        if meta is not None:
            rows = mapping.rows(meta)
        elif mapping.name != "original":
            print(f"note: {path.name}: no metadata JSON beside it, so its classes are used as they are "
                  f"(made with the original's thresholds, not the model's calibration)", file=sys.stderr)
        return rows, tempo, duration, None, [], meta
    from vidscore.video import analyse_video
    check_video_length(path, opts.max_video_s)
    meta = analyse_video(str(path), exact=opts.exact, tempo=opts.tempo)
    metadata.check_duration(meta["duration"], f"{path.name} duration", opts.max_video_s)
    meta = mood_tempo(path, meta, opts)
    rows = mapping.rows(meta)
    stem = path.stem
    meta_file, npz_file = metadata_path(out_dir, stem), npz_path(out_dir, stem)
    cli.write_json_atomic(meta_file, meta)
    save_npz(npz_file, rows, meta["tempo"], meta["duration"])
    return rows, float(meta["tempo"]), float(meta["duration"]), path, [str(meta_file), str(npz_file)], meta


def mood_tempo(path: Path, meta: dict, opts: Options) -> dict:
    """The metadata at the tempo octave the picture's mood asks for (:func:`mood.tempo_in_range`;
    the features come from the cache), where the user gave no tempo; else ``meta`` itself."""
    if opts.tempo or not opts.mood or not meta.get("mood"):
        return meta
    from vidscore.generation import mood
    from vidscore.video import analyse_video
    bpm = mood.tempo_in_range(meta["tempo"], meta["mood"]["arousal"])
    if abs(bpm - meta["tempo"]) < 1e-9:
        return meta
    out = analyse_video(str(path), exact=opts.exact, tempo=bpm)
    out["tempo_source"] = f"estimated {meta['tempo']:.2f} bpm, moved an octave into the mood's range"
    return out


def check_video_length(path: Path, max_s: float) -> None:
    """Refuse a video longer than ``max_s`` seconds from its header, before decoding it."""
    from vidscore.video.decode import VideoSource
    with VideoSource(path) as src:
        fps, count = src.props.fps, src.props.frame_count
    if fps > 0 and count > 0 and count / fps > max_s:
        raise cli.UserError(f"{path.name} lasts {count / fps:.0f} s; at most {max_s:g} s is accepted "
                            "(--max_video_s), so cut it into parts")


def init_block(model, opts: Options) -> np.ndarray:
    """The 7 global tokens: the released checkpoint's constant block, or real labels (controls' table)."""
    from vidscore import controls
    return controls.init_block(model, {"instruments": opts.instruments, "key": opts.key, "genre": opts.genre,
                                       "emotion": opts.emotion})


def parse_sampling(text: str) -> dict:
    """'type=1.0/0.9,barbeat=1.2/none,...' -> {'type': (1.0, 0.9), 'barbeat': (1.2, None), ...}:
    per field the softmax temperature and the nucleus top-p (none: the whole distribution);
    fields not named keep the published settings (sampling.SAMPLING)."""
    from vidscore.model import sampling as S
    out = {}
    for tok in [t.strip() for t in str(text).split(",") if t.strip()]:
        name, _, value = tok.partition("=")
        temp, _, top_p = value.partition("/")
        try:
            t = float(temp)
            p = None if top_p.strip().lower() in ("", "none") else float(top_p)
        except ValueError:
            t = p = float("nan")
        if not (t > 0 and (p is None or 0 < p <= 1)):
            raise cli.UserError(f"--sampling: expected FIELD=TEMPERATURE/TOP_P (TOP_P in (0, 1] or none), got {tok!r}")
        out[name.strip()] = (t, p)
    unknown = sorted(set(out) - set(S.SAMPLING))
    if unknown:
        raise cli.UserError(f"--sampling: unknown field(s) {', '.join(unknown)}; fields are {', '.join(S.SAMPLING)}")
    return {**S.SAMPLING, **out}


def options_from_hp(hp: dict, model) -> Options:
    """The hyperparameter block of main_cp.py (with its flags, or the web form, applied) as Options:
    the one translation, so the CLI and the web app give the same song for the same video, seed and
    settings.  Missing entries keep the Options defaults; the controls go through controls' table."""
    import dataclasses

    from vidscore import controls
    base = {f.name: f.default for f in dataclasses.fields(Options)}
    get = lambda k, default=None: hp.get(k, default)   # noqa: E731
    if int(get("num_songs", 1)) < 1:
        raise cli.UserError("--num_songs must be at least 1")
    C = float(get("C", base["C"]))
    if not 0.0 <= C <= 1.0:
        raise cli.UserError("--C is a probability: give a value between 0 and 1")
    if get("is_tempo") and not get("my_tempo"):
        raise cli.UserError("--is_tempo 1 needs --my_tempo BPM (a number from 32 to 224)")
    if int(get("max_tokens_per_bar", base["max_tokens_per_bar"])) < 2:
        raise cli.UserError("--max_tokens_per_bar must be at least 2")
    from vidscore import rendering
    try:
        loudness = rendering.check_loudness(get("loudness", base["loudness"]))
    except ValueError as e:
        raise cli.UserError(f"--loudness: {e}") from None
    music_gain_db = float(get("music_gain_db", base["music_gain_db"]))
    if not -60.0 <= music_gain_db <= 20.0:
        raise cli.UserError(f"--music_gain_db: give a level from -60 to 20 dB, got {music_gain_db:g}")
    thresholds = str(get("thresholds", base["thresholds"]))
    if thresholds not in ("calibrated", "original"):
        raise cli.UserError(f"--thresholds: choose calibrated (the model's own) or original (CMT's), got {thresholds!r}")
    stems = str(get("stems", 0)).strip()
    if stems not in ("0", "1"):
        raise cli.UserError(f"--stems takes 0 or 1 (1: one WAV per instrument beside the mix), got {stems!r}")
    chosen = controls.parse_flags(hp, model)
    return Options(stems=stems == "1", out_dir=str(get("out_dir", base["out_dir"])), num_songs=int(get("num_songs", 1)), C=C,
                   seed=int(get("seed", 0)), exact=bool(get("exact", False)), render=bool(get("render", True)),
                   max_tokens_per_bar=int(get("max_tokens_per_bar", base["max_tokens_per_bar"])),
                   sampling=parse_sampling(get("sampling")) if get("sampling") else None,
                   keep_audio=bool(get("keep_audio", False)), music_gain_db=music_gain_db, loudness=loudness,
                   max_video_s=float(get("max_video_s", base["max_video_s"])), thresholds=thresholds, **chosen)


def load_model(ckpt, device: str = "auto", dtype: str = "auto", threads: int = 0, batch: int = 1):
    """The checkpoint on ``device`` (auto: a GPU where torch sees one) in the inference precision
    (``--dtype``: auto times the candidates on this model, see compute.py), with the thread policy
    applied first: the one loading step of the CLI and the web app (the same weights in the same
    precision, the same songs)."""
    from vidscore.model.cmt import load_checkpoint
    compute.thread_policy(threads)
    model = load_checkpoint(ckpt, device=compute.inference_device(device))
    compute.prepare(model, dtype, batch)
    return model


def planned_outputs(path: Path, opts: Options) -> list[Path]:
    """Every file :func:`run` may write for one input."""
    out_dir = Path(opts.out_dir)
    name = path.stem
    planned = [out_dir / f"{name}_{k}{ext}" for k in range(opts.num_songs) for ext in (".mid", ".wav", ".mp4", ".json")]
    if path.suffix != ".npz":
        planned += [metadata_path(out_dir, name), npz_path(out_dir, name)]
    if opts.stems:
        from vidscore import stems
        planned += [p for k in range(opts.num_songs) for p in stems.possible_paths(out_dir / f"{name}_{k}.wav")]
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


def run(inputs: list[Path], model, opts: Options, log=print, keep_going: bool = False,
        on_step=None) -> list[Result]:
    """Compose for every input.  A bad input raises UserError, or with ``keep_going`` gets one
    line on stderr and a Result with ``error`` set, and the run goes on with the others.
    ``on_step(fraction, tokens)``: generation's progress for the input being composed
    (:func:`generation.generate`; the web app's progress line)."""
    check_plan(inputs, opts)
    cli.clean_stale_parts(opts.out_dir, recursive=False)
    from vidscore.generation import calibration
    mapping = calibration.mapping_for(model, opts.thresholds, opts.min_strength)
    for note in mapping.notes:
        log(f"note: {note}")
    controls, init = make_controls(model, opts, mapping), init_block(model, opts)
    results, warned = [], set()
    for path in inputs:
        try:
            results.append(run_one(path, model, opts, log, warned, mapping=mapping, controls=controls, init=init,
                                   on_step=on_step))
        except cli.UserError as e:
            if not keep_going or len(inputs) == 1:
                raise
            msg = " ".join(str(e).split())
            print(f"{path.name}: error: {msg}", file=sys.stderr)
            results.append(Result(path.stem, error=msg))
    return results


def make_controls(model, opts: Options, mapping) -> generation.Controls:
    """The generation controls of ``opts`` under a video -> class ``mapping`` (its forced tracks,
    strength clamp and the strength class from which visual beats are forced)."""
    known = tuple((getattr(model, "vocab", None) or {}).get("instruments") or ())   # classes it was trained on
    controls = generation.Controls(C=opts.C, min_strength=mapping.min_strength,
                                   instruments=opts.instruments or known or None,
                                   forced_tracks=mapping.forced_tracks, strength_max=mapping.strength_max,
                                   max_forced_tracks=mapping.max_forced_tracks,
                                   max_tokens_per_bar=opts.max_tokens_per_bar, sampling=opts.sampling)
    return controls


def run_one(path: Path, model, opts: Options, log, warned: set, *, mapping, controls, init,
            on_step=None) -> Result:
    """Compose for one input (see :func:`run`, which makes ``mapping``, ``controls`` and ``init``
    once per run); ``warned``: the missing-program notes already printed."""
    from vidscore.model.cmt import check_vocab
    from vidscore.music.midi_write import tokens_to_midi
    from vidscore.evaluation import metrics
    from vidscore.generation import mood, sections

    out_dir = Path(opts.out_dir)
    name = path.stem
    res = Result(name)
    cli.check_name_lengths(planned_outputs(path, opts), path.name)
    rows, tempo, duration, video, written, meta = video_rows(path, opts, mapping)
    res.files += written
    song_cuts = sections.for_song(meta, opts.scene_cuts, tempo, duration, rows)
    controls.sections = song_cuts.sections
    chose = mood.choose(meta.get("mood") if meta and opts.mood else None, model,
                        {"key": opts.key, "genre": opts.genre, "emotion": opts.emotion})
    if chose.get("set"):
        init = init_block(model, dataclasses.replace(opts, **chose["set"]))
    check_vocab(model, {"barbeat": int(rows[:, ROW_BARBEAT].max()) + 1,
                        "density": int(rows[:, ROW_DENSITY].max()) + 1,
                        "strength": int(rows[:, ROW_STRENGTH].max()) + 1}, source=str(path))
    is_bar = rows[:, ROW_BARBEAT] == D.BAR
    n_bars = int(is_bar.sum())
    log(f"{name}: {duration:.1f} s, {tempo:.1f} bpm, {n_bars} bars, "
        f"{int((~is_bar & (rows[:, ROW_STRENGTH] >= mapping.min_strength)).sum())} visual beats to force "
        f"({mapping.name} thresholds)")
    bar = cli.progress(desc=f"{name}: composing {opts.num_songs} song(s)", unit="token")
    controls.tempo = tempo        # bmt models compose for the tempo the MIDI is played at
    def each_step(fraction, tokens):   # the thread policy follows the other work on the cores
        compute.recheck_threads()
        if on_step is not None:
            on_step(fraction, tokens)
    songs = generation.generate(model, rows, init, opts.num_songs, controls=controls,
                                seed=opts.seed, progress=bar, on_step=each_step)
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
                  "forced_beats": [list(map(int, f)) for f in song.forced],
                  **sections.song_report(song_cuts, song.sec, tokens, tempo, n_bars), "mood": chose}
        cli.write_json_atomic(f"{base}.json", report)
        res.files.append(f"{base}.json")
        if not opts.render:
            continue
        try:
            from vidscore import stems
            wav, *parts = stems.render_song(f"{base}.mid", f"{base}.wav", with_stems=opts.stems)
            res.files += [wav, *parts]
            if video is not None:
                res.files.append(rendering.mux(video, wav, f"{base}.mp4", keep_audio=opts.keep_audio,
                                               music_gain_db=opts.music_gain_db, loudness=opts.loudness))
        except rendering.RenderError as e:
            raise rendering.RenderError(f"{e} (the song is written as {Path(base).name}.mid)") from None
        except rendering.MissingProgram as e:
            if str(e) not in warned:
                print(f"note: {e}", file=sys.stderr)
                warned.add(str(e))
            res.notes.append(str(e))
    return res

