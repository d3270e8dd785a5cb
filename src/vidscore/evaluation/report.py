"""Evaluate generated songs against a reference set and against their videos.

    python src/evaluate.py --generated inference/ --reference dataset/train.npz --videos videos/

Writes, under --out (default: GENERATED/evaluation): report.json (per-song metrics, per-set
mean / std / n, the settings), report.md (tables and pictures) and plots/*.png.

Inputs (liberal):
* --generated DIR: the *.mid / *.midi files directly in DIR.  A song ``NAME_K.mid`` may have a
  sidecar ``NAME_K.json`` (written by inference) with any of: "video_npz" / "npz",
  "metadata" / "video_metadata" (paths, absolute or relative to the json or to the working
  folder), "video" (a name), "tempo", "duration", "control_errors".
* --videos DIR: a song named NAME_K or NAME is matched to DIR/NAME.npz (inference npz: "input"
  rows [bar-beat, density, strength, i_beat, n_beat, p_beat], optional "tempo", "duration"),
  DIR/NAME_metadata.json, DIR/NAME.json or DIR/NAME/metadata.json (video2metadata output).
* --reference: a training npz (x, seq_len, metadata), a folder of such npz files, or a
  folder of MIDI files (searched recursively).  At most --max_reference songs are sampled
  with a fixed seed.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidscore import cli
from vidscore import constants as D
from vidscore.evaluation import arrangement
from vidscore.evaluation import metrics as M
from vidscore.music import representation as R
from vidscore.video import metadata as VM

MIDI_SUFFIXES = D.MIDI_SUFFIXES
NAME_TO_CLASS = {name.lower(): k for k, name in M.INSTRUMENT_NAMES.items()}

# (key, label, description) of the per-song numbers that are aggregated and reported.
METRICS = (
    ("pche_1bar", "PCHE 1-bar (bits)", "pitch-class histogram entropy, 1-bar windows"),
    ("pche_4bar", "PCHE 4-bar (bits)", "pitch-class histogram entropy, 4-bar windows"),
    ("gps", "GPS", "grooving pattern similarity"),
    ("si_short", "SI 3-8 s", "structureness indicator, segments of 3-8 s"),
    ("si_mid", "SI 8-15 s", "structureness indicator, segments of 8-15 s"),
    ("si_long", "SI 15-128 s", "structureness indicator, segments of 15-128 s"),
    ("repetition", "repetition", "bars (from the third) repeating a bar 2+ bars back (onsets per track + pitch classes)"),
    ("repetition_pooled", "repetition (pooled)", "the same with one onset pattern over all tracks"),
    ("drum_kit_share", "kit share", "drum notes on kit sounds (kick, snares, hi-hats, crash, ride)"),
    ("drum_bar_share", "bars with drums", "bars with at least one drum note"),
    ("drums_throughout", "drums throughout", "1 when every bar has a drum note"),
    ("tracks_used", "tracks used", "instrument classes with at least one note"),
    ("ba_v2m", "BA video->music", "beat alignment: visual beats to nearest note onset"),
    ("ba_m2v", "BA music->video", "beat alignment: note onsets to nearest visual beat"),
    ("hit_rate", "hit rate", "kept visual beats with a note onset at the same 16th"),
    ("beat_coverage", "beat coverage (audio)", "visual beats with an onset in the rendered WAV within 70 ms"),
    ("beat_hit", "beat hit (audio)", "onsets in the rendered WAV within 70 ms of a visual beat"),
    ("tempo_diff_bpm", "|tempo diff| (bpm)", "|song tempo - video tempo|"),
    ("duration_diff_s", "duration diff (s)", "song end - video duration (signed)"),
    ("duration_abs_diff_s", "|duration diff| (s)", "|song end - video duration|"),
    ("density_error", "density error", "mean |song - video| bar density / 16"),
    ("density_mismatch_rate", "density mismatch", "share of video bars whose density differs"),
    ("strength_error", "strength error", "mean |notes - strength| / strength at kept beats, per forced track"),
    ("strength_mismatch_rate", "strength mismatch", "share of (kept beat, forced track) pairs that differ"),
    ("cut_alignment", "cut alignment", "texture change across the bar lines nearest the scene cuts / across the others"),
    ("n_notes", "notes", "number of notes"),
    ("n_bars", "bars", "bars up to the last onset"),
    ("end_s", "length (s)", "end of the last note"),
)
METRIC_KEYS = tuple(k for k, _, _ in METRICS)
METRIC_LABELS = {k: label for k, label, _ in METRICS}


@dataclass
class Song:
    name: str
    path: str
    notes: np.ndarray
    tempo: float
    sidecar: dict = field(default_factory=dict)


@dataclass
class Video:
    """What the metrics need from a video (times in seconds, ticks on the 16th grid)."""
    name: str
    sources: list
    tempo: float | None = None
    duration: float | None = None
    beat_times: np.ndarray = field(default_factory=lambda: np.zeros(0))      # all visual beats
    kept_ticks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    kept_strengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bar_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bar_density: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    scene_cuts: list = field(default_factory=list)                          # seconds (metadata "scene_cuts")


@dataclass
class Settings:
    sigma: float = 0.05
    ba_beats: str = "all"                  # "all" visual beats or only the "kept" ones for BA
    min_strength: int = D.DEFAULT_MIN_STRENGTH                  # visual beats at least this strong are "kept" (forced)
    forced_tracks: tuple | None = None     # None: the sidecar's forced beats, else the forced tracks present
    si: M.SISettings | None = field(default_factory=M.SISettings)  # None: SI not computed


# ----------------------------------------------------------------------------- loading songs

def load_midi(path: str | Path) -> tuple[np.ndarray, float]:
    """Notes on the 16th grid and the tempo (first tempo change; 120 bpm when none) of a MIDI file.

    The notes are read as the tokenizer reads them (:func:`representation.extract_notes`: the same
    instrument classes, onset and duration rounding and de-duplication), but every track counts,
    however few its notes, and long notes keep their length.
    """
    try:
        midi = R.load_midi(path)
        notes, _ = R.extract_notes(midi, min_track_notes=1, check_time_signature=False, max_duration=None)
    except R.BadMidiError as e:
        if str(e).startswith(("no notes", "no track", "no tracks")):
            return M.as_notes(np.zeros((0, 4), np.int64)), _first_tempo(R.load_midi(path))
        raise cli.UserError(f"cannot read MIDI file {cli.printable(path)}: {e}; check that it is a standard MIDI "
                            "file") from None
    return M.as_notes(notes), _first_tempo(midi)


def _first_tempo(midi) -> float:
    return float(midi.tempo_changes[0].tempo) if midi.tempo_changes else 120.0


def load_generated(folder: str | Path) -> tuple[list[Song], list[dict]]:
    """The songs of a folder of generated MIDI files (with their .json sidecars), and the files
    skipped: ``[{"file", "reason"}]``.  A file that cannot be read is skipped, not fatal;
    UserError when no song is left."""
    folder = Path(folder)
    if not folder.is_dir():
        raise cli.UserError(f"--generated {folder} is not a folder; give the folder holding the generated .mid files")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in MIDI_SUFFIXES and (p.is_file() or p.is_symlink()))
    if not paths:
        raise cli.UserError(f"no .mid files in {folder}; run inference first or point --generated at its output folder")
    songs, skipped = [], []
    for p in paths:
        side = p.with_suffix(".json")
        sidecar = {}
        try:
            notes, tempo = load_midi(p)
            if side.is_file():
                try:
                    sidecar = json.loads(side.read_text(encoding="utf-8"))
                except (OSError, ValueError) as e:
                    raise cli.UserError(f"its sidecar {side.name} cannot be read ({e}); fix or remove it") from None
        except cli.UserError as e:
            skipped.append({"file": cli.printable(p.name), "reason": cli.printable(e)})
            continue
        songs.append(Song(cli.printable(p.stem), cli.printable(p), notes, tempo,
                          sidecar if isinstance(sidecar, dict) else {}))
    if not songs:
        raise cli.UserError(f"none of the {len(paths)} .mid files in {folder} can be read "
                            f"({skipped[0]['file']}: {skipped[0]['reason']})")
    if skipped:
        print(f"evaluate: skipped {len(skipped)} of {len(paths)} generated files that cannot be read "
              "(listed in the report)", file=sys.stderr)
    return songs, skipped


def _npy_header(f):
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        return None
    return readers[version](f)  # (shape, fortran_order, dtype)


def _npz_shape(path: Path, key: str) -> tuple:
    """Shape of an npz member, from its header only (KeyError when missing)."""
    with zipfile.ZipFile(path) as zf, zf.open(key + ".npy") as f:
        header = _npy_header(f)
    if header is None:
        with np.load(path, allow_pickle=False) as z:
            return z[key].shape
    return header[0]


def _npz_rows(path: Path, key: str, indices) -> dict:
    """Rows ``indices`` of an (N, ...) array in an npz, compressed or not, streamed from the
    file so that only those rows are ever held in memory (training sets can be gigabytes)."""
    wanted = sorted({int(i) for i in indices})
    with zipfile.ZipFile(path) as zf, zf.open(key + ".npy") as f:
        header = _npy_header(f)
        if header is not None and not header[1] and not header[2].hasobject and len(header[0]) >= 1:
            shape, _, dtype = header
            row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
            out, pos = {}, 0
            for i in wanted:
                skip = (i - pos) * row_bytes
                while skip > 0:                      # read forward and discard
                    got = len(f.read(min(skip, 1 << 24)))
                    if got == 0:
                        break
                    skip -= got
                buf = f.read(row_bytes)
                if len(buf) != row_bytes:
                    raise ValueError(f"{key} in {path} is shorter than its header says")
                out[i] = np.frombuffer(buf, dtype=dtype).reshape(shape[1:])
                pos = i + 1
            return out
    with np.load(path, allow_pickle=False) as z:
        arr = z[key]
        return {i: np.asarray(arr[i]) for i in wanted}


def _npz_small(path: Path, key: str):
    with np.load(path, allow_pickle=False) as z:
        return z[key] if key in z.files else None


def _reference_tempos(meta, n: int, default: float) -> list[float]:
    """Per-song tempo from the npz metadata: a "tempo" number, or "tempo" in per-song dicts
    (a list, or the list under "songs"); else ``default``."""
    tempos = [default] * n
    if isinstance(meta, dict) and isinstance(meta.get("tempo"), (int, float)):
        return [float(meta["tempo"])] * n
    items = meta.get("songs") if isinstance(meta, dict) else meta
    if isinstance(items, list) and len(items) == n:
        for i, it in enumerate(items):
            if isinstance(it, dict) and isinstance(it.get("tempo"), (int, float)):
                tempos[i] = float(it["tempo"])
    return tempos


def _reference_names(meta, n: int, stem: str) -> list[str]:
    """``stem:id`` per row (``stem:id#window`` for songs cut into several windows), else ``stem:row``."""
    items = meta.get("songs") if isinstance(meta, dict) else meta
    names = [f"{stem}:{i}" for i in range(n)]
    if isinstance(items, list) and len(items) == n:
        for i, it in enumerate(items):
            if isinstance(it, dict) and it.get("id") is not None:
                names[i] = f"{stem}:{it['id']}"
                if isinstance(it.get("n_windows"), int) and it["n_windows"] > 1:
                    names[i] += f"#{it.get('window', i)}"
    return names


def _npz_metadata(path: Path):
    try:
        raw = _npz_small(path, "metadata")
        return None if raw is None else json.loads(str(raw.item() if raw.shape == () else raw.ravel()[0]))
    except (ValueError, TypeError):
        return None


def npz_song_count(path: Path) -> int:
    try:
        shape = _npz_shape(path, "x")
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as e:
        raise cli.UserError(f"{path} is not a training npz with an 'x' array ({e}); "
                            "give the file written by data preparation") from None
    if len(shape) != 3 or shape[2] < 9:
        raise cli.UserError(f"{path}: 'x' has shape {shape}, not (songs, length, 9); give a training npz")
    return int(shape[0])


def npz_split(path: Path, n: int):
    """Per row 0 (train) / 1 (validation) from the "split" array or the metadata, else None."""
    split = _npz_small(path, "split")
    if split is not None and len(split) == n:
        return np.asarray(split).astype(np.int64)
    meta = _npz_metadata(path)
    items = meta.get("songs") if isinstance(meta, dict) else meta
    if isinstance(items, list) and len(items) == n and all(isinstance(m, dict) and "split" in m for m in items):
        return np.array([1 if m["split"] == "validation" else 0 for m in items])
    return None


def load_npz_songs(path: Path, indices, tempo: float | None) -> list[Song]:
    """Songs ``indices`` of a training npz: Note rows (type 2) give onset = i_beat, pitch =
    col3 - 1, duration = col4 - 1, instrument = col5 (:func:`metrics.notes_from_tokens`)."""
    n = npz_song_count(path)
    rows_of = _npz_rows(path, "x", indices)
    seq_len = _npz_small(path, "seq_len")
    meta = _npz_metadata(path)
    tempos = _reference_tempos(meta, n, 120.0) if tempo is None else [float(tempo)] * n
    names = _reference_names(meta, n, path.stem)
    items = meta.get("songs") if isinstance(meta, dict) else meta
    items = items if isinstance(items, list) and len(items) == n else [None] * n
    songs = []
    for i in indices:
        rows = rows_of[int(i)]
        if seq_len is not None and len(seq_len) == n:
            rows = rows[: int(seq_len[i])]
        songs.append(Song(names[i], f"{path}#{i}", M.notes_from_tokens(rows), tempos[i],
                          dict(items[i]) if isinstance(items[i], dict) else {}))   # its genre, source, ...
    return songs


def _load_reference_midis(data: Path, midis: list, max_songs: int, rng, seed: int, tempo: float | None):
    pick = sorted(rng.choice(len(midis), size=min(max_songs, len(midis)), replace=False))
    songs, skipped = [], []
    for i in cli.progress(pick, desc="reference MIDI", unit="song"):
        try:
            notes, t = load_midi(midis[i])
        except cli.UserError as e:
            skipped.append({"file": cli.printable(midis[i]), "reason": cli.printable(e)})
            continue
        songs.append(Song(cli.printable(midis[i].relative_to(data)), cli.printable(midis[i]), notes,
                          t if tempo is None else tempo))
    if skipped:
        print(f"evaluate: skipped {len(skipped)} unreadable reference MIDI files (listed in the report)",
              file=sys.stderr)
    return songs, {"path": str(data), "kind": "midi", "available": len(midis), "used": len(songs),
                   "skipped": skipped, "seed": seed}


def load_reference(data: str | Path, max_songs: int, seed: int, tempo: float | None,
                   split: str = "all") -> tuple[list[Song], dict]:
    """Sample at most ``max_songs`` reference songs (fixed ``seed``); returns them and a description.

    ``data``: a training npz, a folder of them, or a folder of MIDI files (recursive).  For npz
    files ``split`` ("all", "train", "validation") keeps the rows of that split (each row is
    one song or one window of a long song).
    """
    data = Path(data)
    rng = np.random.default_rng(seed)
    if data.is_file() and data.suffix == ".npz":
        files = [data]
    elif data.is_dir():
        midis = sorted(p for p in data.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
        if midis:
            return _load_reference_midis(data, midis, max_songs, rng, seed, tempo)
        files = sorted(data.glob("*.npz"))
        if not files:
            raise cli.UserError(f"--reference {data} holds no .mid or .npz files; give a training npz or a MIDI folder")
    else:
        raise cli.UserError(f"--reference {data} is neither an .npz file nor a folder; "
                            "give a training npz or a MIDI folder")
    candidates = []                                 # (file, row)
    for f in files:
        n = npz_song_count(f)
        rows = np.arange(n)
        if split != "all":
            sp = npz_split(f, n)
            if sp is None:
                raise cli.UserError(f"{f} records no train/validation split; use --reference_split all")
            rows = rows[sp == (1 if split == "validation" else 0)]
        candidates += [(f, int(r)) for r in rows]
    if not candidates:
        raise cli.UserError(f"--reference {data} has no songs in split {split!r}; try --reference_split all")
    pick = sorted(rng.choice(len(candidates), size=min(max_songs, len(candidates)), replace=False))
    songs = []
    for f in files:
        local = [candidates[i][1] for i in pick if candidates[i][0] == f]
        if local:
            songs += load_npz_songs(f, local, tempo)
    return songs, {"path": str(data), "kind": "npz", "split": split, "available": len(candidates),
                   "used": len(songs), "seed": seed}


# ----------------------------------------------------------------------------- loading videos

def _load_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise cli.UserError(f"cannot read {path}: {e}; fix the file or leave it out") from None
    return obj if isinstance(obj, dict) else {}


def _scalar(v):
    try:
        f = float(np.asarray(v).ravel()[0])
    except (TypeError, ValueError, IndexError):
        return None
    return f if math.isfinite(f) else None


def load_video(npz: Path | None = None, metadata: Path | None = None, sidecar: dict | None = None,
               name: str = "", min_strength: int = D.DEFAULT_MIN_STRENGTH) -> Video | None:
    """A :class:`Video` from an inference npz and/or a metadata.json (either may be None).

    Control beats and bars come from the npz rows (beats: bar-beat 1..16, kept when strength
    >= ``min_strength``; bars: bar-beat 17).  Without an npz the rows are made from metadata.json
    by :func:`video2npz.metadata.metadata_to_rows`, as inference makes them.  Beat times for BA: the
    metadata's exact "start_time"s when it is there, else the npz beat rows' ticks.  Tempo and
    duration: npz, else metadata, else the sidecar (else n_beat for the duration).
    """
    sidecar = sidecar or {}
    if npz is None and metadata is None:
        return None
    video = Video(name=name, sources=[str(p) for p in (npz, metadata) if p is not None])
    rows = None
    if npz is not None:
        from vidscore.video.metadata import load_video_npz
        rows, video.tempo, video.duration = load_video_npz(npz)     # the one checked reader
    meta = _load_json(metadata) if metadata is not None else {}
    if video.tempo is None:
        video.tempo = _scalar(meta.get("tempo")) if "tempo" in meta else _scalar(sidecar.get("tempo"))
    if video.duration is None:
        video.duration = _scalar(meta.get("duration")) if "duration" in meta else _scalar(sidecar.get("duration"))
    if video.duration is None and rows is not None and len(rows) and video.tempo:
        video.duration = float(M.ticks_to_seconds(rows[0, VM.ROW_N_BEAT], video.tempo))
    vbeats = [b for b in meta.get("vbeats", []) if isinstance(b, dict) and "start_time" in b]
    if rows is None and video.tempo:   # the rows inference would have made (video2npz's rule)
        rows = VM.metadata_to_rows(_complete_metadata(meta, video))
    if rows is not None:
        c = M.video_controls(rows, min_strength)
        video.kept_ticks, video.kept_strengths = c["kept_ticks"], c["kept_strengths"]
        video.bar_index, video.bar_density = c["bar_index"], c["bar_density"]
        if not vbeats and video.tempo:
            video.beat_times = M.ticks_to_seconds(c["beat_ticks"], video.tempo)
    if vbeats:
        video.beat_times = np.sort(np.array([float(b["start_time"]) for b in vbeats]))
    cuts = meta.get("scene_cuts", sidecar.get("scene_cuts")) or []
    video.scene_cuts = [float(c) for c in cuts if isinstance(c, (int, float)) and np.isfinite(c)] \
        if isinstance(cuts, list) else []
    return video


def _complete_metadata(meta: dict, video: Video) -> dict:
    """``meta`` with what :func:`video2npz.metadata.metadata_to_rows` needs filled in: the tempo and
    duration found for the video, and each visual beat's bar and tick from its start time when the
    file gives only that (video2metadata's rule, :func:`video2npz.metadata.tick_index`)."""
    beats = []
    for b in meta.get("vbeats", []):
        if not isinstance(b, dict):
            continue
        b = dict(b)
        if not ("bar" in b and "tick" in b) and "start_time" in b:
            i = VM.tick_index(float(b["start_time"]), video.tempo)
            b["bar"], b["tick"] = i // D.TICKS_PER_BAR, i % D.TICKS_PER_BAR
        b.setdefault("weight", 0.0)
        beats.append(b)
    duration = video.duration
    if duration is None:   # long enough for every beat and every bar of flow
        last = max([int(b["bar"]) + 1 for b in beats] + [len(meta.get("flow_magnitude_per_bar", [])), 1])
        duration = last * 240.0 / video.tempo
    return {**meta, "tempo": video.tempo, "duration": duration, "vbeats": beats,
            "flow_magnitude_per_bar": meta.get("flow_magnitude_per_bar", [])}


def _resolve(value, base: Path) -> Path | None:
    if not isinstance(value, str) or not value:
        return None
    p = Path(value)
    for cand in ([p] if p.is_absolute() else [base / p, p]):
        if cand.is_file():
            return cand
    return None


def _looks_like_metadata(path: Path) -> bool:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and ("vbeats" in obj or "flow_magnitude_per_bar" in obj)


def find_video(song: Song, videos_dir: Path | None, min_strength: int = D.DEFAULT_MIN_STRENGTH) -> Video | None:
    """The video of a generated song, first match wins:

    1. its sidecar json's paths: "video_npz" / "npz" / "input_npz" and "metadata" /
       "video_metadata" / "metadata_json"; or "video" when it names an .npz file;
    2. by name in --videos DIR, then in the song's own folder (inference writes NAME.npz and
       NAME_metadata.json beside NAME_K.mid): NAME.npz and NAME_metadata.json, NAME.json or
       NAME/metadata.json (these two only when they hold "vbeats" or "flow_magnitude_per_bar"),
       for NAME = the stem of the sidecar's "video", the song's name, the song's name less a
       trailing _K.
    """
    side = song.sidecar
    base = Path(song.path).parent
    npz = next((p for p in (_resolve(side.get(k), base) for k in ("video_npz", "npz", "input_npz")) if p), None)
    meta_keys = ("metadata", "video_metadata", "metadata_json")
    meta = next((p for p in (_resolve(side.get(k), base) for k in meta_keys) if p), None)
    named = _resolve(side.get("video"), base)
    if npz is None and named is not None and named.suffix == ".npz":
        npz = named
    if npz is None and meta is None:
        names = [song.name]
        stripped = re.sub(r"_\d+$", "", song.name)
        if stripped != song.name:
            names.append(stripped)
        if isinstance(side.get("video"), str) and side["video"]:
            names.insert(0, Path(side["video"]).stem)
        own_sidecar = Path(song.path).with_suffix(".json").resolve()
        for folder in ([videos_dir] if videos_dir is not None else []) + [base]:
            for nm in names:
                if VM.npz_path(folder, nm).is_file():
                    npz = VM.npz_path(folder, nm)
                if VM.metadata_path(folder, nm).is_file():
                    meta = VM.metadata_path(folder, nm)
                else:   # files named otherwise (the original's, or older ones), when they hold metadata
                    meta = next((c for c in (folder / f"{nm}.json", folder / nm / "metadata.json")
                                 if c.is_file() and c.resolve() != own_sidecar and _looks_like_metadata(c)), None)
                if npz is not None or meta is not None:
                    break
            if npz is not None or meta is not None:
                break
    if npz is None and meta is None:
        return None
    return load_video(npz, meta, side, name=Path(npz or meta).stem.removesuffix("_metadata"),
                      min_strength=min_strength)


def forced_tracks_of(song: Song, settings: Settings):
    """Tracks for the strength error: --forced_tracks, else the instruments of the sidecar's
    "forced_beats" ([bar, position, strength, instrument] each), else None (metrics' default:
    the forced tracks Drums, Piano, Guitar that occur in the song)."""
    if settings.forced_tracks:
        return tuple(settings.forced_tracks)
    fb = song.sidecar.get("forced_beats")
    if isinstance(fb, list) and fb:
        try:
            tracks = sorted({int(f[3]) for f in fb})
        except (TypeError, ValueError, IndexError):
            return None
        return tuple(k for k in tracks if k in M.INSTRUMENT_NAMES) or None
    return None


# ----------------------------------------------------------------------------- computing

def song_metrics(song: Song, video: Video | None, settings: Settings) -> dict:
    """All per-song metrics (NaN where a metric does not apply)."""
    notes, tempo = song.notes, song.tempo
    row = {"name": song.name, "path": song.path, "tempo": tempo, "n_notes": int(len(notes)),
           "n_bars": M.n_bars(notes), "end_s": M.song_end_seconds(notes, tempo),
           "pche_1bar": M.pitch_class_entropy(notes, 1), "pche_4bar": M.pitch_class_entropy(notes, 4),
           "gps": M.grooving_pattern_similarity(notes), **arrangement.arrangement_metrics(notes)}
    if settings.si is not None:
        row.update(M.structureness(notes, tempo, settings.si))
    if video is not None:
        onsets = M.onset_times(notes, tempo)
        vt = video.tempo or tempo
        beats = video.beat_times if settings.ba_beats == "all" else M.ticks_to_seconds(video.kept_ticks, vt)
        row.update({
            "video": video.name, "video_sources": video.sources, "video_tempo": video.tempo,
            "video_duration": video.duration, "n_visual_beats": int(len(video.beat_times)),
            "n_kept_beats": int(len(video.kept_ticks)),
            "ba_v2m": M.beat_alignment(beats, onsets, settings.sigma),
            "ba_m2v": M.beat_alignment(onsets, beats, settings.sigma),
            "hit_rate": M.hit_rate(video.kept_ticks, notes),
            "tempo_diff_bpm": abs(tempo - video.tempo) if video.tempo else float("nan"),
        })
        if video.duration is not None:
            row["duration_diff_s"] = row["end_s"] - video.duration
            row["duration_abs_diff_s"] = abs(row["duration_diff_s"])
        row.update(M.density_error(notes, video.bar_index, video.bar_density))
        tracks = forced_tracks_of(song, settings)
        if tracks is None:
            present = set(np.unique(notes["instrument"]).tolist())
            tracks = tuple(k for k in M.FORCED_TRACKS if k in present) or M.FORCED_TRACKS
        row["forced_tracks"] = [M.INSTRUMENT_NAMES[k] for k in tracks]
        row.update(M.strength_error(notes, video.kept_ticks, video.kept_strengths, tracks))
        if video.scene_cuts:             # the music's turn at the scene cuts (issue 28)
            row.update(M.cut_alignment(notes, [VM.bar_line(c, tempo) for c in video.scene_cuts]))
        row.update(audio_scores(song, beats, video.duration))
    if isinstance(song.sidecar.get("control_errors"), dict):
        row["inference_control_errors"] = song.sidecar["control_errors"]
    return row


def audio_scores(song: Song, beats, duration) -> dict:
    """Beat coverage and hit on the song's rendered WAV (``NAME_K.wav`` beside its MIDI, as
    inference writes it; none when there is no WAV), see :mod:`audio_beats`."""
    wav = Path(song.path).with_suffix(".wav")
    if not wav.is_file():
        return {}
    from vidscore.evaluation import audio_beats
    return {"audio": str(wav), **audio_beats.audio_beat_scores(wav, beats, duration)}


def aggregate(rows: list[dict], keys=METRIC_KEYS) -> dict:
    """Per key: mean, std (population) and n over the songs where the value is finite."""
    out = {}
    for k in keys:
        v = np.array([float(r[k]) for r in rows if _finite(r.get(k))])
        out[k] = {"mean": float(v.mean()) if v.size else None, "std": float(v.std()) if v.size else None,
                  "n": int(v.size)}
    return out


def _finite(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(float(v))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    return obj


# ----------------------------------------------------------------------------- report

def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120] or "song"


def _md(text) -> str:
    """Text for a Markdown table cell (pipes escaped)."""
    return str(text).replace("|", "\\|")


def _fmt(v, digits: int = 3) -> str:
    return f"{float(v):.{digits}f}" if _finite(v) else "–"


def _fmt_agg(a: dict) -> str:
    if not a or a["n"] == 0:
        return "–"
    return f"{a['mean']:.3f} ± {a['std']:.3f} ({a['n']})"


def settings_lines(settings: Settings) -> list[str]:
    si = settings.si
    lines = [
        "- Notes on the 16th grid (4 ticks per quarter, 16 per bar); MIDI onset tick = round(start * 4 / "
        "ticks_per_beat), tempo = the file's first tempo change (120 bpm when none); training-npz "
        "songs use 120 bpm unless their metadata gives a tempo.",
        "- PCHE: 12-bin pitch-class histogram of the notes (drums excluded) starting in each window of 1 or 4 "
        "bars, windows sliding by one bar; entropy in bits; mean over non-empty windows.",
        "- GPS: per bar a 16-position binary onset vector (all instruments, empty bars included); "
        "1 - mean XOR, averaged over all bar pairs i < j (NaN for a one-bar song).",
    ]
    if si is None:
        lines.append("- SI: not computed (--no_si).")
    else:
        lines.append(
            f"- SI: chroma of the pitched notes (energy = seconds sounding, per pitch class) at {si.hop_s:g} s per "
            f"frame ({1 / si.hop_s:g} frames/s; songs longer than {si.max_frames} frames use end / {si.max_frames} s); "
            f"cosine self-similarity (silent frames = uniform chroma); the highest {si.keep_ratio:.0%} of cells kept and "
            f"scaled to [0, 1], the others (and every cell of similarity 0) set to {si.penalty:g}, diagonal 1, values "
            "rounded to multiples of 2^-12; fitness scape plot after Mueller, Jiang & "
            "Grosche (2013): optimal path family with steps (1,1), (2,1), (1,2), normalised score "
            "max(0, (score - M) / cells), normalised coverage max(0, (covered rows - M) / N), fitness = their harmonic "
            "mean (equal-score families: more coverage, then more cells, wins); segments of m frames start every "
            + (f"max(1, floor(m * {si.start_spacing:g})) frames" if si.start_spacing > 0 else "frame")
            + "; SI = max fitness over segment lengths "
            + ", ".join(f"{lo:g}-{hi:g} s" for lo, hi in si.ranges_s) + " (bounds inclusive).")
    lines += [
        f"- BA: mean over {'all' if settings.ba_beats == 'all' else 'the kept'} visual beats of exp(-d^2 / (2 sigma^2)), "
        f"d = distance to the nearest note onset (all instruments, grid times), sigma = {settings.sigma:g} s "
        "(video->music); the mirror averages over distinct note onsets (music->video).  Visual beat times: "
        "metadata.json start_time when available, else the npz beat rows' ticks at the video tempo.",
        f"- Hit rate: share of kept visual beats (npz rows with bar-beat 1..16 and strength >= {settings.min_strength}) "
        "with a note onset "
        "at the same 16th.  (1 - hit rate is a natural reading of CMT's 'time' control error.)",
        "- Beat coverage / beat hit (audio): on the song's rendered WAV (NAME_K.wav beside the MIDI), onsets found "
        "by spectral flux (vidscore.evaluation.audio_beats); coverage = share of the BA's visual beats with an onset "
        "within 70 ms, hit = share of the onsets up to the video's end within 70 ms of one of those beats.  Chance "
        "levels (share of the video within 70 ms of an onset, resp. of a beat) are in report.json.",
        "- Repetition: share of the bars from the third on that repeat a bar at least 2 bars back: the cosine of the "
        "two bars' fingerprints (onset pattern, 16 positions per instrument class, and pitch-class histogram of the "
        f"non-drum notes, each scaled to unit length) is at least {arrangement.REPEAT_COSINE:g}; empty bars never "
        "repeat (vidscore.evaluation.arrangement); pooled: one onset pattern over all tracks.",
        "- Kit share: drum notes on GM kit sounds (kick 35/36, snares 37-40, hi-hats 42/44/46, crashes 49/57, rides "
        "51/59) / drum notes; bars with drums: share of bars with a drum onset; drums throughout: 1 when that share "
        "is 1; tracks used: instrument classes with a note.",
        "- Tempo diff: |song tempo - video tempo|; duration diff: end of the last note - video duration.",
        "- Density error: over the video's Bar rows, mean |song density - video density| / 16, where a bar's "
        "density is its number of distinct onset positions + 1 (SPEC section 2); density mismatch: share of bars "
        "that differ.",
        "- Strength error: at each kept visual beat and each forced track ("
        + (", ".join(M.INSTRUMENT_NAMES[k] for k in settings.forced_tracks) if settings.forced_tracks else
           "those of the song's sidecar 'forced_beats', else Drums, Piano and Guitar where the song has them")
        + "), |notes starting there - video strength| / video strength, averaged; strength mismatch: share of "
        "pairs that differ.",
        "- Aggregates: mean ± population std (n songs with a defined value).",
    ]
    return lines


def build_markdown(report: dict, settings: Settings, plots: dict) -> str:
    gen, ref = report["generated"], report.get("reference")
    L = ["# Evaluation report", ""]
    L.append(f"- Generated: `{gen['path']}` ({len(gen['songs'])} songs, "
             f"{sum(1 for s in gen['songs'] if s.get('video'))} matched to a video)")
    if ref:
        src = ref["source"]
        L.append(f"- Reference: `{src['path']}` ({src['used']} of {src['available']} songs, "
                 f"sampled with seed {src['seed']}" + (f", split {src['split']}" if src.get("split") else "") + ")")
    if report.get("videos"):
        L.append(f"- Videos: `{report['videos']}`")
    L += ["", "## Summary (mean ± std (n))", "", "| metric | generated | reference |", "|---|---|---|"]
    for k, label, _ in METRICS:
        g = gen["aggregate"].get(k)
        r = ref["aggregate"].get(k) if ref else None
        if (g and g["n"]) or (r and r["n"]):
            L.append(f"| {_md(label)} | {_fmt_agg(g)} | {_fmt_agg(r) if ref else '–'} |")
    L += ["", "Published figures for context (SPEC section 9; other data and implementations): PCHE data 4.452, "
          "CMT 3.617-4.113; GPS data 0.968, CMT 0.599-0.810; SI data 0.488, CMT 0.200-0.268; CMT control errors "
          "density 0.107, strength 0.001, time 0.028.", ""]
    cols = [k for k in ("pche_1bar", "pche_4bar", "gps", "si_short", "si_mid", "si_long", "ba_v2m", "ba_m2v",
                        "hit_rate", "beat_coverage", "beat_hit", "tempo_diff_bpm", "duration_diff_s", "density_error", "strength_error")
            if any(_finite(s.get(k)) for s in gen["songs"])]
    L += ["## Generated songs", "", "| song | video | " + " | ".join(_md(METRIC_LABELS[k]) for k in cols) + " |",
          "|---|---|" + "---|" * len(cols)]
    for s in gen["songs"]:
        cells = [_md(s["name"]), _md(s.get("video") or "–")] + [_fmt(s.get(k)) for k in cols]
        L.append("| " + " | ".join(cells) + " |")
    skipped = gen.get("skipped", []) + (ref["source"].get("skipped", []) if ref else [])
    if skipped:
        L += ["", "## Files skipped (they cannot be read)", "", "| file | reason |", "|---|---|"]
        L += [f"| {_md(f['file'])} | {_md(f['reason'])} |" for f in skipped]
    if plots.get("distributions"):
        L += ["", "## Metric distributions", "", f"![metric distributions]({plots['distributions']})"]
    if plots.get("piano_rolls"):
        L += ["", "## Piano rolls", "",
              "Colour = instrument; dashed grey = visual beats; red = visual beats kept by the control rules; "
              "black = end of the video.", ""]
        for name, rel in plots["piano_rolls"]:
            L += [f"### {name}", "", f"![{name}]({rel})", ""]
    L += ["", "## Settings", ""] + settings_lines(settings) + [""]
    return "\n".join(L)


def evaluate(generated: str, reference: str | None = None, videos: str | None = None, out: str | None = None,
             max_reference: int = 200, seed: int = 0, reference_tempo: float | None = None,
             settings: Settings | None = None, plots: bool = True, reference_split: str = "all") -> dict:
    """Run the whole evaluation and write the report files; returns the report dict."""
    settings = settings or Settings()
    out_dir = Path(out) if out else Path(generated) / "evaluation"
    videos_dir = Path(videos) if videos else None
    if videos_dir is not None and not videos_dir.is_dir():
        raise cli.UserError(f"--videos {videos_dir} is not a folder; "
                            "give the folder holding the video npz / metadata files")
    cli.check_out_dir(out_dir, "--out")
    songs, skipped = load_generated(generated)
    gen_rows, gen_videos = [], []
    for song in cli.progress(songs, desc="generated", unit="song"):
        # inference's sidecar says from which strength class its rows' beats were forced
        # (1 with a calibrated mapping: class 0 marks the dropped beats)
        video = find_video(song, videos_dir, int(song.sidecar.get("min_strength", settings.min_strength)))
        gen_videos.append(video)
        gen_rows.append(song_metrics(song, video, settings))
    report = {"generated": {"path": cli.printable(generated), "songs": gen_rows, "aggregate": aggregate(gen_rows),
                            "skipped": skipped},
              "videos": str(videos_dir) if videos_dir else None,
              "settings": {"sigma_s": settings.sigma, "ba_beats": settings.ba_beats,
                           "min_strength": settings.min_strength,
                           "forced_tracks": ([M.INSTRUMENT_NAMES[k] for k in settings.forced_tracks]
                                             if settings.forced_tracks else "auto"),
                           "si": None if settings.si is None else {
                               "hop_s": settings.si.hop_s, "max_frames": settings.si.max_frames,
                               "start_spacing": settings.si.start_spacing, "keep_ratio": settings.si.keep_ratio,
                               "penalty": settings.si.penalty, "ranges_s": [list(r) for r in settings.si.ranges_s]},
                           "definitions": settings_lines(settings)}}
    if reference:
        if max_reference < 1:
            raise cli.UserError("--max_reference must be at least 1")
        ref_songs, source = load_reference(reference, max_reference, seed, reference_tempo, reference_split)
        ref_rows = [song_metrics(s, None, settings) for s in cli.progress(ref_songs, desc="reference", unit="song")]
        report["reference"] = {"source": source, "songs": ref_rows, "aggregate": aggregate(ref_rows)}
    plot_paths = {}
    if plots:
        from vidscore.evaluation import plots as report_plots

        plot_dir = out_dir / "plots"
        sets = {"generated": gen_rows}
        if reference:
            sets["reference"] = report["reference"]["songs"]
        dist_keys = [(k, METRIC_LABELS[k]) for k in METRIC_KEYS if k not in ("n_notes", "n_bars")]
        report_plots.plot_distributions(str(plot_dir / "distributions.png"), dist_keys, sets)
        plot_paths["distributions"] = "plots/distributions.png"
        rolls, used = [], set()
        for song, video in cli.progress(list(zip(songs, gen_videos)), desc="piano rolls", unit="song"):
            fname = _safe(song.name)
            while fname in used:
                fname += "_"
            used.add(fname)
            rel = f"plots/pianoroll_{fname}.png"
            vt = (video.tempo if video and video.tempo else song.tempo)
            report_plots.plot_piano_roll(
                str(out_dir / rel), song.notes, song.tempo, title=song.name,
                beat_times=video.beat_times if video else (),
                kept_times=M.ticks_to_seconds(video.kept_ticks, vt) if video else (),
                video_duration=video.duration if video else None)
            rolls.append((song.name, rel))
        plot_paths["piano_rolls"] = rolls
    report["plots"] = plot_paths
    clean = _jsonable(report)
    cli.write_text_atomic(out_dir / "report.json", json.dumps(clean, indent=1, allow_nan=False) + "\n")
    cli.write_text_atomic(out_dir / "report.md", build_markdown(clean, settings, plot_paths))
    return clean


# ----------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evaluate.py", description=__doc__.split("\n\n")[0].strip(),
        epilog="Writes OUT/report.json, OUT/report.md and OUT/plots/*.png.  Metric definitions and settings "
               "are listed at the end of report.md.",
    )
    p.add_argument("--generated", required=True, help="folder of generated .mid files (with optional .json sidecars)")
    p.add_argument("--reference", help="training npz, folder of npz files, or folder of MIDI files")
    p.add_argument("--videos", help="folder with NAME.npz / NAME_metadata.json / NAME.json for the songs' videos")
    p.add_argument("--out", help="output folder (default: GENERATED/evaluation)")
    p.add_argument("--max_reference", type=int, default=200,
                   help="at most this many reference songs (sampled) (default: %(default)s)")
    p.add_argument("--reference_split", choices=("all", "train", "validation"), default="all",
                   help="rows of a training npz to sample from (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the reference sample (default: %(default)s)")
    p.add_argument("--reference_tempo", type=float,
                   help="tempo (bpm) of all reference songs (default: metadata / file, else 120)")
    p.add_argument("--sigma", type=float, default=0.05, help="beat-alignment sigma in seconds (default: %(default)s)")
    p.add_argument("--ba_beats", choices=("all", "kept"), default="all",
                   help="visual beats used by the beat alignment: all, or only those kept by the control rules "
                        "(default: %(default)s)")
    p.add_argument("--forced_tracks", default="auto",
                   help="tracks checked by the strength error, e.g. Drums,Piano,Guitar; auto: the sidecar's forced "
                        "beats, else those of Drums, Piano, Guitar that the song has (default: %(default)s)")
    p.add_argument("--density_threshold", "--min_strength", dest="min_strength", type=int,
                   default=D.DEFAULT_MIN_STRENGTH,
                   help="visual beats with at least this strength class are the kept (forced) ones "
                        "(default: %(default)s)")
    p.add_argument("--si_hop", type=float, default=0.5, help="SI chroma hop in seconds (default: %(default)s)")
    p.add_argument("--si_max_frames", type=int, default=256,
                   help="longer songs get a coarser SI hop (default: %(default)s)")
    p.add_argument("--si_exact", action="store_true", help="SI over every segment start (slower)")
    p.add_argument("--no_si", action="store_true", help="skip the structureness indicator")
    p.add_argument("--no_plots", action="store_true", help="write report.json and report.md only")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.sigma <= 0:
        raise cli.UserError("--sigma must be positive (seconds), e.g. 0.05")
    if args.si_hop <= 0 or not 1 <= args.si_max_frames < 4096:
        raise cli.UserError("--si_hop must be positive and --si_max_frames within 1..4095")
    tracks = []
    for t in ([] if args.forced_tracks.strip().lower() == "auto" else args.forced_tracks.split(",")):
        t = t.strip().lower()
        if t:
            if t not in NAME_TO_CLASS:
                raise cli.UserError(f"--forced_tracks: unknown track {t!r}; "
                                    "use names from Drums,Piano,Guitar,Bass,Strings, or auto")
            tracks.append(NAME_TO_CLASS[t])
    si = None if args.no_si else M.SISettings(hop_s=args.si_hop, max_frames=args.si_max_frames,
                                              start_spacing=0.0 if args.si_exact else M.SISettings.start_spacing)
    settings = Settings(sigma=args.sigma, ba_beats=args.ba_beats, min_strength=args.min_strength,
                        forced_tracks=tuple(tracks) or None, si=si)
    report = evaluate(args.generated, args.reference, args.videos, args.out, args.max_reference, args.seed,
                      args.reference_tempo, settings, plots=not args.no_plots, reference_split=args.reference_split)
    out_dir = Path(args.out) if args.out else Path(args.generated) / "evaluation"
    print(f"wrote {out_dir / 'report.json'} and {out_dir / 'report.md'} "
          f"({len(report['generated']['songs'])} generated songs"
          + (f", {len(report['reference']['songs'])} reference songs" if report.get("reference") else "") + ")")
    return 0

