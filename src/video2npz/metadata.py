"""metadata.json and the inference npz rows (SPEC 6, "metadata.json" / "Inference npz").

metadata.json::

    {"duration": s, "tempo": bpm,
     "vbeats": [{"start_time", "bar", "tick", "weight"}, ...],
     "flow_magnitude_per_bar": [...], ...extra keys}

with i = round(start_time / 60 * tempo * 4), bar = i // 16, tick = i % 16 (a tick is
a 16th note, 16 per 4/4 bar), and the motion speed averaged per bar.

Inference npz rows ``[bar-beat, density, strength, i_beat, n_beat, p_beat]``:
n_beat = ceil(duration / 60 * tempo * 4); for each visual beat, first a Bar row for
every bar up to and including its bar ``[17, density_class + 1, 0, 16 * bar, n_beat, p]``,
then the beat row ``[tick + 1, 0, strength_class, i, n_beat, p]``; then Bar rows up to
the number of bars the video lasts; p = round(100 * i / n_beat) + 1.

Rounding is Python 3's round-half-to-even (``np.round`` / ``round``), as the original.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from cli import UserError

TICKS_PER_BAR = 16
TICKS_PER_BEAT = 4
BAR_TOKEN = 17

#: The inference rows' columns, by name: [bar-beat, density, strength, i_beat, n_beat, p_beat].
#: Every reader of video rows indexes them with these, never with raw numbers.
ROW_BARBEAT, ROW_DENSITY, ROW_STRENGTH, ROW_I_BEAT, ROW_N_BEAT, ROW_P_BEAT = range(6)
ROW_COLUMNS = ("bar-beat", "density", "strength", "i_beat", "n_beat", "p_beat")

#: Motion speed per bar -> density class (fitted so video statistics match music's).
DENSITY_THRESHOLDS = (
    0.008169269189238548, 0.020344337448477745, 0.02979462407529354, 0.041041795164346695,
    0.07087484002113342, 0.10512548685073853, 0.14267262816429138, 0.19095642864704132,
    0.5155120491981506, 0.7514784336090088, 0.9989343285560608, 1.2067525386810303,
    1.6322582960128784, 2.031705141067505, 2.467430591583252, 2.8104422092437744,
)
#: Visual-beat weight -> strength class.
STRENGTH_THRESHOLDS = (
    0, 0.22890276357193542, 0.4838207191278801, 0.7870981363596372, 0.891160136856027,
    0.9645568135300789, 0.991241869205911, 0.9978208223154553, 0.9996656159745393,
    0.9998905521344276,
)

_EPS = 1e-9


def classify(value: float, thresholds) -> int:
    """The first i with value < thresholds[i], else len(thresholds)."""
    for i, thr in enumerate(thresholds):
        if value < thr:
            return i
    return len(thresholds)


def density_class(flow_magnitude: float) -> int:
    return classify(flow_magnitude, DENSITY_THRESHOLDS)


def strength_class(weight: float) -> int:
    return classify(weight, STRENGTH_THRESHOLDS)


def tick_index(start_time: float, tempo: float) -> int:
    """Absolute 16th-note index of a time: round(start_time / 60 * tempo * 4)."""
    return int(np.round(start_time / 60 * tempo * 4))


def n_bars(duration: float, tempo: float) -> int:
    """Bars the video lasts: ceil(duration * tempo / 240), at least 1."""
    return max(1, math.ceil(duration * tempo / 240.0 - _EPS))


def flow_per_bar(motion: np.ndarray, fps: float, tempo: float, duration: float) -> list[float]:
    """Mean motion speed per bar.

    ``motion[j]`` is the speed from grid frame j to j + 1, at time j / fps; it belongs to
    bar floor(j / fps * tempo / 240).  At the video's own tempo (60 * fps / lag) a bar
    is exactly 4 * lag frames, the original's chunks of round(fps * 240 / tempo) frames;
    at a user tempo the bars follow the music's time rather than a rounded frame count.
    A bar that receives no frame (only possible at extreme tempi) repeats the previous.
    """
    nb = n_bars(duration, tempo)
    m = np.asarray(motion, dtype=np.float64)
    if len(m) == 0:
        return [0.0] * nb
    bar = np.floor(np.arange(len(m)) * (tempo / (240.0 * fps)) + _EPS).astype(np.intp)
    bar = np.minimum(bar, nb - 1)
    sums = np.bincount(bar, weights=m, minlength=nb)
    counts = np.bincount(bar, minlength=nb)
    out = []
    last = 0.0
    for s, c in zip(sums, counts):
        if c:
            last = float(s / c)
        out.append(last)
    return out


def build_metadata(*, duration: float, tempo: float, beat_times, beat_weights, motion, fps: float,
                   extra: dict | None = None) -> dict:
    """The metadata.json dict."""
    vbeats = []
    for t, w in zip(beat_times, beat_weights):
        i = tick_index(float(t), tempo)
        vbeats.append({"start_time": float(t), "bar": i // TICKS_PER_BAR, "tick": i % TICKS_PER_BAR,
                       "weight": float(w)})
    meta = {
        "duration": float(duration),
        "tempo": float(tempo),
        "vbeats": vbeats,
        "flow_magnitude_per_bar": flow_per_bar(motion, fps, tempo, duration),
    }
    if extra:
        meta.update(extra)
    return meta


def _p_beat(i: int, n_beat: int) -> int:
    return int(round(100 * i / n_beat)) + 1


def metadata_to_rows(meta: dict, density_thresholds=DENSITY_THRESHOLDS,
                     strength_thresholds=STRENGTH_THRESHOLDS) -> np.ndarray:
    """The inference rows (R, 6) int: [bar-beat, density, strength, i_beat, n_beat, p_beat].

    The classes come from the original's thresholds unless others are given (a model's
    calibrated ones, ``calibration.Mapping``)."""
    check_metadata(meta)
    fmpb = [float(v) for v in meta["flow_magnitude_per_bar"]]
    n_beat = max(1, int(math.ceil(float(meta["duration"]) / 60 * float(meta["tempo"]) * TICKS_PER_BEAT)))

    def density_of(bar: int) -> int:
        if not fmpb:
            return 0
        return classify(fmpb[min(bar, len(fmpb) - 1)], density_thresholds)

    rows: list[list[int]] = []
    bars_done = 0
    for vb in meta["vbeats"]:
        bar, tick = int(vb["bar"]), int(vb["tick"])
        while bar >= bars_done:
            i = bars_done * TICKS_PER_BAR
            rows.append([BAR_TOKEN, density_of(bars_done) + 1, 0, i, n_beat, _p_beat(i, n_beat)])
            bars_done += 1
        i = bar * TICKS_PER_BAR + tick
        rows.append([tick + 1, 0, classify(float(vb["weight"]), strength_thresholds), i, n_beat, _p_beat(i, n_beat)])
    while bars_done < len(fmpb):
        i = bars_done * TICKS_PER_BAR
        rows.append([BAR_TOKEN, density_of(bars_done) + 1, 0, i, n_beat, _p_beat(i, n_beat)])
        bars_done += 1
    return np.asarray(rows, dtype=np.int64).reshape(-1, 6)


def check_metadata(meta) -> None:
    """Raise UserError unless ``meta`` has the metadata.json fields with sane values."""
    if not isinstance(meta, dict):
        raise UserError("metadata must be a JSON object with duration, tempo, vbeats, flow_magnitude_per_bar")
    missing = [k for k in ("duration", "tempo", "vbeats", "flow_magnitude_per_bar") if k not in meta]
    if missing:
        raise UserError(f"metadata lacks {', '.join(missing)} (was it written by video2metadata.py?)")
    try:
        duration, tempo = float(meta["duration"]), float(meta["tempo"])
    except (TypeError, ValueError):
        raise UserError("metadata duration and tempo must be numbers") from None
    if not (duration > 0 and math.isfinite(duration)):
        raise UserError(f"metadata duration must be positive, got {meta['duration']!r}")
    if not (tempo > 0 and math.isfinite(tempo)):
        raise UserError(f"metadata tempo must be positive, got {meta['tempo']!r}")
    for vb in meta["vbeats"]:
        if not isinstance(vb, dict) or not {"bar", "tick", "weight"} <= vb.keys():
            raise UserError("each metadata vbeat needs bar, tick and weight")
        if not (0 <= int(vb["tick"]) < TICKS_PER_BAR and int(vb["bar"]) >= 0):
            raise UserError(f"metadata vbeat out of range: {vb}")


def load_metadata(path, video_name: str | None = None) -> dict:
    """Read a metadata JSON file.

    Also accepts the original's combined file ``{video_name: metadata, ...}``: the entry
    for ``video_name`` is taken (or the only entry).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such metadata file (run video2metadata.py first)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if isinstance(data, dict) and "vbeats" not in data and data and all(isinstance(v, dict) for v in data.values()):
        if video_name and video_name in data:
            data = data[video_name]
        elif len(data) == 1:
            data = next(iter(data.values()))
        else:
            raise UserError(f"{path}: holds {len(data)} videos; name one with --video")
    check_metadata(data)
    return data


def save_npz(path, rows: np.ndarray, tempo: float, duration: float) -> None:
    """The inference npz: rows under "input" (as the original), plus "tempo" and "duration"."""
    import cli

    with cli.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, input=np.asarray(rows, dtype=np.int64), tempo=np.float64(tempo),
                     duration=np.float64(duration))
