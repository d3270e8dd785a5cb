"""The training npz: a folder of MIDI files -> tokenised songs -> padded arrays (SPEC sections 2 and 4).

:func:`build_training_set` does the whole job used by ``midi2numpy_mix.py`` and
``prepare_corpus.py``: tokenise every file in parallel (a per-song cache keyed by the
file's content hash), skip bad files with a one-line reason, cut long songs into
windows at bar boundaries, attach real init tokens (instruments present, estimated key,
genre from an optional id -> genre file; with the bmt preset also the emotion, from an
id -> Q1..Q4 label file or an EMOPIA-style ``Q1_...`` file-name prefix), make a
deterministic train/validation split, and write the npz plus ``<stem>_vocab.json`` and
``<stem>_stats.json`` beside it.

File layout (np.savez_compressed; read it back with :func:`representation.load_training_npz`):
``x``/``y`` int32 (N, L, 9) (bmt: 12 columns) = seq[:-1] / seq[1:] zero-padded, ``mask``
float32 (N, L), ``seq_len`` int32 (N,), ``init`` int32 (N, 7, 3) (bmt: (N, 7, 4)), ``split``
uint8 (N,) 0 train 1 validation, ``metadata`` and ``vocab`` 0-d str arrays of JSON (the
vocab names the preset).
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np

from vidscore import cli
from vidscore.training import corpus
from vidscore import constants as D
from vidscore.music.representation import BadMidiError, init_tokens, midi_from_bytes, midi_to_windows

# bump when the tokens (or the reason) a file gives change; it invalidates the token cache
# (2: the original's rounding (duration 0) and chorder chords; 3: RIFF .rmi files are read)
TOKENISER_VERSION = 3
MIDI_SUFFIXES = D.MIDI_SUFFIXES


# ---------------------------------------------------------------------------------
# inputs: files, ids, genres
# ---------------------------------------------------------------------------------

def find_midi_files(midi_dir: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(song_id, path)`` for every MIDI file under ``midi_dir`` (recursive), sorted by id.

    The id is the path relative to ``midi_dir`` without its suffix, with '/' separators; files
    that would share an id (``a.mid`` and ``a.midi``) keep their suffixes in it.  Bytes of a
    name that are not UTF-8 are written ``\\xNN`` in the id.  A broken link is listed too, so
    that the batch reports it as skipped instead of leaving it out unseen.
    """
    root = Path(midi_dir)
    found = []
    for p in root.rglob("*"):
        if p.suffix.lower() in MIDI_SUFFIXES and not p.name.startswith(".") and (p.is_file() or p.is_symlink()):
            rel = cli.printable(p.relative_to(root).as_posix())
            found.append((rel, rel[: -len(p.suffix)], p))
    stems = collections.Counter(stem for _, stem, _ in found)
    return sorted((stem if stems[stem] == 1 else rel, p) for rel, stem, p in found)


def read_label_file(path: str | os.PathLike, what: str, to_id, known: list[str]) -> dict[str, int]:
    """An ``id -> label id`` map from a text file (``id<TAB or , or spaces>label`` per line, '#'
    comments) or a JSON object ``{id: label}``; ``to_id`` maps a label to its id (KeyError if
    unknown, reported as a user error listing ``known``)."""
    path = Path(path)
    if not path.is_file():
        raise cli.UserError(f"{what} file {path} does not exist")
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise cli.UserError(f"{what} file {path} is not a text table (it holds binary data); give a text file of "
                            f"'id<TAB>{what}' lines or a JSON object {{id: {what}}}")
    text = raw.decode("utf-8", errors="replace")
    pairs = []
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise cli.UserError(f"{what} file {path} is not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(obj, dict):
            raise cli.UserError(f"{what} file {path} must hold a JSON object {{id: {what}}}")
        pairs = [(str(k), str(v), 0) for k, v in obj.items()]
    else:
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            for sep in ("\t", ","):
                if sep in line:
                    k, _, v = line.partition(sep)
                    break
            else:
                k, _, v = line.partition(" ")
            if not v.strip():
                raise cli.UserError(f"{what} file {path} line {n}: expected 'id<TAB>{what}', got {line[:80]!r}")
            pairs.append((k.strip(), v.strip(), n))
    out = {}
    for k, v, n in pairs:
        try:
            out[k] = to_id(v)
        except KeyError:
            where = f" line {n}" if n else ""
            raise cli.UserError(f"{what} file {path}{where}: unknown {what} {v[:80]!r}; known: "
                                f"{', '.join(known)} (or a numeric id)") from None
    return out


def read_genre_file(path: str | os.PathLike) -> dict[str, int]:
    """An ``id -> genre id`` map (:func:`read_label_file`); genres are names from
    ``dictionary_mix.GENRES`` (case, spaces, '_' and '-' ignored) or numeric ids."""
    return read_label_file(path, "genre", D.genre_id, D.GENRES[1:])


def read_emotion_file(path: str | os.PathLike) -> dict[str, int]:
    """An ``id -> emotion id`` map (:func:`read_label_file`): labels Q1..Q4 (or 1..4), the
    valence/arousal quadrants of EMOPIA / BMT."""
    return read_label_file(path, "emotion", D.emotion_id, D.EMOTIONS[1:])


_EMOTION_PREFIX = re.compile(r"^(Q[1-4])_", re.IGNORECASE)


def emotion_for(song_id: str, emotion_map: dict[str, int] | None) -> int:
    """Emotion of a song: the label file's entry (looked up like genres), else an EMOPIA-style
    ``Q1_...`` prefix of its file name, else 0 (unknown)."""
    if emotion_map:
        found = genre_for(song_id, emotion_map)
        if found:
            return found
    m = _EMOTION_PREFIX.match(song_id.split("/")[-1])
    return D.emotion_id(m.group(1)) if m else 0


def genre_for(song_id: str, genre_map: dict[str, int] | None) -> int:
    """Genre of a song: the map's entry for its id, else for its file name, else for a parent folder's name
    (LPD layout: .../TRxxxx/<md5>.mid is looked up as TRxxxx); 0 if none."""
    if not genre_map:
        return 0
    parts = song_id.split("/")
    for cand in (song_id, parts[-1]):
        if cand in genre_map:
            return genre_map[cand]
    suffix = Path(song_id).suffix
    if suffix.lower() in MIDI_SUFFIXES:       # an id that kept its suffix (find_midi_files): as without it
        return genre_for(song_id[: -len(suffix)], genre_map)
    for cand in reversed(parts[:-1]):
        if cand in genre_map:
            return genre_map[cand]
    return 0


# ---------------------------------------------------------------------------------
# tokenising one file (runs in worker processes), with a content-hash cache
# ---------------------------------------------------------------------------------

def _cache_file(cache_dir: Path, digest: str, max_len: int | None, preset: str = "cmt") -> Path:
    tag = "" if preset == "cmt" else f"_{preset}"
    return cache_dir / digest[:2] / f"{digest}_v{TOKENISER_VERSION}_L{max_len or 0}{tag}.npz"


def tokenise_file(job: tuple) -> dict:
    """Worker: ``(song_id, path, max_len, cache_dir or None[, preset])`` -> ``{"id", "hash", "windows", "cached"}``.

    ``windows`` is a list of ``(tokens, info)``.  Raises BadMidiError for a bad file (the
    reason is cached too, so a rerun does not parse it again).
    """
    song_id, path, max_len, cache_dir = job[:4]
    preset = job[4] if len(job) > 4 else "cmt"
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BadMidiError(f"cannot read: {e.strerror or e}") from None
    digest = hashlib.sha1(data).hexdigest()
    cfile = _cache_file(Path(cache_dir), digest, max_len, preset) if cache_dir else None
    if cfile is not None and cfile.exists():
        try:
            with np.load(cfile, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"][()]))
                if "error" in meta:
                    raise BadMidiError(meta["error"])
                tokens, offsets = z["tokens"], z["offsets"]
            windows = [(tokens[offsets[i]:offsets[i + 1]], info) for i, info in enumerate(meta["infos"])]
            return {"id": song_id, "hash": digest, "windows": windows, "cached": True}
        except BadMidiError:
            raise
        except Exception:
            pass  # unreadable cache entry: recompute below
    err, windows = None, []
    try:
        windows = midi_to_windows(midi_from_bytes(data), max_len=max_len, preset=preset)
        if not windows:
            err = "no notes"
    except BadMidiError as e:
        err = str(e)
    if cfile is not None:
        if err is not None:
            n_cols = D.preset(preset).n_cols
            meta, tokens, offsets = {"error": err}, np.zeros((0, n_cols), np.int32), np.zeros(1, np.int64)
        else:
            meta = {"infos": [info for _, info in windows]}
            tokens = np.concatenate([t for t, _ in windows])
            offsets = np.concatenate([[0], np.cumsum([len(t) for t, _ in windows])])
        with cli.atomic_path(cfile) as tmp:
            np.savez(tmp, tokens=tokens, offsets=offsets, meta=np.array(json.dumps(meta)))
    if err is not None:
        raise BadMidiError(err)
    return {"id": song_id, "hash": digest, "windows": windows, "cached": False}


# ---------------------------------------------------------------------------------
# split, arrays, vocabulary
# ---------------------------------------------------------------------------------

def _unit_hash(song_id: str) -> float:
    return int(hashlib.sha1(song_id.encode("utf-8")).hexdigest()[:12], 16) / float(16 ** 12)


def assign_split(song_ids, val_fraction: float = 0.1) -> dict[str, int]:
    """Deterministic split by a hash of each song id: 1 (validation) when hash < ``val_fraction``.

    Adding songs never moves existing ones (except the one fallback song of a collection,
    below).  Within each collection (the id's first folder, e.g. ``bach/...``) of at least
    1 / ``val_fraction`` songs at least one is validation and, with two songs or more, at least
    one trains (the lowest / highest hash is moved if needed); the same holds over all songs,
    and a corpus of one song trains on it.
    """
    ids = sorted(set(song_ids))
    h = {s: _unit_hash(s) for s in ids}
    split = {s: int(h[s] < val_fraction) for s in ids}
    if val_fraction <= 0:
        return split
    groups: dict[str, list[str]] = {}
    for s in ids:
        groups.setdefault(s.split("/", 1)[0] if "/" in s else "", []).append(s)
    for members in [*groups.values(), ids] if len(groups) > 1 else [ids]:
        if len(members) < 2:
            continue
        if not any(split[s] for s in members) and (members is ids or len(members) * val_fraction >= 1):
            split[min(members, key=h.get)] = 1
        if all(split[s] for s in members):
            split[max(members, key=h.get)] = 0
    if len(ids) == 1:
        split[ids[0]] = 0
    return split


def assemble_arrays(seqs: list[np.ndarray], inits: list[np.ndarray]) -> dict:
    """x, y, mask, seq_len, init for token sequences (each ending with EOS)."""
    n = len(seqs)
    L = max(len(s) - 1 for s in seqs)
    n_cols = seqs[0].shape[1]
    x = np.zeros((n, L, n_cols), dtype=np.int32)
    y = np.zeros((n, L, n_cols), dtype=np.int32)
    mask = np.zeros((n, L), dtype=np.float32)
    seq_len = np.zeros(n, dtype=np.int32)
    for i, s in enumerate(seqs):
        k = len(s) - 1
        x[i, :k] = s[:-1]
        y[i, :k] = s[1:]
        mask[i, :k] = 1.0
        seq_len[i] = k
    return {"x": x, "y": y, "mask": mask, "seq_len": seq_len, "init": np.stack(inits).astype(np.int32)}


def vocab_seen(seqs: list[np.ndarray], inits: np.ndarray, preset: str = "cmt") -> dict:
    """Per-field vocabulary sizes seen in the data (max value + 1) and distinct-value counts."""
    P = D.preset(preset)
    allrows = np.concatenate(seqs)
    size = [int(allrows[:, c].max()) + 1 for c in range(P.n_cols)]
    distinct = [int(len(np.unique(allrows[:, c]))) for c in range(P.n_cols)]
    n_init = len(P.init_fields)
    init_size = [int(inits[..., c].max()) + 1 for c in range(n_init)]
    init_distinct = [int(len(np.unique(inits[..., c]))) for c in range(n_init)]
    return {
        "preset": P.name,
        "fields": {f: {"size": s, "distinct": d} for f, s, d in zip(P.columns, size, distinct)},
        "init_fields": {f: {"size": s, "distinct": d} for f, s, d in zip(P.init_fields, init_size, init_distinct)},
        "n_class": size,
        "init_n_class": init_size,
        "full_n_class": list(P.n_class),
        "full_init_n_class": list(P.init_n_class),
        "released_n_class": list(D.RELEASED_N_CLASS),
        "fits_released_decoder": P.name == "cmt" and all(s <= r for s, r in zip(size[:8], D.RELEASED_N_CLASS[:8])),
    }


def save_training_npz(path: str | os.PathLike, arrays: dict, metadata: list, vocab: dict) -> None:
    """Write the training npz atomically (np.savez_compressed)."""
    with cli.atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays, metadata=np.array(json.dumps(metadata)), vocab=np.array(json.dumps(vocab)))


def sidecar(out_name: str | os.PathLike, what: str) -> Path:
    p = Path(out_name)
    return p.with_name(f"{p.stem}_{what}.json")


# ---------------------------------------------------------------------------------
# the whole job
# ---------------------------------------------------------------------------------

def build_training_set(files: list[tuple[str, Path]], out_name: str | os.PathLike, *, max_len: int | None = 10000,
                       genre_map: dict[str, int] | None = None, workers: int | None = None,
                       cache_dir: str | os.PathLike | None = None, source: str | dict[str, str] = "midi",
                       val_fraction: float = 0.1, extra_stats: dict | None = None, preset: str = "cmt",
                       emotion_map: dict[str, int] | None = None) -> dict:
    """Tokenise ``files`` (``(song_id, path)``) and write the training npz, vocab and stats JSON.

    Returns the stats dict (also written to ``<stem>_stats.json``, with ``extra_stats`` merged
    in, e.g. how the MIDI files were made).  ``preset="bmt"`` writes bmt tokens and init rows
    with the emotion (``emotion_map``, else a ``Q1_`` file-name prefix).  Raises cli.UserError
    when no file gives a usable song.  ``source`` names where the songs come from: one name, or
    ``{song id: name}`` for a corpus built from several sources (the metadata and the stats'
    ``sources`` table then tell them apart, and training can weight them).
    """
    preset = D.preset(preset).name
    source_of = source if isinstance(source, dict) else {}
    default_source = "midi" if isinstance(source, dict) else source
    t0 = time.perf_counter()
    out_name = Path(out_name)
    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    kept, report = _tokenise_all(files, max_len, cache_dir, preset, workers)
    if not kept:
        raise cli.UserError(f"no usable song among {len(files)} files ({report.reasons_line()}); "
                            "give MIDI files in 4/4 with at least one track of 21+ notes")
    split = assign_split([r["id"] for r in kept], val_fraction)
    seqs, inits, metadata = [], [], []
    n_windowed = 0
    for r in kept:
        gid = genre_for(r["id"], genre_map)
        emo = emotion_for(r["id"], emotion_map) if preset == "bmt" else None
        if len(r["windows"]) > 1:
            n_windowed += 1
        for tokens, info in r["windows"]:
            seqs.append(np.asarray(tokens, dtype=np.int32))
            inits.append(init_tokens(info["instruments"], info["key"], gid, emo))
            metadata.append({"id": r["id"], "source": source_of.get(r["id"], default_source),
                             "window": int(info["window"]),
                             "n_windows": int(info["n_windows"]), "length": int(info["length"]),
                             "n_bars": int(info["n_bars"]), "n_notes": int(info["n_notes"]),
                             "instruments": [D.instrument_name(k) for k in info["instruments"]],
                             "key": D.key_name(int(info["key"])), "genre": D.GENRES[gid],
                             **({} if emo is None else {"emotion": D.EMOTIONS[emo]}),
                             "split": "validation" if split[r["id"]] else "train", "hash": r["hash"]})
    arrays = assemble_arrays(seqs, inits)
    arrays["split"] = np.array([split[m["id"]] for m in metadata], dtype=np.uint8)
    vocab = vocab_seen(seqs, arrays["init"], preset)
    save_training_npz(out_name, arrays, metadata, vocab)
    cli.write_text_atomic(sidecar(out_name, "vocab"), json.dumps(vocab, indent=2) + "\n")
    stats = _stats(out_name, files, kept, seqs, metadata, arrays, split, vocab, report, preset, max_len,
                   n_windowed, time.perf_counter() - t0, extra_stats)
    cli.write_text_atomic(sidecar(out_name, "stats"), json.dumps(stats, indent=2) + "\n")
    return stats


def _tokenise_all(files, max_len, cache_dir, preset, workers):
    """Every file tokenised in a worker pool, duplicates by content dropped (the first id in
    sorted order is kept): ``(results, report)``."""
    jobs = [(sid, str(p), max_len, str(cache_dir) if cache_dir else None, preset) for sid, p in files]
    report = corpus.JobReport("tokenise")
    results = []
    for job, ok, value in corpus.run_jobs(tokenise_file, jobs, workers=workers, desc="tokenise"):
        if ok:
            results.append(value)
            report.ok(cached=value["cached"])
        else:
            report.skip(job[0], value)
    results.sort(key=lambda r: r["id"])
    seen_hash = {}
    kept = []
    for r in results:
        if r["hash"] in seen_hash:
            report.skip(r["id"], f"duplicate content (same as {seen_hash[r['hash']]})", was_ok=True)
            continue
        seen_hash[r["hash"]] = r["id"]
        kept.append(r)
    return kept, report


def _stats(out_name, files, kept, seqs, metadata, arrays, split, vocab, report, preset, max_len, n_windowed,
           elapsed, extra_stats) -> dict:
    """The training set's stats (``<stem>_stats.json``)."""
    lengths = np.array([len(s) for s in seqs])
    return {
        "out_name": str(out_name),
        "source": "+".join(dict.fromkeys(m["source"] for m in metadata)),
        "sources": source_table(metadata),
        "preset": preset,
        "files": len(files),
        "songs": len(kept),
        "sequences": len(seqs),
        "songs_split_into_windows": n_windowed,
        "max_len": max_len,
        "tokens": int(lengths.sum()),
        "bars": int(sum(m["n_bars"] for m in metadata)),
        "notes": int(sum(m["n_notes"] for m in metadata)),
        "length": {"min": int(lengths.min()), "median": float(np.median(lengths)), "max": int(lengths.max()),
                   "padded_L": int(arrays["x"].shape[1])},
        "split": {"train_sequences": int((arrays["split"] == 0).sum()),
                  "validation_sequences": int((arrays["split"] == 1).sum()),
                  "validation_songs": int(sum(split.values()))},
        "genres": dict(collections.Counter(m["genre"] for m in metadata).most_common()),
        "keys": dict(collections.Counter(m["key"] for m in metadata).most_common()),
        **({"emotions": dict(collections.Counter(m["emotion"] for m in metadata).most_common())}
           if preset == "bmt" else {}),
        "instruments": dict(collections.Counter(i for m in metadata for i in m["instruments"]).most_common()),
        "vocab": vocab["n_class"],
        "init_vocab": vocab["init_n_class"],
        "cache_hits": report.cached,
        "skipped": report.reason_counts(),
        "skipped_files": report.skipped,
        "seconds": round(elapsed, 2),
        "files_per_second": round(len(files) / elapsed, 2) if elapsed > 0 else None,
        **(extra_stats or {}),
    }


def source_table(metadata: list[dict]) -> dict[str, dict]:
    """Per source: songs, sequences (train / validation), tokens, bars, notes, genres, and the
    songs with a Drums track."""
    out: dict[str, dict] = {}
    for m in metadata:
        t = out.setdefault(m["source"], {"songs": set(), "drum_songs": set(), "sequences": 0, "train_sequences": 0,
                                         "tokens": 0, "bars": 0, "notes": 0, "genres": collections.Counter()})
        t["songs"].add(m["id"])
        if "Drums" in m["instruments"]:
            t["drum_songs"].add(m["id"])
        t["sequences"] += 1
        t["train_sequences"] += int(m["split"] == "train")
        t["tokens"] += m["length"]
        t["bars"] += m["n_bars"]
        t["notes"] += m["n_notes"]
        t["genres"][m["genre"]] += 1
    for t in out.values():
        t["songs"], t["drum_songs"], t["genres"] = len(t["songs"]), len(t["drum_songs"]), dict(t["genres"])
    return out


def oversample(idx: np.ndarray, metadata: list[dict] | None, weights: dict[str, int]) -> np.ndarray:
    """Training indices with each song of a weighted source repeated: a source of weight w
    (an integer >= 1; unnamed sources 1) contributes each of its sequences w times, so a small
    source (the drummed songs) makes a larger share of the batches.  Order kept, repeats adjacent."""
    idx = np.asarray(idx)
    if not weights:
        return idx
    if metadata is None:
        raise ValueError("the training data has no metadata, so it cannot be weighted by source")
    known = {m.get("source") for m in metadata}
    unknown = sorted(set(weights) - known)
    if unknown:
        raise ValueError(f"source weights name {', '.join(unknown)}, which the training data does not hold "
                         f"(its sources: {', '.join(sorted(str(k) for k in known))})")
    reps = np.array([int(weights.get(metadata[i].get("source"), 1)) for i in idx], dtype=np.int64)
    return np.repeat(idx, reps)


def parse_weights(text: str) -> dict[str, int]:
    """``"openmsx=4,blupi=4"`` -> ``{"openmsx": 4, "blupi": 4}`` (ValueError with what is wrong)."""
    out = {}
    for part in filter(None, (p.strip() for p in str(text or "").split(","))):
        name, eq, w = part.partition("=")
        if not eq or not name.strip() or not w.strip().isdigit() or int(w) < 1:
            raise ValueError(f"source weight {part!r} is not NAME=N with a whole number N >= 1 "
                             "(e.g. openmsx=4,blupi=4)")
        out[name.strip()] = int(w)
    return out


def summary_lines(stats: dict) -> list[str]:
    """A short human summary of :func:`build_training_set`'s stats."""
    lines = [
        f"{stats['out_name']}: {stats['songs']} songs -> {stats['sequences']} sequences "
        f"({stats['songs_split_into_windows']} songs longer than max_len={stats['max_len']} cut into windows), "
        f"{stats['tokens']} tokens, {stats['bars']} bars, padded length {stats['length']['padded_L']}",
        f"split: {stats['split']['train_sequences']} train / {stats['split']['validation_sequences']} validation "
        f"sequences; vocab seen {stats['vocab']} init {stats['init_vocab']}",
        f"{stats['files']} files in {stats['seconds']} s ({stats['files_per_second']} files/s), "
        f"{stats['cache_hits']} from cache",
    ]
    for name, t in (stats.get("sources") or {}).items():
        lines.append(f"  {name}: {t['songs']} songs ({t['drum_songs']} with drums) -> {t['sequences']} sequences, "
                     f"{t['tokens']} tokens, {t['bars']} bars, {t['notes']} notes; genres {t['genres']}")
    skipped = stats["skipped"]
    if skipped:
        lines.append(f"skipped {sum(skipped.values())} files:")
        lines += [f"  {n:6d}  {reason}" for reason, n in skipped.items()]
    return lines
