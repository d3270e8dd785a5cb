"""User controls at inference: names on the command line -> the ids the model uses.

    --instruments Piano,Bass      instrument classes (names or ids 1..5)
    --key "D minor"               a key name (or id 1..24); with the model's key vocabulary
    --genre Folk                  a genre name (or id); with the model's genre vocabulary
    --emotion Q3                  Q1..Q4 (valence/arousal quadrant); bmt models only
    --program Piano=0,Strings=48  General MIDI programs per track for rendering

Values the checkpoint was not trained with are refused with a one-line error instead of
silently doing nothing (the original's genre and instrument controls never acted).
"""
from __future__ import annotations

import re

import cli
import dictionary_mix as D


def _split(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def parse_instruments(text: str, known: list[int] | None = None) -> tuple[int, ...]:
    """'Piano,Bass' or '2,4' -> (2, 4); each must be one the model knows."""
    ids = []
    for tok in _split(text):
        if tok.isdigit():
            cid = int(tok)
        else:
            match = [i for i, n in enumerate(D.INSTRUMENTS, 1) if n.lower() == tok.lower()]
            if not match:
                raise cli.UserError(f"--instruments: unknown instrument {tok!r}; use {', '.join(D.INSTRUMENTS)}")
            cid = match[0]
        if not 1 <= cid <= len(D.INSTRUMENTS):
            raise cli.UserError(f"--instruments: class ids are 1..{len(D.INSTRUMENTS)} ({', '.join(D.INSTRUMENTS)})")
        if known and cid not in known:
            have = ", ".join(D.INSTRUMENTS[k - 1] for k in known)
            raise cli.UserError(f"--instruments: this model was not trained with {D.INSTRUMENTS[cid - 1]}; it knows {have}")
        if cid not in ids:
            ids.append(cid)
    if not ids:
        raise cli.UserError("--instruments: name at least one instrument")
    return tuple(ids)


def parse_key(text: str, n_key: int, known: list[int] | None = None) -> int:
    """'D minor' / 'd min' / '15' -> key id; the model must have a key vocabulary and, when
    ``known`` (the keys of its training data) is given, have seen the key."""
    if n_key <= 1:
        raise cli.UserError("--key: this checkpoint has no key control (it was trained without key labels)")
    t = str(text).strip()
    if t.isdigit():
        kid = int(t)
    else:
        m = re.fullmatch(r"([A-Ga-g])\s*([#b♯♭]?)\s*(major|maj|minor|min|m)?", t.replace("-", " ").strip())
        if not m:
            raise cli.UserError(f"--key: unknown key {text!r}; use e.g. 'C major', 'A minor', 'F# minor', 'Bb'")
        pc = ("C", "D", "E", "F", "G", "A", "B").index(m.group(1).upper())
        pc = [0, 2, 4, 5, 7, 9, 11][pc] + {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(m.group(2), 0)
        minor = (m.group(3) or "").lower() in ("minor", "min", "m")
        kid = 1 + pc % 12 + (12 if minor else 0)
    if not 1 <= kid < min(n_key, len(D.KEY_NAMES)):
        raise cli.UserError(f"--key: key ids are 1..{min(n_key, len(D.KEY_NAMES)) - 1}")
    if known and kid not in known:
        have = ", ".join(D.KEY_NAMES[k] for k in known if 0 < k < len(D.KEY_NAMES))
        raise cli.UserError(f"--key: this model never saw {D.KEY_NAMES[kid]} in training (its key token "
                            f"would be untrained noise); it knows {have}")
    return kid


def parse_genre(text: str, n_genre: int, known: list[int] | None = None) -> int:
    """'Folk' / '8' -> genre id; with ``known`` (the genres of its training data) it must be one of them."""
    try:
        gid = D.genre_id(text.strip() if not str(text).strip().isdigit() else int(text))
    except (KeyError, ValueError):
        raise cli.UserError(f"--genre: unknown genre {text!r}; use one of {', '.join(D.GENRES[1:])}") from None
    if not 0 <= gid < n_genre:
        raise cli.UserError(f"--genre: this checkpoint knows genre ids below {n_genre}")
    if known and gid not in known:
        have = ", ".join(D.GENRES[g] for g in known if 0 <= g < len(D.GENRES))
        raise cli.UserError(f"--genre: this model was not trained with {D.GENRES[gid]} songs; it knows {have}")
    return gid


def parse_emotion(text: str, model) -> int:
    """'Q1'..'Q4' (or 1..4) -> 1..4, for a bmt model that saw that emotion in training."""
    if model.config.preset != "bmt":
        raise cli.UserError(f"--emotion: this checkpoint is a {model.config.preset} model without an emotion field; "
                            "train a bmt model (midi2numpy_mix.py --representation bmt) on emotion-labelled MIDI")
    try:
        eid = D.emotion_id(text)
    except KeyError:
        raise cli.UserError(f"--emotion: unknown emotion {text!r}; use Q1 (happy, excited), Q2 (tense, angry), "
                            "Q3 (sad) or Q4 (calm)") from None
    known = (getattr(model, "vocab", None) or {}).get("emotions")
    if known is not None and eid not in known:
        have = ", ".join(D.EMOTIONS[k] for k in known if k) or "none (its data had no emotion labels)"
        raise cli.UserError(f"--emotion: this model was not trained with {D.EMOTIONS[eid]} songs; it knows {have}")
    return eid


def parse_programs(text: str) -> dict:
    """'Piano=0,Strings=48' -> {'Piano': 0, 'Strings': 48} merged over the default programs."""
    programs = dict(D.PROGRAMS)
    for tok in _split(text):
        name, _, value = tok.partition("=")
        match = [n for n in D.INSTRUMENTS if n.lower() == name.strip().lower()]
        if not match or not value.strip().isdigit() or not 0 <= int(value) <= 127:
            raise cli.UserError(f"--program: expected TRACK=PROGRAM with TRACK in {', '.join(D.INSTRUMENTS)} "
                                f"and PROGRAM a General MIDI number 0..127, got {tok!r}")
        programs[match[0]] = int(value)
    return programs
