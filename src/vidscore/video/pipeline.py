"""video -> metadata.json -> inference npz, as library calls (the scripts wrap these)."""
from __future__ import annotations

from pathlib import Path

from vidscore import cli
from vidscore import constants as D
from vidscore.video import analysis, metadata

#: File extensions taken from a folder of videos (one list, in dictionary_mix).
VIDEO_EXTENSIONS = D.VIDEO_SUFFIXES


def list_videos(folder) -> list[Path]:
    """The video files directly in ``folder`` (by extension), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_EXTENSIONS)


def write_json(path, meta: dict) -> None:
    cli.write_json_atomic(path, meta, indent=2)     # strict JSON: a NaN would be written as null


def video_to_npz(video_path, out_dir, *, metadata_path=None, **kw) -> Path:
    """Analyse ``video_path`` and write ``<out_dir>/<stem>.npz`` (and its metadata JSON).

    Keyword arguments go to :func:`video2npz.analyse_video` (exact, tempo, cache_dir,
    progress, use_cache, workers).  The metadata goes to ``metadata_path``, by default
    ``<out_dir>/<stem>_metadata.json`` (:func:`metadata.metadata_path`).  Returns the npz path.
    """
    video_path = Path(video_path)
    out_dir = Path(out_dir)
    meta = analysis.analyse_video(video_path, **kw)
    rows = metadata.metadata_to_rows(meta)
    npz = metadata.npz_path(out_dir, video_path.stem)
    write_json(metadata_path or metadata.metadata_path(out_dir, video_path.stem), meta)
    metadata.save_npz(npz, rows, meta["tempo"], meta["duration"])
    return npz
