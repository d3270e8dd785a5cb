"""metadata.json and the inference npz rows (SPEC 6, "metadata.json" / "Inference npz").

metadata.json::

    {"duration": s, "tempo": bpm,
     "vbeats": [{"start_time", "bar", "tick", "weight"}, ...],
     "flow_magnitude_per_bar": [...], ...extra keys}

Optional keys (older metadata lacks them): ``"scene_cuts"``, the shot boundaries in seconds
(hard cuts; a dissolve or fade counts once, at its middle; :mod:`vidscore.video.scenes`),
``"scene_cut_kinds"`` beside it, and ``"mood"`` (:mod:`vidscore.video.mood`).

with i = round(start_time / 60 * tempo * 4), bar = i // 16, tick = i % 16 (a tick is
a 16th note, 16 per 4/4 bar), and the motion speed averaged per bar.

Inference npz rows ``[bar-beat, density, strength, i_beat, n_beat, p_beat]``:
n_beat = ceil(duration / 60 * tempo * 4); for each visual beat, first a Bar row for
every bar up to and including its bar ``[17, density_class + 1, 0, 16 * bar, n_beat, p]``,
then the beat row ``[tick + 1, 0, strength_class, i, n_beat, p]``; then Bar rows up to
the number of bars the video lasts; p = round(i / n_beat * 100) + 1
(:func:`representation.p_beat` with ``rounding="round"``, exactly the original's expression).

Rounding is Python 3's round-half-to-even (``np.round`` / ``round``), as the original.

Files: the metadata of ``<stem>.mp4`` is ``<stem>_metadata.json`` and its rows ``<stem>.npz``
(:func:`metadata_path`, :func:`npz_path`), wherever they are written or looked for.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from vidscore import constants as D
from vidscore.cli import UserError
from vidscore.music.representation import p_beat

TICKS_PER_BAR = D.TICKS_PER_BAR
TICKS_PER_BEAT = D.TICKS_PER_BEAT
BAR_TOKEN = D.BAR

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

#: The most bars a video may last (2 h 16 min at 120 bpm): work is bounded before it starts,
#: and a metadata beat in bar 10^7 cannot turn a small JSON into a huge npz.
MAX_BARS = 4096
#: The longest video (s) metadata may describe.
MAX_DURATION_S = 4 * 3600.0
#: The most rows a video npz may hold: a Bar row and at most 16 beat rows per bar.
MAX_ROWS = MAX_BARS * (TICKS_PER_BAR + 1)


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


def bar_line(time_s: float, tempo: float) -> int:
    """The bar line nearest a time: bar b starts at b * 240 / tempo s (round half up)."""
    return int(math.floor(float(time_s) * float(tempo) / 240.0 + 0.5))


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
    return int(p_beat(i, n_beat, rounding="round"))


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
    return check_rows(np.asarray(rows, dtype=np.int64).reshape(-1, 6), "metadata")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return _is_number(v) and float(v).is_integer()


def check_tempo(tempo, what: str = "tempo") -> float:
    """A tempo in bpm from a file or a flag: a finite number in the range MIDI and the model allow."""
    from vidscore import constants as D
    try:
        t = float(tempo)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number of beats per minute, got {tempo!r}") from None
    if isinstance(tempo, bool) or not (math.isfinite(t) and D.USER_TEMPO_MIN <= t <= D.USER_TEMPO_MAX):
        raise UserError(f"{what} must be between {D.USER_TEMPO_MIN:g} and {D.USER_TEMPO_MAX:g} bpm, got {tempo!r}")
    return t


def check_duration(duration, what: str = "duration", limit: float = MAX_DURATION_S) -> float:
    """A video duration in seconds: finite, positive and at most ``limit``."""
    try:
        d = float(duration)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number of seconds, got {duration!r}") from None
    if isinstance(duration, bool) or not (math.isfinite(d) and d > 0):
        raise UserError(f"{what} must be a positive number of seconds, got {duration!r}")
    if d > limit:
        raise UserError(f"{what} is {d:.0f} s; at most {limit:g} s is accepted (cut the video into parts)")
    return d


def check_bars(n: int, source: str) -> None:
    if n > MAX_BARS:
        raise UserError(f"{source}: the video lasts {n} bars; at most {MAX_BARS} are accepted "
                        "(cut the video into parts, or give a slower --my_tempo)")


def check_metadata(meta) -> None:
    """Raise UserError unless ``meta`` has the metadata.json fields with sane values: duration and
    tempo in range, ``vbeats`` a list of {bar, tick, weight} in time order with integer bar and
    tick and a finite weight, ``flow_magnitude_per_bar`` a list of finite numbers, and at most
    :data:`MAX_BARS` bars."""
    if not isinstance(meta, dict):
        raise UserError("metadata must be a JSON object with duration, tempo, vbeats, flow_magnitude_per_bar")
    missing = [k for k in ("duration", "tempo", "vbeats", "flow_magnitude_per_bar") if k not in meta]
    if missing:
        raise UserError(f"metadata lacks {', '.join(missing)} (was it written by video2metadata.py?)")
    duration = check_duration(meta["duration"], "metadata duration")
    tempo = check_tempo(meta["tempo"], "metadata tempo")
    check_bars(n_bars(duration, tempo), "metadata")
    vbeats, flow = meta["vbeats"], meta["flow_magnitude_per_bar"]
    if not isinstance(vbeats, list):
        raise UserError(f"metadata vbeats must be a list of beats, got {type(vbeats).__name__}")
    if not isinstance(flow, list) or not all(_is_number(v) and v >= 0 for v in flow):
        raise UserError("metadata flow_magnitude_per_bar must be a list of non-negative numbers")
    if len(flow) > MAX_BARS:
        raise UserError(f"metadata has motion for {len(flow)} bars; at most {MAX_BARS} are accepted")
    last = (-1, -1)
    for k, vb in enumerate(vbeats):
        if not isinstance(vb, dict) or not {"bar", "tick", "weight"} <= vb.keys():
            raise UserError(f"metadata vbeat {k}: each vbeat needs bar, tick and weight")
        bar, tick, weight = vb["bar"], vb["tick"], vb["weight"]
        if not (_is_int(bar) and _is_int(tick)):
            raise UserError(f"metadata vbeat {k}: bar and tick must be whole numbers, got {bar!r} and {tick!r}")
        if not _is_number(weight):
            raise UserError(f"metadata vbeat {k}: weight must be a finite number, got {weight!r}")
        start = vb.get("start_time")      # optional (the beat's time in seconds); evaluation reads it
        if start is not None and not (_is_number(start) and 0 <= start <= duration + 0.5):
            raise UserError(f"metadata vbeat {k}: start_time must be a time in the video (0..{duration:g} s), "
                            f"got {start!r}")
        if not (0 <= tick < TICKS_PER_BAR and 0 <= bar < MAX_BARS):
            raise UserError(f"metadata vbeat {k} out of range (bar 0..{MAX_BARS - 1}, tick 0..{TICKS_PER_BAR - 1}): "
                            f"bar {bar!r}, tick {tick!r}")
        if bar > n_bars(duration, tempo):
            raise UserError(f"metadata vbeat {k} is in bar {bar}, after the end of the video "
                            f"({duration:g} s at {tempo:g} bpm last {n_bars(duration, tempo)} bars)")
        if (bar, tick) < last:
            raise UserError(f"metadata vbeat {k} (bar {bar}, tick {tick}) comes before the one above it; "
                            "vbeats must be in time order")
        last = (bar, tick)
    check_scene_cuts(meta.get("scene_cuts"), duration, "metadata scene_cuts")


def check_scene_cuts(cuts, duration: float, what: str = "scene_cuts") -> list[float]:
    """Scene cuts (s) from metadata or a flag: None (none known) gives []; otherwise a list of
    finite times inside the video, in increasing order."""
    if cuts is None:
        return []
    if not isinstance(cuts, list) or not all(_is_number(c) for c in cuts):
        raise UserError(f"{what} must be a list of times in seconds, got {cuts!r}"[:200])
    bad = [c for c in cuts if not 0 <= c <= duration + 0.5]
    if bad:
        raise UserError(f"{what}: {bad[0]!r} s is not a time in the video (0..{duration:g} s)")
    if any(b <= a for a, b in zip(cuts, cuts[1:])):
        raise UserError(f"{what} must be in increasing order, got {cuts!r}"[:200])
    return [float(c) for c in cuts]


def check_rows(rows, source: str = "video rows") -> np.ndarray:
    """The one validation of inference rows ``[bar-beat, density, strength, i_beat, n_beat, p_beat]``,
    wherever they come from; returns them as int64.  Raises UserError (naming ``source``) unless
    they are a 2-D array of 6 whole, finite, non-negative numbers per row, starting with a Bar row,
    with bar-beat 1..17, density 0..17, strength 0..10, one n_beat > 0, i_beat never decreasing,
    and at most :data:`MAX_BARS` bars."""
    a = np.asarray(rows)
    if a.dtype.kind not in "iuf":
        raise UserError(f"{source}: the rows must be numbers, not {a.dtype} "
                        f"(rows of {', '.join(ROW_COLUMNS)}; make them with src/video2npz/video2npz.sh)")
    if a.ndim != 2 or a.shape[1] != len(ROW_COLUMNS):
        raise UserError(f"{source}: expected rows of {len(ROW_COLUMNS)} columns [{', '.join(ROW_COLUMNS)}], "
                        f"got an array of shape {a.shape}")
    if len(a) == 0:
        raise UserError(f"{source}: holds no rows")
    if len(a) > MAX_ROWS:
        raise UserError(f"{source}: {len(a)} rows; at most {MAX_ROWS} ({MAX_BARS} bars) are accepted")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise UserError(f"{source}: the rows hold NaN or infinite values")
        if (a != np.round(a)).any() or np.abs(a).max() > 2 ** 31:
            raise UserError(f"{source}: the rows must be whole numbers")
    a = a.astype(np.int64)
    limits = {ROW_BARBEAT: (1, BAR_TOKEN), ROW_DENSITY: (0, len(DENSITY_THRESHOLDS) + 1),
              ROW_STRENGTH: (0, len(STRENGTH_THRESHOLDS)), ROW_I_BEAT: (0, (MAX_BARS + 1) * TICKS_PER_BAR),
              ROW_N_BEAT: (1, (MAX_BARS + 1) * TICKS_PER_BAR), ROW_P_BEAT: (0, 2 ** 31)}
    for col, (lo, hi) in limits.items():
        bad = np.flatnonzero((a[:, col] < lo) | (a[:, col] > hi))
        if len(bad):
            raise UserError(f"{source}: row {bad[0]} has {ROW_COLUMNS[col]} {a[bad[0], col]}; "
                            f"it must be {lo}..{hi}")
    if a[0, ROW_BARBEAT] != BAR_TOKEN:
        raise UserError(f"{source}: the rows must start with a Bar row (bar-beat {BAR_TOKEN}), "
                        f"not bar-beat {a[0, ROW_BARBEAT]}")
    back = np.flatnonzero(np.diff(a[:, ROW_I_BEAT]) < 0)
    if len(back):
        raise UserError(f"{source}: i_beat goes back in time at row {back[0] + 1}; rows must be in time order")
    if (a[:, ROW_N_BEAT] != a[0, ROW_N_BEAT]).any():
        raise UserError(f"{source}: n_beat (the video's length in ticks) differs between rows")
    check_bars(int((a[:, ROW_BARBEAT] == BAR_TOKEN).sum()), source)
    return a


def load_video_npz(path, limit_s: float = MAX_DURATION_S) -> tuple[np.ndarray, float | None, float | None]:
    """Read an inference npz: ``(rows, tempo or None, duration or None)``, all checked
    (:func:`check_rows`, :func:`check_tempo`, :func:`check_duration`).  One-line UserError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (a video npz from src/video2npz/video2npz.sh)")
    import zipfile
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not an .npz file (a video npz from src/video2npz/video2npz.sh); a video "
                        "itself goes to main_cp.py --videos")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "input" not in z.files:
                raise UserError(f"{path} has no 'input' array (it holds {', '.join(z.files) or 'nothing'}); "
                                "make a video npz with src/video2npz/video2npz.sh")
            rows, tempo, duration = z["input"], z.get("tempo"), z.get("duration")
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        why = " ".join(str(e).split())[:120] or type(e).__name__
        raise UserError(f"{path} is not a readable video npz ({why}); make one with src/video2npz/video2npz.sh") \
            from None
    rows = check_rows(rows, str(path))

    def scalar(v, name):
        if v is None:
            return None
        v = np.asarray(v)
        if v.size != 1 or v.dtype.kind not in "iuf":
            raise UserError(f"{path}: '{name}' must be one number, got {v.dtype} of shape {v.shape}")
        return v.reshape(()).item()
    tempo = scalar(tempo, "tempo")
    duration = scalar(duration, "duration")
    if tempo is not None:
        tempo = check_tempo(tempo, f"{path}: tempo")
    if duration is not None:
        duration = check_duration(duration, f"{path}: duration", limit_s)
    return rows, tempo, duration


def load_metadata(path, video_name: str | None = None) -> dict:
    """Read a metadata JSON file.

    Also accepts the original's combined file ``{video_name: metadata, ...}``: the entry
    for ``video_name`` is taken (or the only entry).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such metadata file (run video2metadata.py first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        what = " (it is binary: a video or an npz? give the metadata JSON that video2metadata.py writes)" \
            if isinstance(e, UnicodeDecodeError) else ""
        raise UserError(f"{path}: not valid JSON ({' '.join(str(e).split())[:100]}){what}") from None
    if isinstance(data, dict) and "vbeats" not in data and data and all(isinstance(v, dict) for v in data.values()):
        if video_name and video_name in data:
            data = data[video_name]
        elif len(data) == 1:
            data = next(iter(data.values()))
        else:
            raise UserError(f"{path}: holds {len(data)} videos; name one with --video")
    check_metadata(data)
    return data


def metadata_path(folder, stem: str) -> Path:
    """Where the metadata JSON of the video ``<stem>.*`` lives in ``folder``: ``<stem>_metadata.json``.

    The suffix keeps it apart from a song's report ``<stem>_<k>.json`` and from a video that is
    itself named like a song."""
    return Path(folder) / f"{stem}_metadata.json"


def npz_path(folder, stem: str) -> Path:
    """Where the inference npz of the video ``<stem>.*`` lives in ``folder``: ``<stem>.npz`` (as the original)."""
    return Path(folder) / f"{stem}.npz"


def save_npz(path, rows: np.ndarray, tempo: float, duration: float) -> None:
    """The inference npz: rows under "input" (as the original), plus "tempo" and "duration"."""
    from vidscore import cli

    with cli.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, input=np.asarray(rows, dtype=np.int64), tempo=np.float64(tempo),
                     duration=np.float64(duration))
