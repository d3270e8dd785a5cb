"""One soundtrack job: the form's controls in, songs and videos with music out.

:func:`choices` is what the form offers for this model (instruments it knows, key, genre and
emotion where it has them, the General MIDI programs by family); :func:`parse_options` checks
what the page sent (each bad value is a one-line UserError the page shows);
:func:`pipeline_options` turns the stored options into ``pipeline.Options``;
:class:`SoundtrackJob` is the worker's handler: it runs the pipeline (analysis and
composition), draws the beats picture, renders each song with FluidSynth, mixes it onto the
video with ffmpeg and makes the browser preview, reporting each stage and its percentage.
"""
from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

from vidscore import cli
from vidscore import controls
from vidscore import constants as D
from vidscore.generation import job as pipeline
from vidscore import rendering, stems
from vidscore.webui import media

# The form's ranges and defaults come from the controls' table (the CLI checks the same).
TEMPO_RANGE = (D.TEMPO_MIN, D.TEMPO_MAX)         # BMT's tempo tokens span 32..224 bpm
THRESHOLD_RANGE = controls.MIN_STRENGTH_RANGE    # strength classes; below the threshold a visual beat is not forced
DEFAULT_THRESHOLD = D.DEFAULT_MIN_STRENGTH
INSTRUMENTS = {i + 1: name for i, name in enumerate(D.INSTRUMENTS)}   # 1 Drums .. 5 Strings


def known_instruments(model) -> dict[int, str]:
    """{class id: name} of the instruments the checkpoint was trained with (its vocab's
    ``instruments``, as the CLI's --instruments checks); all five when it does not record them
    (the released CMT checkpoint)."""
    vocab = getattr(model, "vocab", None) or {}
    known = vocab.get("instruments") if isinstance(vocab, dict) else None
    return {i: n for i, n in INSTRUMENTS.items() if not known or i in known}


def emotions(model) -> list[str]:
    """The emotion labels ("Q1".."Q4") the checkpoint was trained with (empty: no emotion control;
    only bmt models have one, and only when their data carried emotion labels)."""
    cfg = getattr(model, "config", None)
    if cfg is not None and getattr(cfg, "preset", "cmt") != "bmt":
        return []
    vocab = getattr(model, "vocab", None) or {}
    found = vocab.get("emotions") if isinstance(vocab, dict) else None
    if not found:
        return []
    out = []
    for k in found:
        try:
            eid = D.emotion_id(k)
        except KeyError:
            continue            # 0 = unlabelled songs
        if D.EMOTIONS[eid] not in out:
            out.append(D.EMOTIONS[eid])
    return out


# --- the controls table: the one place the web app reads it (src/controls.py), so the form
# --- offers and accepts exactly what the CLI does
def key_choices(model) -> list[tuple[int, str]]:
    """(id, name) of the keys this model can be asked for (empty: no key control)."""
    cfg = getattr(model, "config", None)
    if cfg is None or controls.is_released(model) or cfg.init_n_class[1] <= 1:
        return []
    known = (getattr(model, "vocab", None) or {}).get("keys")
    ids = [k for k in range(1, min(cfg.init_n_class[1], len(D.KEY_NAMES))) if not known or k in known]
    return [(k, D.KEY_NAMES[k]) for k in ids]


def genre_choices(model) -> list[tuple[int, str]]:
    """(id, name) of the genres this model can be asked for (empty: no genre control)."""
    cfg = getattr(model, "config", None)
    known = (getattr(model, "vocab", None) or {}).get("genres")
    if cfg is None or controls.is_released(model) or not known:
        return []
    return [(g, D.GENRES[g]) for g in known if 0 <= g < min(cfg.init_n_class[0], len(D.GENRES))]


def parse_label(name: str, value, model) -> int | None:
    """The form's ``key`` or ``genre`` field: unset -> None, else parsed by the controls table,
    refused when the form offers no such choice for this model."""
    value = str(value or "").strip()
    if not value:
        return None
    if not {"key": key_choices, "genre": genre_choices}[name](model):
        raise cli.UserError(f"this model has no {name} control; leave the {name} unset")
    return controls.CONTROLS[name].read(value, model, f"the {name}")


def gm_programs() -> list[tuple[str, list[tuple[int, str]]]]:
    """The 128 General MIDI programs grouped by family, 8 per family (names from pretty_midi)."""
    from pretty_midi.constants import INSTRUMENT_CLASSES, INSTRUMENT_MAP
    return [(family, [(p, INSTRUMENT_MAP[p]) for p in range(8 * f, 8 * f + 8)])
            for f, family in enumerate(INSTRUMENT_CLASSES)]


def choices(model) -> dict:
    """Everything the soundtrack form offers for this model."""
    known = known_instruments(model)     # the form offers only these, all checked (as the CLI accepts)
    return {"instruments": known, "known_instruments": list(known),
            "keys": key_choices(model), "genres": genre_choices(model), "emotions": emotions(model),
            "meanings": D.EMOTION_MEANING, "programs": gm_programs(), "default_programs": D.PROGRAMS,
            "pitched": [i for i, name in known.items() if name != "Drums"],
            "music_gain_db": pipeline.Options.music_gain_db, "loudness": pipeline.Options.loudness}


_int = controls.parse_int


def parse_options(fields: Mapping[str, str], instruments: Sequence[str], model, max_songs: int) -> dict:
    """The job's options from the form: threshold, tempo (None: automatic), num_songs,
    instruments (class ids), emotion, key and genre (None when not asked), programs (GM
    program per pitched track), keep_audio, music_gain_db and seed."""
    threshold = controls.parse_min_strength(fields.get("threshold", DEFAULT_THRESHOLD), "the visual-beat threshold")
    num_songs = _int(fields.get("num_songs", 1), "the number of songs", 1, max_songs)
    tempo = None
    if fields.get("tempo_mode", "auto") == "manual":
        tempo = controls.check_tempo(str(fields.get("tempo", "")).strip(), "the tempo")
    elif fields.get("tempo_mode", "auto") != "auto":
        raise cli.UserError("tempo_mode must be 'auto' or 'manual'")
    chosen = sorted({_int(i, "an instrument", 1, len(INSTRUMENTS)) for i in instruments})
    if not chosen:
        raise cli.UserError("choose at least one instrument")
    known = known_instruments(model)
    unknown = [INSTRUMENTS[i] for i in chosen if i not in known]
    if unknown:
        raise cli.UserError(f"this model was not trained with {', '.join(unknown)}; it knows {', '.join(known.values())}")
    emotion = str(fields.get("emotion") or "").strip() or None
    if emotion is not None:
        known = emotions(model)
        if not known:
            raise cli.UserError("this model has no emotion control; leave the emotion unset")
        if emotion not in known:
            raise cli.UserError(f"unknown emotion {emotion!r}; choose one of {', '.join(known)}")
    programs = {}
    for i in chosen:
        name = INSTRUMENTS[i]
        raw = str(fields.get(f"program_{name}") or "").strip()
        if raw and name != "Drums":
            program = _int(raw, f"the {name} sound (General MIDI program)", 0, 127)
            if program != D.PROGRAMS[name]:          # the default sound is no choice worth recording
                programs[name] = program
    gain = str(fields.get("music_gain_db") or "").strip()
    try:
        music_gain_db = float(gain) if gain else pipeline.Options.music_gain_db
    except ValueError:
        raise cli.UserError(f"the music level must be a number of dB, got {gain!r}") from None
    if not -40.0 <= music_gain_db <= 12.0:
        raise cli.UserError(f"the music level must be from -40 to 12 dB, got {music_gain_db:g}")
    seed_raw = str(fields.get("seed") or "").strip()
    seed = _int(seed_raw, "the seed", 0, 2**31 - 1) if seed_raw else secrets.randbelow(2**31)
    return {"threshold": threshold, "tempo": tempo, "num_songs": num_songs, "instruments": chosen,
            "emotion": emotion, "key": parse_label("key", fields.get("key"), model),
            "genre": parse_label("genre", fields.get("genre"), model), "programs": programs,
            "keep_audio": str(fields.get("keep_audio", "")).lower() in ("1", "on", "true", "yes"),
            "music_gain_db": music_gain_db, "seed": seed,
            "stems": str(fields.get("stems", "")).lower() in ("1", "on", "true", "yes")}


def new_seed(options: dict) -> dict:
    """The same options with another seed: regenerate."""
    seed = options["seed"]
    while seed == options["seed"]:
        seed = secrets.randbelow(2**31)
    return {**options, "seed": seed}


def controls_asked(options: dict) -> list[tuple[str, str]]:
    """(key, what was asked) for each control a creator can judge."""
    asked = [("visual_beats", f"music accents on the visual beats (threshold {options['threshold']})"),
             ("tempo", "tempo follows the video" if options.get("tempo") is None
              else f"tempo {options['tempo']:g} bpm"),
             ("instruments", "instruments: " + ", ".join(INSTRUMENTS[i] for i in options["instruments"]))]
    if options.get("emotion"):
        asked.append(("emotion", f"emotion {options['emotion']}"))
    return asked


def describe(options: dict) -> list[str]:
    """The options as short phrases for the job card."""
    parts = [f"threshold {options['threshold']}",
             "automatic tempo" if options.get("tempo") is None else f"{options['tempo']:g} bpm",
             ", ".join(INSTRUMENTS[i] for i in options["instruments"])]
    if options.get("key") is not None:
        parts.append(D.KEY_NAMES[options["key"]])
    if options.get("genre") is not None:
        parts.append(D.GENRES[options["genre"]])
    if options.get("emotion"):
        parts.append(f"emotion {options['emotion']}")
    names = {p: n for _, progs in gm_programs() for p, n in progs}
    for track, program in (options.get("programs") or {}).items():
        parts.append(f"{track}: {names[program]}")
    if options.get("keep_audio"):
        parts.append(f"video's sound kept, music at {options.get('music_gain_db', 0):g} dB")
    if options.get("stems"):
        parts.append("stems")
    n = options["num_songs"]
    parts += [f"{n} song{'s' if n > 1 else ''}", f"seed {options['seed']}"]
    return parts


def pipeline_options(options: dict, out_dir: Path, model=None, hp: dict | None = None) -> pipeline.Options:
    """pipeline.Options for a job: the form's choices laid over the hyperparameter block ``hp``
    (main_cp.HP) under the CLI's flag names, turned into Options by the CLI's own function
    (:func:`pipeline.options_from_hp`), so the same video, seed and settings give the same song
    from either.  Rendering is done by :class:`SoundtrackJob` stage by stage."""
    hp = dict(hp or {})
    programs = ",".join(f"{track}={program}" for track, program in (options.get("programs") or {}).items())
    hp.update(out_dir=str(out_dir), num_songs=options["num_songs"], seed=options["seed"],
              is_tempo=int(options.get("tempo") is not None), my_tempo=options.get("tempo") or 0.0,
              density_threshold=options["threshold"], instruments=",".join(map(str, options["instruments"])),
              emotion=options.get("emotion") or "",
              key="" if options.get("key") is None else str(options["key"]),
              genre="" if options.get("genre") is None else str(options["genre"]),
              program=programs, keep_audio=int(bool(options.get("keep_audio"))),
              music_gain_db=float(options.get("music_gain_db", pipeline.Options.music_gain_db)), render=0,
              stems=int(bool(options.get("stems"))))
    return pipeline.options_from_hp(hp, model)


def forced_times(report: dict) -> list[float]:
    """The seconds of the beats a song was forced to accent, from its report's (bar, bar-beat
    1..16, ...) entries: a bar-beat is a 16th note, 15 / tempo seconds."""
    tempo = float(report["tempo"])
    return sorted({(16 * int(f[0]) + int(f[1]) - 1) * 15.0 / tempo for f in report.get("forced_beats", [])})


def beats_picture(video: Path, options: dict, report: dict, path: Path, name: str = "") -> Path:
    """The analysis picture (video2npz's --visualize: motion, envelope, visual beats) with the
    beats the music was forced to follow marked, titled with the video's shown ``name``.  The
    video's flow features come from the cache the pipeline filled, so this is quick."""
    from vidscore.video import analysis, visualize
    a = analysis.analyse(video, tempo=options.get("tempo"), progress=False)
    tempo = float(report.get("tempo") or a.metadata["tempo"])
    forced = forced_times({**report, "tempo": tempo})
    meta = a.metadata
    title = (f"{name or video.name}: tempo {tempo:.1f} bpm, {len(meta['vbeats'])} visual beats, "
             f"{len(forced)} forced (threshold {options['threshold']})")
    visualize.plot_analysis(a, path, title=title, forced_s=forced,
                            forced_label=f"forced beats (threshold {options['threshold']})")
    return path


class SoundtrackJob:
    """The worker's handler: ``job`` dict in, list of songs (file names and facts) out."""

    def __init__(self, model, data_dir: Path, hp: dict | None = None):
        self.model = model
        self.data_dir = Path(data_dir)
        self.hp = hp

    def upload_path(self, job: dict) -> Path:
        return self.data_dir / "uploads" / job["upload"]

    def out_dir(self, job_id: str) -> Path:
        return self.data_dir / "jobs" / job_id

    def __call__(self, job: dict, stage: Callable[..., None]) -> list[dict]:
        opts = job["options"]
        n = opts["num_songs"]
        video = self.upload_path(job)
        out_dir = self.out_dir(job["id"])
        stage("analysing video", 0.0)
        songs_word = f"{n} song{'s' if n > 1 else ''}"

        last = [0.0]

        def composing(fraction: float, tokens: int) -> None:   # generation's on_step, every 0.5 s
            now = time.monotonic()
            if now - last[0] >= 0.5 or fraction >= 1.0:
                last[0] = now
                stage(f"composing {songs_word}: {100 * fraction:.0f} % of the video, {tokens} tokens", fraction)

        def log(msg: str) -> None:
            stage(f"composing {songs_word} ({msg.split(': ', 1)[-1]})", 0.0)

        popts = pipeline_options(opts, out_dir, self.model, self.hp)
        pipeline.run([video], self.model, popts, log=log, on_step=composing)
        stem = video.stem
        songs = []
        steps = 3 * n                            # render, mix, preview per song
        for k in range(n):
            base = out_dir / f"{stem}_{k}"

            def step(i: int, what: str) -> None:
                done = 3 * k + i
                stage(f"rendering: {100 * done / steps:.0f} % ({what} of song {k + 1} of {n})", done / steps)

            step(0, "synthesising the audio" + (" and the stems" if popts.stems else ""))
            try:
                parts = stems.render_song(f"{base}.mid", f"{base}.wav", with_stems=popts.stems)[1:]
                if parts:
                    stems.zip_stems(parts, out_dir / f"{stem}_{k}_stems.zip")
                step(1, "mixing it onto the video")
                rendering.mux(video, f"{base}.wav", f"{base}.mp4", keep_audio=popts.keep_audio,
                              music_gain_db=popts.music_gain_db, loudness=popts.loudness)
            except rendering.MissingProgram as e:
                raise cli.UserError(str(e)) from None
            step(2, "making the browser preview")
            preview = out_dir / f"{stem}_{k}_preview.mp4"
            media.make_preview(f"{base}.mp4", preview)
            report = _read_json(f"{base}.json")
            errors = report.get("control_errors", {})
            songs.append({
                "k": k,
                "files": {"video": f"{stem}_{k}.mp4", "preview": preview.name, "midi": f"{stem}_{k}.mid",
                          "audio": f"{stem}_{k}.wav", "report": f"{stem}_{k}.json",
                          **({"stems": f"{stem}_{k}_stems.zip"} if parts else {})},
                "preview_media": media.describe(preview),
                "original_media": media.describe(f"{base}.mp4"),
                "tempo": report.get("tempo"), "n_bars": report.get("n_bars"),
                "hit_rate": errors.get("hit_rate"),
            })
        stage("drawing the beats picture", 1.0)
        beats = out_dir / "beats.png"
        try:
            beats_picture(video, opts, _read_json(out_dir / f"{stem}_0.json"), beats, name=job["name"])
        except (cli.UserError, OSError, ValueError) as e:   # the music is made; the picture is extra
            print(f"job {job['id'][:8]}: no beats picture ({e})", flush=True)
        for song in songs:
            song["files"]["beats"] = beats.name if beats.is_file() else None
        return songs


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
