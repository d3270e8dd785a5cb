"""The listening-test clips: videos in ``<eval_dir>/<model name>/``, one folder per model.

Listeners see every clip, in an order shuffled per rater and blind: a clip is named on the
page and in its URL by an opaque token (an HMAC of its key under the server's secret, see
:func:`token`), never by its folder or file name; the summary groups the ratings by the
folder name.  Clips of the same file name in two model folders are the two models' results
for the same video: :func:`pairs` offers them as blind A/B comparisons.  Clips are played from an H.264 + AAC preview
made once per file (see :func:`webui.media.make_preview`) and cached under the data folder.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import random
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from vidscore import cli
from vidscore.generation.job import VIDEO_EXTS
from vidscore.webui import media


@dataclass(frozen=True)
class Clip:
    key: str      # "eval:<model>/<file name>", the rating's item
    model: str
    path: Path


def scan(eval_dir: str | Path) -> dict[str, Clip]:
    """Every video one folder below ``eval_dir``, by key (sorted by model, then file name)."""
    root = Path(eval_dir)
    clips: dict[str, Clip] = {}
    if not root.is_dir():
        return clips
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(q for q in folder.iterdir() if q.is_file() and q.suffix.lower() in VIDEO_EXTS
                        and not q.name.startswith(".")):
            clip = Clip(key=f"eval:{folder.name}/{f.name}", model=folder.name, path=f)
            clips[clip.key] = clip
    return clips


def order_for(rater: str, clips: dict[str, Clip]) -> list[Clip]:
    """The clips in this rater's own random order (the same on every visit)."""
    items = list(clips.values())
    random.Random(hashlib.sha256(rater.encode()).hexdigest()).shuffle(items)
    return items


def token(secret: bytes, key: str) -> str:
    """The clip's opaque id: the same for every visit, meaningless without the server's secret."""
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:24]


def by_token(secret: bytes, clips: dict[str, Clip]) -> dict[str, Clip]:
    return {token(secret, c.key): c for c in clips.values()}


@dataclass(frozen=True)
class Pair:
    key: str      # "ab:<file name>|<model>|<model>", the comparison's item (models sorted)
    video: str    # the file name both folders hold
    a: Clip       # shown as "A" to this rater
    b: Clip


def pairs(clips: dict[str, Clip], rater: str) -> list[Pair]:
    """Every two models' clips of the same file name, in this rater's own order, each pair's
    sides (which model is A) drawn at random per rater."""
    by_name: dict[str, list[Clip]] = {}
    for c in clips.values():
        by_name.setdefault(c.path.name, []).append(c)
    out = []
    rng = random.Random(hashlib.sha256(("ab|" + rater).encode()).hexdigest())
    for name in sorted(by_name):
        for x, y in itertools.combinations(sorted(by_name[name], key=lambda c: c.model), 2):
            a, b = (x, y) if rng.random() < 0.5 else (y, x)
            out.append(Pair(key=f"ab:{name}|{x.model}|{y.model}", video=name, a=a, b=b))
    rng.shuffle(out)
    return out


def add_clip(eval_dir: str | Path, model: str, src: str | Path, name: str) -> Path:
    """Copy ``src`` into the listening test as ``<eval_dir>/<model>/<name>`` (atomically)."""
    dst = Path(eval_dir) / model / name
    with cli.atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


class Previews:
    """Browser-playable copies of the clips, made on first request and kept."""

    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)
        self._lock = threading.Lock()

    def path(self, clip: Clip) -> Path:
        st = clip.path.stat()
        tag = hashlib.sha256(f"{clip.path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
        return self.cache_dir / f"{tag}.mp4"

    def get(self, clip: Clip) -> Path:
        out = self.path(clip)
        with self._lock:
            if not out.is_file():
                media.make_preview(clip.path, out)
        return out
