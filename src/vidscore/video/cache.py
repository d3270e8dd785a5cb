"""Cache of flow features, keyed by the video's content hash and the analysis settings.

The original cached by file name, so a changed video with the same name silently
reused stale beats.  Here the key is SHA-256 of the file's bytes plus a digest of every
setting that shapes the features (mode, flow size, Farneback parameters, the scene signals'
settings, version);
renaming a file still hits, editing it misses.  Entries are .npz files written
atomically; a damaged entry is ignored and recomputed.

Default directory: $CMT_CACHE_DIR, else <repo>/.cache/video2npz.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from vidscore import cli, paths
from vidscore.video.features import FlowFeatures

REPO_ROOT = paths.REPO


#: the per-frame arrays (FlowFeatures.frames) are stored under this prefix
_FRAME = "frame_"


def default_dir() -> Path:
    env = os.environ.get("CMT_CACHE_DIR")
    return Path(env) if env else REPO_ROOT / ".cache" / "video2npz"


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def entry_path(cache_dir, sha: str, settings: dict) -> Path:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{sha[:32]}-{digest}.npz"


def load(path: Path) -> FlowFeatures | None:
    """The cached features, or None if absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            frames = {k[len(_FRAME):]: np.array(z[k]) for k in z.files if k.startswith(_FRAME)}
            return FlowFeatures(fps=float(z["fps"]), directogram=np.array(z["directogram"]),
                                motion=np.array(z["motion"]), info=info, frames=frames)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None


def save(path: Path, feats: FlowFeatures) -> None:
    """Write an entry atomically (a failure to write the cache is not an error)."""
    try:
        with cli.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, fps=np.float64(feats.fps), directogram=feats.directogram,
                         motion=feats.motion, info=np.array(json.dumps(feats.info)),
                         **{_FRAME + k: v for k, v in feats.frames.items()})
    except OSError:
        pass
