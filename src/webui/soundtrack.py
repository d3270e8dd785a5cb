"""One soundtrack job: the form's controls in, songs and videos with music out.

:func:`parse_options` checks what the page sent (each bad value is a one-line UserError the
page shows); :func:`pipeline_options` turns the stored options into ``pipeline.Options``;
:class:`SoundtrackJob` is the worker's handler: it runs the pipeline (analysis and
composition), renders each song with FluidSynth, muxes it onto the video with ffmpeg and makes
the browser preview, reporting each stage.
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Callable, Mapping, Sequence

import cli
import controls
import dictionary_mix as D
import pipeline
import rendering
from webui import media

# The form's ranges and defaults come from the controls' table (the CLI checks the same).
TEMPO_RANGE = (D.TEMPO_MIN, D.TEMPO_MAX)         # BMT's tempo tokens span 32..224 bpm
THRESHOLD_RANGE = controls.MIN_STRENGTH_RANGE    # strength classes; below the threshold a visual beat is not forced
DEFAULT_THRESHOLD = D.DEFAULT_MIN_STRENGTH
INSTRUMENTS = {i + 1: name for i, name in enumerate(D.INSTRUMENTS)}   # 1 Drums .. 5 Strings


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


_int = controls.parse_int


def parse_options(fields: Mapping[str, str], instruments: Sequence[str], model, max_songs: int) -> dict:
    """The job's options from the form: threshold, tempo (None: automatic), num_songs,
    instruments (class ids), emotion (None when not asked or not supported) and seed."""
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


def pipeline_options(options: dict, out_dir: Path, model=None, hp: dict | None = None) -> pipeline.Options:
    """pipeline.Options for a job: the form's choices laid over the hyperparameter block ``hp``
    (main_cp.HP) under the CLI's flag names, turned into Options by the CLI's own function
    (:func:`pipeline.options_from_hp`), so the same video, seed and settings give the same song
    from either.  Rendering is done by :class:`SoundtrackJob` stage by stage."""
    hp = dict(hp or {})
    hp.update(out_dir=str(out_dir), num_songs=options["num_songs"], seed=options["seed"],
              is_tempo=int(options.get("tempo") is not None), my_tempo=options.get("tempo") or 0.0,
              density_threshold=options["threshold"], instruments=",".join(map(str, options["instruments"])),
              emotion=options.get("emotion") or "", key="", genre="", render=0)
    return pipeline.options_from_hp(hp, model)


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

    def __call__(self, job: dict, stage: Callable[[str], None]) -> list[dict]:
        opts = job["options"]
        n = opts["num_songs"]
        video = self.upload_path(job)
        out_dir = self.out_dir(job["id"])
        stage("analysing video")

        def log(msg: str) -> None:
            facts = msg.split(": ", 1)[-1]
            stage(f"composing {n} song{'s' if n > 1 else ''} ({facts})")

        pipeline.run([video], self.model, pipeline_options(opts, out_dir, self.model, self.hp), log=log)
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
