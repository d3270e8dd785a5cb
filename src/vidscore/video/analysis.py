"""analyse_video: a video file -> the metadata.json dict (SPEC 6), with the cache."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidscore.cli import UserError
from vidscore.video import beats, cache, envelope, features, metadata, mood, scenes, tempo as tempo_mod

ANALYSIS_VERSION = 2

#: A video is still when in no frame pair this fraction of the pixels moves more than
#: half a (360p) pixel: codec noise on a still picture then makes no beats.
STILL_FRACTION = 1e-3


@dataclass
class Analysis:
    """Everything computed for one video (metadata plus the curves behind it)."""

    metadata: dict
    features: features.FlowFeatures
    envelope: np.ndarray  # impact envelope, one sample per grid frame
    peaks: np.ndarray  # frame indices of all envelope peaks
    beats: np.ndarray  # frame indices of the chosen visual beats
    boundaries: list = None  # the shot boundaries (scenes.Boundary); [] for features without scene signals


def check_tempo(tempo) -> float | None:
    """Validate a user tempo (bpm); None means 'estimate it'.  The range is the one all entry points
    use (:func:`controls.check_tempo`: the tempo tokens' 32..224 bpm)."""
    if tempo is None:
        return None
    from vidscore import controls
    return controls.check_tempo(tempo, "tempo")


def is_still(feats: features.FlowFeatures) -> bool:
    """True when nothing in the picture moves (see STILL_FRACTION)."""
    return float(feats.info.get("moving_fraction_max", 1.0)) < STILL_FRACTION


def load_features(path, *, exact: bool = False, cache_dir=None, use_cache: bool = True,
                  workers: int | None = None, progress: bool = True) -> tuple[features.FlowFeatures, str]:
    """(flow features, sha256 of the file), from the cache when possible."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file (give a video file)")
    try:
        sha = cache.file_sha256(path)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    entry = None
    if use_cache:
        entry = cache.entry_path(cache_dir or cache.default_dir(), sha, features.flow_settings(exact))
        feats = cache.load(entry)
        if feats is not None:
            return feats, sha
    feats = features.extract(path, exact=exact, workers=workers, progress=progress)
    if entry is not None:
        cache.save(entry, feats)
    return feats, sha


def analyse_features(feats: features.FlowFeatures, tempo: float | None = None, extra: dict | None = None) -> Analysis:
    """Envelope, beats, tempo and metadata from flow features (cheap; not cached)."""
    fps = feats.fps
    still = is_still(feats)
    env = np.zeros(len(feats.directogram)) if still else envelope.impact_envelope(feats.directogram, fps)
    peaks, chosen = beats.visual_beats(env, fps)
    user_tempo = check_tempo(tempo)
    bpm = user_tempo if user_tempo is not None else tempo_mod.estimate_tempo(env, fps)
    info = dict(feats.info)
    more = {
        "fps": fps,
        "n_frames": info.get("n_frames"),
        "width": info.get("width"),
        "height": info.get("height"),
        "vfr": info.get("vfr", False),
        "mode": info.get("mode"),
        "flow_resolution": [info.get("flow_width"), info.get("flow_height")],
        "tempo_source": "user" if user_tempo is not None else "estimated",
        "n_peaks": int(len(peaks)),
        "still": still,
        "analysis_version": ANALYSIS_VERSION,
    }
    if info.get("decoded_by"):
        more["decoded_by"] = info["decoded_by"]
    bounds = scene_boundaries(feats)
    if feats.frames:
        more["scene_cuts"] = [round(b.time, 3) for b in bounds]
        more["scene_cut_kinds"] = [b.kind for b in bounds]
        more["mood"] = mood.estimate(feats.frames["stats"], feats.motion, feats.duration, len(bounds))
    if extra:
        more.update(extra)
    meta = metadata.build_metadata(
        duration=feats.duration,
        tempo=bpm,
        beat_times=chosen / fps,
        beat_weights=env[chosen],
        motion=feats.motion,
        fps=fps,
        extra=more,
    )
    return Analysis(metadata=meta, features=feats, envelope=env, peaks=peaks, beats=chosen, boundaries=bounds)


def scene_boundaries(feats: features.FlowFeatures) -> list:
    """The shot boundaries of the features' per-frame signals (:func:`scenes.detect`), inside the
    analysed duration; [] when the features have none."""
    fr = feats.frames
    if not fr or len(fr.get("times", ())) < 4:
        return []
    found = scenes.detect(fr["times"], fr["sig"], fr["stats"], fr["change"], fr["plain"])
    return [b for b in found if 0 < b.time < feats.duration]


def analyse(path, *, exact: bool = False, tempo=None, cache_dir=None, use_cache: bool = True,
            workers: int | None = None, progress: bool = True) -> Analysis:
    """Full analysis of one video (see :func:`analyse_video`)."""
    check_tempo(tempo)
    feats, sha = load_features(path, exact=exact, cache_dir=cache_dir, use_cache=use_cache,
                               workers=workers, progress=progress)
    return analyse_features(feats, tempo, extra={"video": os.path.basename(str(path)), "video_sha256": sha})


def analyse_video(path, *, exact: bool = False, tempo=None, cache_dir=None, progress: bool = True,
                  use_cache: bool = True, workers: int | None = None) -> dict:
    """The metadata.json dict of a video.

    ``exact``: flow on 360p frames (reproduces the original; ~4x slower) instead of 180p.
    ``tempo``: a user tempo in bpm overriding the estimate.  ``cache_dir``: where flow
    features are cached (default $CMT_CACHE_DIR or <repo>/.cache/video2npz);
    ``use_cache=False`` bypasses it.  Raises :class:`cli.UserError` for bad input.
    """
    return analyse(path, exact=exact, tempo=tempo, cache_dir=cache_dir, use_cache=use_cache,
                   workers=workers, progress=progress).metadata
