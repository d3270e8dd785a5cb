"""The repository's folders, found the way the originals found them.

CMT's scripts ran from ``src/`` and wrote ``../dataset/``, ``../exp/``, ``../logs/`` and
``../inference/``; BMT's from the repository root.  Here those four folders (and
``videos/``) are the repository's wherever a script is started from:

* a relative path whose first part names one of them (``inference/clip.npz``,
  ``dataset``) means that folder of the repository;
* any other relative path is relative to the current folder, as usual;
* :func:`in_folder` puts a bare file name into a repository folder
  (``--out_name data.npz`` -> ``<repo>/dataset/data.npz``, as CMT's ``midi2numpy_mix.py`` did).

Every script resolves its default and user paths through this module.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]   # src/vidscore/paths.py -> the repository
FOLDERS = ("dataset", "exp", "logs", "inference", "videos")
CACHE = REPO / ".cache"   # every cache lives under here (never inside src/)


def repo_path(path: str | os.PathLike) -> Path:
    """``path`` with a leading repository folder name anchored at the repository root."""
    p = Path(os.path.expanduser(str(path)))
    if p.is_absolute() or not p.parts or p.parts[0] not in FOLDERS:
        return p
    return REPO / p


def in_folder(path: str | os.PathLike, folder: str) -> Path:
    """A bare file name goes into the repository's ``folder``; a path with a folder part is a path."""
    p = Path(os.path.expanduser(str(path)))
    if len(p.parts) == 1 and not p.is_absolute():
        return REPO / folder / p
    return repo_path(p)
