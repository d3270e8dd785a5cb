"""One soundtrack job: the form's controls in, songs and videos with music out.

:func:`parse_options` checks what the page sent (each bad value is a one-line UserError the
page shows); :func:`pipeline_options` turns the stored options into ``pipeline.Options``;
:class:`SoundtrackJob` is the worker's handler: it runs the pipeline (analysis and
composition), renders each song with FluidSynth, muxes it onto the video with ffmpeg and makes
the browser preview, reporting each stage.
"""
from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path
from typing import Callable, Mapping, Sequence

import cli
import dictionary_mix as D
import pipeline
import rendering
from webui import media

TEMPO_RANGE = (32.0, 224.0)      # BMT's tempo tokens span 32..224 bpm
THRESHOLD_RANGE = (1, 10)        # strength classes; below the threshold a visual beat is not forced
DEFAULT_THRESHOLD = 2
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


def emotion_meaning(name: str) -> str:
    return D.EMOTION_MEANING.get(name, "")


def has_option(name: str) -> bool:
    return name in {f.name for f in dataclasses.fields(pipeline.Options)}


def _int(value, what: str, lo: int, hi: int) -> int:
    try:
        v = int(str(value).strip())
    except (TypeError, ValueError):
        raise cli.UserError(f"{what} must be a whole number from {lo} to {hi}, got {value!r}") from None
    if not lo <= v <= hi:
        raise cli.UserError(f"{what} must be from {lo} to {hi}, got {v}")
    return v


def parse_options(fields: Mapping[str, str], instruments: Sequence[str], model, max_songs: int) -> dict:
    """The job's options from the form: threshold, tempo (None: automatic), num_songs,
    instruments (class ids), emotion (None when not asked or not supported) and seed."""
    threshold = _int(fields.get("threshold", DEFAULT_THRESHOLD), "the visual-beat threshold", *THRESHOLD_RANGE)
    num_songs = _int(fields.get("num_songs", 1), "the number of songs", 1, max_songs)
    tempo = None
    if fields.get("tempo_mode", "auto") == "manual":
        raw = str(fields.get("tempo", "")).strip()
        try:
            tempo = float(raw)
        except ValueError:
            raise cli.UserError(f"the tempo must be a number of beats per minute, got {raw!r} "
                                "(or choose automatic tempo)") from None
        lo, hi = TEMPO_RANGE
        if not lo <= tempo <= hi:
            raise cli.UserError(f"the tempo must be from {lo:g} to {hi:g} bpm, got {tempo:g}")
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
    seed_raw = str(fields.get("seed") or "").strip()
    seed = _int(seed_raw, "the seed", 0, 2**31 - 1) if seed_raw else secrets.randbelow(2**31)
    return {"threshold": threshold, "tempo": tempo, "num_songs": num_songs, "instruments": chosen,
            "emotion": emotion, "seed": seed}


def controls_asked(options: dict) -> list[tuple[str, str]]:
    """(key, what was asked) for each control a creator can judge."""
    asked = [("visual_beats", f"music accents on the visual beats (threshold {options['threshold']})"),
             ("tempo", "tempo follows the video" if options.get("tempo") is None
              else f"tempo {options['tempo']:g} bpm"),
             ("instruments", "instruments: " + ", ".join(INSTRUMENTS[i] for i in options["instruments"]))]
    if options.get("emotion"):
        asked.append(("emotion", f"emotion {options['emotion']}"))
    return asked


def pipeline_options(options: dict, out_dir: Path) -> pipeline.Options:
    """pipeline.Options for a job (rendering is done by :class:`SoundtrackJob` stage by stage)."""
    kw = dict(out_dir=str(out_dir), num_songs=options["num_songs"], seed=options["seed"],
              tempo=options.get("tempo"), min_strength=options["threshold"],
              instruments=tuple(options["instruments"]), render=False)
    if options.get("emotion") is not None:
        if not has_option("emotion"):
            raise cli.UserError("this version of the pipeline has no emotion control")
        kw["emotion"] = D.emotion_id(options["emotion"])
    return pipeline.Options(**kw)


class SoundtrackJob:
    """The worker's handler: ``job`` dict in, list of songs (file names and facts) out."""

    def __init__(self, model, data_dir: Path):
        self.model = model
        self.data_dir = Path(data_dir)

    def upload_path(self, job: dict) -> Path:
        return self.data_dir / "uploads" / job["upload"]

    def out_dir(self, job_id: str) -> Path:
        return self.data_dir / "jobs" / job_id

    def __call__(self, job: dict, stage: Callable[[str], None]) -> list[dict]:
        opts = job["options"]
        n = opts["num_songs"]
        video = self.upload_path(job)
        out_dir = self.out_dir(job["id"])
        stage("analysing video")

        def log(msg: str) -> None:
            facts = msg.split(": ", 1)[-1]
            stage(f"composing {n} song{'s' if n > 1 else ''} ({facts})")

        pipeline.run([video], self.model, pipeline_options(opts, out_dir), log=log)
        stem = video.stem
        songs = []
        for k in range(n):
            base = out_dir / f"{stem}_{k}"
            stage(f"rendering song {k + 1} of {n}")
            try:
                rendering.render_wav(f"{base}.mid", f"{base}.wav")
                rendering.mux(video, f"{base}.wav", f"{base}.mp4")
            except rendering.MissingProgram as e:
                raise cli.UserError(str(e)) from None
            stage(f"making the browser preview of song {k + 1} of {n}")
            preview = out_dir / f"{stem}_{k}_preview.mp4"
            media.make_preview(f"{base}.mp4", preview)
            report = _read_json(f"{base}.json")
            errors = report.get("control_errors", {})
            songs.append({
                "k": k,
                "files": {"video": f"{stem}_{k}.mp4", "preview": preview.name, "midi": f"{stem}_{k}.mid",
                          "audio": f"{stem}_{k}.wav", "report": f"{stem}_{k}.json"},
                "preview_media": media.describe(preview),
                "original_media": media.describe(f"{base}.mp4"),
                "tempo": report.get("tempo"), "n_bars": report.get("n_bars"),
                "hit_rate": errors.get("hit_rate"),
            })
        return songs


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
