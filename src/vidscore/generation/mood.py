"""Defaults from the picture's mood (issue 28): where the user gives no key, genre, emotion or
tempo, the valence and arousal the video analysis estimated (:mod:`vidscore.video.mood`) choose
them, among what the checkpoint knows.  Any flag the user gives wins.

* **mode**: valence >= 0 is major, below minor.  The key is the checkpoint's default key when it
  has that mode, else its relative key (C major <-> A minor) when the checkpoint knows it, else
  the first key of that mode it knows; a checkpoint without key labels keeps its own.
* **tempo range** by arousal: below -1/3 slow (60..100 bpm), above 1/3 fast (110..160), else
  moderate (80..130).  The visual tempo is doubled or halved while that brings it into the range
  (the picture fixes the beat, not its octave); it is kept when no octave fits.
* **genre**: the first of a list per valence-arousal quadrant that the checkpoint was trained
  with (:data:`GENRES_BY_QUADRANT`), else its default.
* **emotion** (bmt checkpoints): the quadrant itself, Q1 (valence and arousal >= 0), Q2
  (negative valence, arousal >= 0), Q3 (both negative), Q4 (valence >= 0, negative arousal),
  when the checkpoint saw it.
"""
from __future__ import annotations

from vidscore import constants as D

TEMPO_RANGES = {"slow": (60.0, 100.0), "moderate": (80.0, 130.0), "fast": (110.0, 160.0)}
GENRES_BY_QUADRANT = {
    1: ("Pop", "Rock", "Electronic", "Latin", "Reggae", "Country", "PopRock"),
    2: ("Rock", "Metal", "Electronic", "Rap", "PopRock", "Pop"),
    3: ("Classical", "Blues", "Jazz", "NewAge", "Folk"),
    4: ("Folk", "Jazz", "NewAge", "Classical", "Country", "Pop"),
}


def quadrant(valence: float, arousal: float) -> int:
    """Russell's quadrant, numbered as the emotion labels Q1..Q4."""
    if arousal >= 0:
        return 1 if valence >= 0 else 2
    return 4 if valence >= 0 else 3


def tempo_class(arousal: float) -> str:
    return "slow" if arousal < -1 / 3 else ("fast" if arousal > 1 / 3 else "moderate")


def tempo_in_range(tempo: float, arousal: float) -> float:
    """The visual tempo, doubled or halved into the arousal's range where one octave fits."""
    lo, hi = TEMPO_RANGES[tempo_class(arousal)]
    t = float(tempo)
    for cand in (t, t * 2, t / 2, t * 4, t / 4):
        if lo <= cand <= hi and D.TEMPO_MIN <= cand <= D.TEMPO_MAX:
            return cand
    return t


def key_for(major: bool, vocab: dict, n_key: int) -> int | None:
    """The key of the wanted mode (see the module's docstring); None: the checkpoint has no keys."""
    top = min(n_key, len(D.KEY_NAMES))
    known = [k for k in (vocab.get("keys") or range(1, top)) if 0 < k < top]
    if n_key <= 1 or not known:
        return None
    is_major = lambda k: k <= 12  # noqa: E731  (1..12 major, 13..24 minor)
    default = vocab.get("default_key")
    if default in known and is_major(default) == major:
        return default
    if default in known:
        root = (default - 1) % 12
        rel = 1 + (root + 3) % 12 if major else 13 + (root + 9) % 12    # relative major / minor
        if rel in known:
            return rel
    return next((k for k in known if is_major(k) == major), default)


def genre_for(q: int, vocab: dict, n_genre: int = len(D.GENRES)) -> int | None:
    known = [g for g in vocab.get("genres") or [] if 0 < g < n_genre]
    for name in GENRES_BY_QUADRANT[q]:
        gid = D.GENRE_ID.get(name)
        if gid in known:
            return gid
    return vocab.get("default_genre")


def choose(mood: dict | None, model, chosen: dict) -> dict:
    """What the picture's ``mood`` (the metadata's ``"mood"``) sets for ``model`` where the
    user chose nothing (``chosen``: Options field -> value or None): the song's JSON ``"mood"``,
    with ``"set"`` holding the Options fields to apply (key, genre, emotion)."""
    if not mood:
        return {}
    from vidscore import controls
    v, a = float(mood["valence"]), float(mood["arousal"])
    q = quadrant(v, a)
    vocab = getattr(model, "vocab", None) or {}
    out = {"valence": v, "arousal": a, "quadrant": f"Q{q}", "mode": "major" if v >= 0 else "minor",
           "tempo_class": tempo_class(a), "tempo_range": list(TEMPO_RANGES[tempo_class(a)]), "set": {}}
    if controls.is_released(model):
        out["note"] = "the released checkpoint has one constant init block: only the tempo can follow the mood"
        return out
    if chosen.get("key") is None:
        key = key_for(v >= 0, vocab, model.config.init_n_class[1])
        if key is not None:
            out["set"]["key"] = key
    if chosen.get("genre") is None:
        gid = genre_for(q, vocab, model.config.init_n_class[0])
        if gid is not None:
            out["set"]["genre"] = gid
    if chosen.get("emotion") is None and model.config.preset == "bmt":
        known = vocab.get("emotions")
        if known is None or q in known:
            out["set"]["emotion"] = q
    names = {"key": lambda k: D.KEY_NAMES[k], "genre": lambda g: D.GENRES[g], "emotion": lambda e: D.EMOTIONS[e]}
    out["chose"] = {k: names[k](x) for k, x in out["set"].items()}
    return out
