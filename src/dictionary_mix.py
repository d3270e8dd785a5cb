"""Vocabularies of the CMT compound-word representation (SPEC section 2).

Every token is one row of nine integers in the model's column order (``FIELDS``).
Value 0 means "none / padding" in every field.  This module holds only constants
and tiny lookup helpers; the tokeniser itself lives in :mod:`representation`.
"""
from __future__ import annotations

import re

# --- token columns --------------------------------------------------------------
FIELDS = ["bar-beat", "type", "density", "pitch", "duration", "instrument", "strength", "p_beat", "i_beat"]
COL_BARBEAT = 0
COL_TYPE = 1
COL_DENSITY = 2
COL_PITCH = 3
COL_DURATION = 4
COL_INSTRUMENT = 5
COL_STRENGTH = 6
COL_PBEAT = 7
COL_IBEAT = 8
N_COLS = len(FIELDS)
EMBEDDED_FIELDS = FIELDS[:8]  # i_beat only indexes the positional encoding

# --- type field -----------------------------------------------------------------
TYPE_EOS = 0  # also padding
TYPE_M = 1  # metrical: a Bar or a Beat token
TYPE_NOTE = 2
TYPE_GLOBAL = 3  # present in the original dictionary, never produced
TYPE_NAMES = ["EOS", "M", "Note", "Global"]

# --- time grid ------------------------------------------------------------------
TICKS_PER_BEAT = 4  # one tick = a 16th note
TICKS_PER_BAR = 16  # 4/4 assumed
MAX_DURATION = 16  # durations are capped at one bar (in ticks)
BAR = 17  # bar-beat value of a Bar token; Beat_k (position k) is k + 1
N_PBEAT = 102  # p_beat: 0 pad, 1..101

# --- instruments ----------------------------------------------------------------
INSTRUMENTS = ["Drums", "Piano", "Guitar", "Bass", "Strings"]  # class ids 1..5
INSTRUMENT_ID = {name: i + 1 for i, name in enumerate(INSTRUMENTS)}
DRUMS, PIANO, GUITAR, BASS, STRINGS = 1, 2, 3, 4, 5
PROGRAMS = {"Drums": 0, "Piano": 0, "Guitar": 24, "Bass": 33, "Strings": 41}
DRUM_CHANNEL = 9  # 0-based, i.e. MIDI channel 10
MIN_TRACK_NOTES = 21  # tracks with <= 20 notes are dropped

# --- released checkpoint --------------------------------------------------------
RELEASED_N_CLASS = [18, 3, 18, 129, 18, 6, 20, 102, 5025]
RELEASED_INIT_N_CLASS = [7, 1, 6]
RELEASED_INIT_BLOCK = [[5, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3], [0, 0, 4], [0, 0, 5]]

# Full vocabulary sizes of this project's representation (what a new model needs).
# i_beat is not embedded; its "size" is the positional-encoding table length.
N_CLASS = {
    "bar-beat": 18,
    "type": 3,
    "density": 18,
    "pitch": 129,
    "duration": MAX_DURATION + 2,
    "instrument": len(INSTRUMENTS) + 1,
    "strength": 20,
    "p_beat": N_PBEAT,
    "i_beat": 20000,
}

# --- init (global) tokens: [genre, key, instrument] -----------------------------
INIT_FIELDS = ["genre", "key", "instrument"]
N_INIT_ROWS = 7

_PITCH_CLASSES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
# 0 = none/unknown, 1..12 = C..B major, 13..24 = C..B minor
KEY_NAMES = ["none"] + [f"{p} major" for p in _PITCH_CLASSES] + [f"{p} minor" for p in _PITCH_CLASSES]

# Genre ids.  The released checkpoint has 7 genre classes and its constant init block
# uses 5 = Pop (the only id the original documents); 1..4 and 6 are our assignment.
# Ids from 7 on extend the vocabulary (a model trained on our data sizes its genre
# embedding from the data).  The tagtraum/MSD labels used with LPD are included.
GENRES = [
    "none",
    "Rock",
    "Country",
    "Electronic",
    "Metal",
    "Pop",
    "Jazz",
    "Classical",
    "Folk",
    "Blues",
    "Latin",
    "Rap",
    "RnB",
    "Reggae",
    "International",
    "NewAge",
    "Vocal",
    "PopRock",
]
GENRE_ID = {name: i for i, name in enumerate(GENRES)}

INIT_N_CLASS = [len(GENRES), len(KEY_NAMES), len(INSTRUMENTS) + 1]


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_GENRE_BY_NORM = {_norm(g): i for i, g in enumerate(GENRES)}
_GENRE_BY_NORM.update({"hiphop": GENRE_ID["Rap"], "rb": GENRE_ID["RnB"], "world": GENRE_ID["International"],
                       "unknown": 0, "": 0})


def genre_id(name: str | int) -> int:
    """Genre id for a name (case, spaces, '_' and '-' ignored) or a numeric id; KeyError if unknown."""
    if isinstance(name, int) or str(name).strip().isdigit():
        gid = int(name)
        if not 0 <= gid < len(GENRES):
            raise KeyError(name)
        return gid
    return _GENRE_BY_NORM[_norm(str(name))]


def key_name(key_id: int) -> str:
    return KEY_NAMES[key_id]


def instrument_name(class_id: int) -> str:
    """'Drums'..'Strings' for 1..5, 'none' for 0."""
    return "none" if class_id == 0 else INSTRUMENTS[class_id - 1]


def barbeat_name(value: int) -> str:
    if value == 0:
        return "none"
    if value == BAR:
        return "Bar"
    return f"Beat_{value - 1}"


def describe_row(row) -> str:
    """A readable one-line rendering of a token row (for debugging and logs)."""
    t = int(row[COL_TYPE])
    if t == TYPE_EOS:
        return "EOS"
    if t == TYPE_M:
        bb = barbeat_name(int(row[COL_BARBEAT]))
        extra = "" if int(row[COL_BARBEAT]) == BAR else f" {instrument_name(int(row[COL_INSTRUMENT]))} strength={int(row[COL_STRENGTH])}"
        return f"{bb} density={int(row[COL_DENSITY]) - 1}{extra} tick={int(row[COL_IBEAT])}"
    return (f"Note {instrument_name(int(row[COL_INSTRUMENT]))} pitch={int(row[COL_PITCH]) - 1} "
            f"dur={int(row[COL_DURATION]) - 1} tick={int(row[COL_IBEAT])}")
