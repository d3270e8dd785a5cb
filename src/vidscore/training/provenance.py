"""Where a checkpoint comes from, recorded inside it with no path of the machine that built it:
the corpus's sources and content checksum, the code's commit, the command line.

A path inside the repository is kept relative to it (``dataset/bundled.npz``); a path outside it
keeps only its name, so a shipped checkpoint never carries ``/home/<someone>/...``.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from vidscore import paths


def portable(value):
    """``value`` with every absolute path in it (a str, or inside dicts and lists) made relative to
    the repository, or cut to its name when it lies outside."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable(v) for v in value)
    if isinstance(value, str) and value.startswith(("/", "~")):
        p = Path(os.path.expanduser(value))
        try:
            return p.resolve().relative_to(paths.REPO.resolve()).as_posix() or "."
        except ValueError:
            return p.name
    return value


def corpus_sha256(data: dict) -> str:
    """A checksum of a training set's content (its arrays and metadata, as read by
    ``training.load_data``), not of the npz file, whose zip entries carry the time it was written:
    the same corpus built twice has the same checksum."""
    h = hashlib.sha256()
    for key in sorted(k for k in data if k in ("x", "y", "mask", "init", "seq_len", "split")):
        arr = np.ascontiguousarray(np.asarray(data[key]))
        h.update(f"{key}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(arr.tobytes())
    h.update(json.dumps(data.get("metadata") or [], sort_keys=True).encode())
    return h.hexdigest()


def code_commit() -> str:
    """The repository's commit (``+dirty`` when tracked files differ from it), or ``unknown``."""
    try:
        git = ["git", "-C", str(paths.REPO)]
        rev = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if rev.returncode:
            return "unknown"
        dirty = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line(argv: list[str] | None = None) -> str:
    """The command that ran, its paths made portable (``python src/main_cp.py --train_data ...``)."""
    argv = list(sys.argv if argv is None else argv)
    return shlex.join(["python"] + [portable(a) if a.startswith("/") else a for a in argv])


def provenance(data: dict, data_path: str | os.PathLike, argv: list[str] | None = None) -> dict:
    """The provenance record of a model trained on ``data`` (read from ``data_path``)."""
    meta = data.get("metadata") or []
    songs = collections.defaultdict(set)
    for m in meta:
        songs[m.get("source", "midi")].add(m.get("id"))
    return {"corpus": portable(str(Path(data_path).resolve())),
            "corpus_sha256": corpus_sha256(data),
            "sources": {s: len(ids) for s, ids in sorted(songs.items())},
            "code_commit": code_commit(),
            "command": command_line(argv)}


LICENCES = {"music21": "public-domain works; encodings partly non-commercial (music21's corpus licence)",
            "openmsx": "GPL-2.0-only", "blupi": "GPL-3.0-or-later", "freedoom": "BSD-3-Clause",
            "mma": "MMA's grooves GPL-2.0-or-later; melodies as music21", "overlay": "as music21 and its drum loop's source",
            "lpd": "CC BY 4.0 (LPD)", "midi": "the user's"}


def sources_markdown(stats: dict) -> str:
    """The training set's table per source (songs, with drums, sequences, bars, genres, licence),
    from its ``<stem>_stats.json``: what a model card lists as its training data."""
    rows = ["| source | songs | with drums | sequences (train) | bars | genres | licence |", "|---|---|---|---|---|---|---|"]
    for name, s in (stats.get("sources") or {}).items():
        genres = ", ".join(f"{g} {n}" for g, n in (s.get("genres") or {}).items())
        rows.append(f"| {name} | {s['songs']:,} | {s.get('drum_songs', 0):,} | {s['sequences']:,} "
                    f"({s.get('train_sequences', 0):,}) | {s.get('bars', 0):,} | {genres} | {LICENCES.get(name, '?')} |")
    return "\n".join(rows)


def markdown(prov: dict) -> str:
    """A checkpoint's provenance record as the lines of its model card (tests keep the two equal)."""
    lines = [f"- corpus: `{prov.get('corpus')}`, content sha256 `{prov.get('corpus_sha256')}`",
             "- sources (songs): " + ", ".join(f"{k} {v:,}" for k, v in (prov.get("sources") or {}).items()),
             f"- code commit: `{prov.get('code_commit')}`",
             f"- command: `{prov.get('command')}`"]
    if prov.get("fine_tuned_from"):
        lines.append(f"- fine-tuned from: `{prov['fine_tuned_from'].get('checkpoint')}`")
    if prov.get("note"):
        lines.append(f"- note: {prov['note']}")
    return "\n".join(lines)
