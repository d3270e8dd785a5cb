"""User controls at inference: one table (:data:`CONTROLS`), read by the CLI, the web app, the
dataset writer and training.

Each entry names the control once (the ``pipeline.Options`` field), its command-line flag (the
original's name where it had one) and web-form field, the cell of the init block it sets (or
None when it acts elsewhere), its parser with validation, and where the checkpoint records the
values its training data had and the default (the commonest of them):

    --instruments Piano,Bass      instrument classes (names or ids 1..5)
    --key "D minor"               a key name (or id 1..24); with the model's key vocabulary
    --genre Folk                  a genre name (or id); with the model's genre vocabulary
    --emotion Q3                  Q1..Q4 (valence/arousal quadrant); bmt models only
    --my_tempo 96                 the music's tempo in bpm (with --is_tempo 1), 32..224
    --density_threshold 3         visual beats of a weaker strength class are not forced (min_strength)
    --program Piano=0,Strings=48  General MIDI programs per track for rendering
    --scene_cuts 8.0,16.0         sections at these cuts (s); 0: none; default: the detected cuts
    --mood 0                      no defaults from the picture's mood (key, genre, emotion, tempo octave)

Values the checkpoint was not trained with are refused with a one-line error instead of
silently doing nothing (the original's genre and instrument controls never acted).

To add a control: write its parser here, add a :class:`Control` row, add its field to
``pipeline.Options`` and its flag to the hyperparameter block of ``main_cp.py``; an init-block
label also needs its cell in ``dictionary_mix.INIT_CELL`` (and the dataset writer's label).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from vidscore import cli
from vidscore import constants as D


def _split(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def parse_instruments(text: str, known: list[int] | None = None, what: str = "--instruments") -> tuple[int, ...]:
    """'Piano,Bass' or '2,4' -> (2, 4); each must be one the model knows."""
    ids = []
    for tok in _split(text):
        if tok.isdigit():
            cid = int(tok)
        else:
            match = [i for i, n in enumerate(D.INSTRUMENTS, 1) if n.lower() == tok.lower()]
            if not match:
                raise cli.UserError(f"{what}: unknown instrument {tok!r}; use {', '.join(D.INSTRUMENTS)}")
            cid = match[0]
        if not 1 <= cid <= len(D.INSTRUMENTS):
            raise cli.UserError(f"{what}: class ids are 1..{len(D.INSTRUMENTS)} ({', '.join(D.INSTRUMENTS)})")
        if known and cid not in known:
            have = ", ".join(D.INSTRUMENTS[k - 1] for k in known)
            raise cli.UserError(f"{what}: this model was not trained with {D.INSTRUMENTS[cid - 1]}; it knows {have}")
        if cid not in ids:
            ids.append(cid)
    if not ids:
        raise cli.UserError(f"{what}: name at least one instrument")
    return tuple(ids)


def parse_key(text: str, n_key: int, known: list[int] | None = None, what: str = "--key") -> int:
    """'D minor' / 'd min' / '15' -> key id; the model must have a key vocabulary and, when
    ``known`` (the keys of its training data) is given, have seen the key."""
    if n_key <= 1:
        raise cli.UserError(f"{what}: this checkpoint has no key control (it was trained without key labels)")
    t = str(text).strip()
    if t.isdigit():
        kid = int(t)
    else:
        m = re.fullmatch(r"([A-Ga-g])\s*([#b♯♭]?)\s*(major|maj|minor|min|m)?", t.replace("-", " ").strip())
        if not m:
            raise cli.UserError(f"{what}: unknown key {text!r}; use e.g. 'C major', 'A minor', 'F# minor', 'Bb'")
        pc = ("C", "D", "E", "F", "G", "A", "B").index(m.group(1).upper())
        pc = [0, 2, 4, 5, 7, 9, 11][pc] + {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(m.group(2), 0)
        minor = (m.group(3) or "").lower() in ("minor", "min", "m")
        kid = 1 + pc % 12 + (12 if minor else 0)
    if not 1 <= kid < min(n_key, len(D.KEY_NAMES)):
        raise cli.UserError(f"{what}: key ids are 1..{min(n_key, len(D.KEY_NAMES)) - 1}")
    if known and kid not in known:
        have = ", ".join(D.KEY_NAMES[k] for k in known if 0 < k < len(D.KEY_NAMES))
        raise cli.UserError(f"{what}: this model never saw {D.KEY_NAMES[kid]} in training (its key token "
                            f"would be untrained noise); it knows {have}")
    return kid


def parse_genre(text: str, n_genre: int, known: list[int] | None = None, what: str = "--genre") -> int:
    """'Folk' / '8' -> genre id; with ``known`` (the genres of its training data) it must be one of them."""
    try:
        gid = D.genre_id(text.strip() if not str(text).strip().isdigit() else int(text))
    except (KeyError, ValueError):
        raise cli.UserError(f"{what}: unknown genre {text!r}; use one of {', '.join(D.GENRES[1:])}") from None
    if not 0 <= gid < n_genre:
        raise cli.UserError(f"{what}: this checkpoint knows genre ids below {n_genre}")
    if known and gid not in known:
        have = ", ".join(D.GENRES[g] for g in known if 0 <= g < len(D.GENRES))
        raise cli.UserError(f"{what}: this model was not trained with {D.GENRES[gid]} songs; it knows {have}")
    return gid


def parse_emotion(text: str, model, what: str = "--emotion") -> int:
    """'Q1'..'Q4' (or 1..4) -> 1..4, for a bmt model that saw that emotion in training."""
    if model.config.preset != "bmt":
        raise cli.UserError(f"{what}: this checkpoint is a {model.config.preset} model without an emotion field; "
                            "train a bmt model (midi2numpy_mix.py --representation bmt) on emotion-labelled MIDI")
    try:
        eid = D.emotion_id(text)
    except KeyError:
        raise cli.UserError(f"{what}: unknown emotion {text!r}; use Q1 (happy, excited), Q2 (tense, angry), "
                            "Q3 (sad) or Q4 (calm)") from None
    known = (getattr(model, "vocab", None) or {}).get("emotions")
    if known is not None and eid not in known:
        have = ", ".join(D.EMOTIONS[k] for k in known if k) or "none (its data had no emotion labels)"
        raise cli.UserError(f"{what}: this model was not trained with {D.EMOTIONS[eid]} songs; it knows {have}")
    return eid


def parse_programs(text: str, what: str = "--program") -> dict:
    """'Piano=0,Strings=48' -> {'Piano': 0, 'Strings': 48} merged over the default programs."""
    programs = dict(D.PROGRAMS)
    for tok in _split(text):
        name, _, value = tok.partition("=")
        match = [n for n in D.INSTRUMENTS if n.lower() == name.strip().lower()]
        if not match or not value.strip().isdigit() or not 0 <= int(value) <= 127:
            raise cli.UserError(f"{what}: expected TRACK=PROGRAM with TRACK in {', '.join(D.INSTRUMENTS)} "
                                f"and PROGRAM a General MIDI number 0..127, got {tok!r}")
        programs[match[0]] = int(value)
    return programs


def check_tempo(value, what: str = "--my_tempo") -> float:
    """A tempo in bpm, within the range the tempo tokens span (32..224): the one tempo check."""
    try:
        t = float(str(value).strip())
    except (TypeError, ValueError):
        raise cli.UserError(f"{what} must be a number of beats per minute, from {D.TEMPO_MIN:g} to "
                            f"{D.TEMPO_MAX:g}, got {value!r}") from None
    if not (np.isfinite(t) and D.TEMPO_MIN <= t <= D.TEMPO_MAX):
        raise cli.UserError(f"{what} must be from {D.TEMPO_MIN:g} to {D.TEMPO_MAX:g} bpm, got {value}")
    return t


#: Strength classes a visual beat can have (0 .. the number of thresholds, SPEC section 6).
MIN_STRENGTH_RANGE = (1, 10)


def parse_int(value, what: str, lo: int, hi: int) -> int:
    """A whole number in lo..hi, else a one-line error naming ``what``."""
    try:
        v = int(str(value).strip())
    except (TypeError, ValueError):
        raise cli.UserError(f"{what} must be a whole number from {lo} to {hi}, got {value!r}") from None
    if not lo <= v <= hi:
        raise cli.UserError(f"{what} must be from {lo} to {hi}, got {v}")
    return v


def parse_min_strength(value, what: str = "--density_threshold") -> int:
    """The visual-beat threshold: beats of a weaker strength class are not forced."""
    return parse_int(value, what, *MIN_STRENGTH_RANGE)


def parse_scene_cuts(value, what: str = "--scene_cuts") -> tuple[float, ...] | None:
    """'auto' (or nothing): the cuts the video analysis detects (None); '0' / 'off' / 'none':
    no sections (()); '8.0,16.0': the cuts by hand, in seconds (each is checked against the
    video's length when it is known)."""
    text = str(value).strip().lower()
    if text in ("", "auto", "detect", "detected"):
        return None
    if text in ("0", "off", "none", "no"):
        return ()
    try:
        cuts = tuple(float(t) for t in _split(text))
    except ValueError:
        raise cli.UserError(f"{what}: give 0 (no sections), auto (the detected cuts) or times in seconds "
                            f"such as 8.0,16.0; got {value!r}") from None
    if not cuts or any(not np.isfinite(c) or c <= 0 for c in cuts):
        raise cli.UserError(f"{what}: cut times must be positive seconds, got {value!r}")
    if any(b <= a for a, b in zip(cuts, cuts[1:])):
        raise cli.UserError(f"{what}: give the cut times in increasing order, got {value!r}")
    return cuts


def parse_switch(value, what: str) -> bool:
    """0 or 1."""
    return bool(parse_int(value, what, 0, 1))


# ---------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------

def _vocab(model) -> dict:
    return getattr(model, "vocab", None) or {}


def is_released(model) -> bool:
    """The released CMT checkpoint: one constant init block, so no init-block control acts on it."""
    return (getattr(model, "checkpoint_info", None) or {}).get("format") == "released"


def _no_released(what: str, model) -> None:
    if is_released(model):
        raise cli.UserError(f"{what}: the released CMT checkpoint was trained with one constant "
                            "init block, so this control cannot act on it")


def _parse_key(text, model, what):
    _no_released(what, model)
    return parse_key(text, model.config.init_n_class[1], _vocab(model).get("keys"), what)


def _parse_genre(text, model, what):
    _no_released(what, model)
    return parse_genre(text, model.config.init_n_class[0], _vocab(model).get("genres"), what)


@dataclass(frozen=True)
class Control:
    name: str                            # the pipeline.Options field (the internal name)
    flag: str                            # --flag of main_cp.py's hyperparameter block
    form: str                            # the web form's field ("" where the page does not offer it)
    init_cell: tuple[int, int] | None    # (row, column) in the init block; None: acts elsewhere
    parse: Callable[[Any, Any, str], Any]   # (text, model, what) -> value; one-line cli.UserError naming what
    seen: str | None = None              # checkpoint vocab: the values its training data had
    default: str | None = None           # checkpoint vocab: the default (the commonest of them)
    help: str = ""

    def read(self, text, model, what: str | None = None):
        """The value of ``text`` for ``model``; errors name ``what`` (default: the flag; the web
        form names its field)."""
        return self.parse(text, model, what or f"--{self.flag}")


CONTROLS: dict[str, Control] = {c.name: c for c in (
    Control("instruments", "instruments", "instruments", None,
            lambda t, m, w: parse_instruments(t, _vocab(m).get("instruments"), w), seen="instruments",
            help="instrument classes the music may use (init rows 2..6, column INIT_INSTRUMENT_COLUMN)"),
    Control("key", "key", "", D.INIT_CELL["key"], _parse_key, seen="keys", default="default_key",
            help="the key"),
    Control("genre", "genre", "", D.INIT_CELL["genre"], _parse_genre, seen="genres", default="default_genre",
            help="the genre"),
    Control("emotion", "emotion", "emotion", D.INIT_CELL["emotion"], lambda t, m, w: parse_emotion(t, m, w),
            seen="emotions", default="default_emotion", help="Q1..Q4 (bmt models)"),
    Control("tempo", "my_tempo", "tempo", None, lambda t, m, w: check_tempo(t, w), help="the music's tempo (bpm)"),
    Control("min_strength", "density_threshold", "threshold", None, lambda t, m, w: parse_min_strength(t, w),
            help="visual beats of a weaker strength class are not forced"),
    Control("programs", "program", "", None, lambda t, m, w: parse_programs(t, w),
            help="General MIDI programs for rendering"),
    Control("scene_cuts", "scene_cuts", "", None, lambda t, m, w: parse_scene_cuts(t, w),
            help="sections at scene cuts: auto (detected), 0 (off), or times in seconds"),
    Control("mood", "mood", "", None, lambda t, m, w: parse_switch(t, w),
            help="1: key, genre, emotion and tempo octave from the picture's mood where not given"),
)}


def parse_flags(values: Mapping[str, Any], model) -> dict:
    """The controls given in ``values`` (keyed by flag, as the hyperparameter block; empty = not
    given) parsed for ``model``, keyed by Options field.  ``my_tempo`` counts only with ``is_tempo``."""
    out = {}
    for c in CONTROLS.values():
        v = values.get(c.flag)
        if c.name == "tempo" and not values.get("is_tempo"):
            continue
        if v is None or (isinstance(v, str) and not v.strip()):
            continue
        out[c.name] = c.read(v, model)
    return out


def defaults(model) -> dict:
    """What an init-block control is when not chosen: the checkpoint's default (the commonest of
    its training data), else all instruments it played, key 1 when it has a key vocabulary, 0."""
    vocab = _vocab(model)
    fallback = {"key": 1 if model.config.init_n_class[1] > 1 else 0, "genre": 0, "emotion": 0}
    out = {"instruments": tuple(vocab.get(CONTROLS["instruments"].seen) or range(1, len(D.INSTRUMENTS) + 1))}
    for c in CONTROLS.values():
        if c.init_cell is None or (c.name == "emotion" and model.config.preset != "bmt"):
            continue
        out[c.name] = vocab.get(c.default, fallback[c.name])
    return out


def init_block(model, chosen: Mapping[str, Any]) -> np.ndarray:
    """The 7 global tokens for ``model``: the released checkpoint's constant block, or the chosen
    labels (``chosen[name]``, None = not chosen) over :func:`defaults`."""
    if is_released(model):
        return np.asarray(D.RELEASED_INIT_BLOCK)
    from vidscore.music.representation import init_tokens
    labels = defaults(model)
    labels.update({k: v for k, v in chosen.items() if k in labels and v is not None})
    return np.asarray(init_tokens(labels["instruments"], labels["key"], labels["genre"], labels.get("emotion")))


def vocab_from_init(init: np.ndarray) -> dict:
    """What a checkpoint records of its training labels, from the init blocks (N, 7, fields): for each
    control with an init cell, the values seen and the commonest (the default at inference)."""
    init = np.asarray(init)
    out = {}
    for c in CONTROLS.values():
        if c.init_cell is None or c.init_cell[1] >= init.shape[-1]:
            continue
        values, counts = np.unique(init[:, c.init_cell[0], c.init_cell[1]], return_counts=True)
        out[c.seen] = values.tolist()
        out[c.default] = int(values[counts.argmax()])
    return out
