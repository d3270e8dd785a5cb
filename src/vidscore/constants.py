"""Vocabularies of the compound-word representations (SPEC sections 2 and 8).

Two presets share one layout.  ``cmt`` (the published CMT) has nine columns per token row
(``FIELDS``); ``bmt`` (BMT's richer soundtrack tokens) appends three, so every tool that reads
the first nine columns reads both:

    col  cmt / bmt                 bmt only
    0    bar-beat                  9   tempo     on Bar tokens: 55 bins 32..224 bpm (+ 0 none)
    1    type                      10  chord     on Bar and Beat tokens: root x quality (chords.py)
    2    density                   11  velocity  on Note tokens: 40 bins of 3.2 (+ 0 none)
    3    pitch
    4    duration                  col 7 is p_beat (1..101) in cmt and p_time (0..99, stored + 1)
    5    instrument                in bmt; both are the position in the song in percent.
    6    strength
    7    p_beat / p_time           Init (global) rows: [genre, key, instrument] in cmt,
    8    i_beat                    [genre, key, instrument, emotion] in bmt.

Value 0 means "none / padding" in every field.  :class:`Preset` describes a layout (which
columns are embedded, predicted, their full vocabulary sizes); the model builds its
embeddings and heads from it.  This module holds only constants and tiny lookup helpers;
the tokeniser itself lives in :mod:`representation`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

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

# --- type field -----------------------------------------------------------------
TYPE_EOS = 0  # also padding
TYPE_M = 1  # metrical: a Bar or a Beat token
TYPE_NOTE = 2
TYPE_GLOBAL = 3  # present in the original dictionary, never produced

# --- time grid ------------------------------------------------------------------
TICKS_PER_BEAT = 4  # one tick = a 16th note
TICKS_PER_BAR = 16  # 4/4 assumed
MAX_DURATION = 16  # durations are capped at one bar (in ticks)
BAR = 17  # bar-beat value of a Bar token; Beat_k (position k) is k + 1
N_PBEAT = 102  # p_beat: 0 pad, 1..101

# --- instruments ----------------------------------------------------------------
INSTRUMENTS = ["Drums", "Piano", "Guitar", "Bass", "Strings"]  # class ids 1..5
DRUMS, PIANO, GUITAR, BASS, STRINGS = 1, 2, 3, 4, 5
PROGRAMS = {"Drums": 0, "Piano": 0, "Guitar": 24, "Bass": 33, "Strings": 41}
#: General MIDI program family (program // 8) -> instrument class: the LPD-5 merge, i.e. the data
#: CMT was trained on (lpd-5-cleansed).  Pianos, guitars and basses keep their class; every other
#: melodic family (chromatic percussion, organ, strings, ensemble, brass, reed, pipe, synth lead,
#: synth pad, ethnic) is merged into Strings, the sustained accompaniment; synth effects (96-103),
#: percussive (112-119) and sound effects (120-127) are left out (0).  Drum-channel tracks are Drums.
GM_FAMILY_CLASS = (PIANO, STRINGS, STRINGS, GUITAR, BASS, STRINGS, STRINGS, STRINGS,
                   STRINGS, STRINGS, STRINGS, STRINGS, 0, STRINGS, 0, 0)
#: File suffixes read as MIDI, and as video, wherever folders are listed.
MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".smf")
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv",
                            ".3gp", ".ts", ".mts", ".m2ts", ".ogv", ".mxf", ".gif"})
FORCED_TRACKS = (DRUMS, PIANO, GUITAR)  # forced at each visual beat, in this order (SPEC section 5)
#: The General MIDI drum-kit sounds (key numbers on the drum channel) of a drum kit's backbone:
#: kicks, snares (with the side stick and the hand clap that play the backbeat in pop), hi-hats,
#: crashes and rides.  Toms, the other cymbals and the hand percussion are left out.
GM_KIT = {"kick": (35, 36), "snare": (37, 38, 39, 40), "hi-hat": (42, 44, 46), "crash": (49, 57),
          "ride": (51, 59)}
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
#: Where each global label sits in the init block: (row, column).  Instrument class k (1..5)
#: sits at (1 + k, INIT_INSTRUMENT_COLUMN) when present.  bmt's emotion is a fourth column.
INIT_CELL = {"genre": (0, 0), "key": (1, 1), "emotion": (0, 3)}
INIT_INSTRUMENT_COLUMN = 2

# --- the published control settings (SPEC section 5) ------------------------------
DEFAULT_C = 0.7              # probability of taking the video's bar density at a Bar
DEFAULT_MIN_STRENGTH = 2     # visual beats with a weaker strength class are not forced

PITCH_CLASSES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]   # key and chord roots
# 0 = none/unknown, 1..12 = C..B major, 13..24 = C..B minor
KEY_NAMES = ["none"] + [f"{p} major" for p in PITCH_CLASSES] + [f"{p} minor" for p in PITCH_CLASSES]

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


def transpose_keys(key_ids, k: int):
    """Key ids (a NumPy array) with the tonic moved up ``k`` semitones, the mode kept; 0 (none) stays."""
    out = key_ids.copy()
    known = key_ids > 0
    tonic, mode = (key_ids[known] - 1) % 12, (key_ids[known] - 1) // 12
    out[known] = 1 + 12 * mode + (tonic + k) % 12
    return out


def instrument_name(class_id: int) -> str:
    """'Drums'..'Strings' for 1..5, 'none' for 0."""
    return "none" if class_id == 0 else INSTRUMENTS[class_id - 1]


# ---------------------------------------------------------------------------------
# BMT fields (SPEC section 8)
# ---------------------------------------------------------------------------------
COL_TEMPO = 9
COL_CHORD = 10
COL_VELOCITY = 11
BMT_FIELDS = FIELDS[:COL_PBEAT] + ["p_time", "i_beat", "tempo", "chord", "velocity"]

TEMPO_MIN, TEMPO_MAX, N_TEMPO_BINS = 32.0, 224.0, 55       # vocab 56 with "none"
#: The tempi (bpm) a user, a video npz or metadata may give: a MIDI file cannot hold a slower one
#: (its tempo is microseconds per beat, at most 2^24 - 1), and a faster one is no tempo anyone plays.
USER_TEMPO_MIN, USER_TEMPO_MAX = 4.0, 1000.0
N_VELOCITY_BINS = 40                                        # vocab 41 with "none"
N_PTIME = 101                                               # 0 pad, 1..100 = p_time 0..99 + 1
CHORD_QUALITIES = ["M", "m", "o", "+", "7", "M7", "m7", "o7", "/o7", "sus2", "sus4"]   # chorder's qualities (BMT)
N_CHORD = 2 + 12 * len(CHORD_QUALITIES)                    # none, N.C., 12 roots x 11 qualities (chords.py)

EMOTIONS = ["none", "Q1", "Q2", "Q3", "Q4"]
EMOTION_MEANING = {"Q1": "high valence, high arousal (happy, excited)",
                   "Q2": "low valence, high arousal (tense, angry)",
                   "Q3": "low valence, low arousal (sad, gloomy)",
                   "Q4": "high valence, low arousal (calm, tender)"}


def tempo_bin(bpm) -> int:
    """Tempo class 1..55 of a tempo in bpm: the nearest of 55 evenly spaced values 32..224."""
    step = (TEMPO_MAX - TEMPO_MIN) / (N_TEMPO_BINS - 1)
    k = int(round((min(max(float(bpm), TEMPO_MIN), TEMPO_MAX) - TEMPO_MIN) / step))
    return 1 + k


def tempo_value(cls: int) -> float:
    """Tempo in bpm of class 1..55 (the bin's centre)."""
    if not 1 <= int(cls) <= N_TEMPO_BINS:
        raise ValueError(f"tempo class {cls} out of 1..{N_TEMPO_BINS}")
    return TEMPO_MIN + (int(cls) - 1) * (TEMPO_MAX - TEMPO_MIN) / (N_TEMPO_BINS - 1)


def velocity_bin(velocity) -> int:
    """Velocity class 1..40 of a MIDI velocity 0..127 (bins 3.2 wide)."""
    v = min(max(int(velocity), 0), 127)
    return 1 + v * N_VELOCITY_BINS // 128


def velocity_value(cls: int) -> int:
    """MIDI velocity of class 1..40 (the bin's centre, rounded)."""
    if not 1 <= int(cls) <= N_VELOCITY_BINS:
        raise ValueError(f"velocity class {cls} out of 1..{N_VELOCITY_BINS}")
    return int(round((int(cls) - 1) * 128 / N_VELOCITY_BINS + 64 / N_VELOCITY_BINS))


def emotion_id(name) -> int:
    """'Q1'..'Q4' (case-insensitive, or 1..4) -> 1..4; KeyError otherwise."""
    t = str(name).strip().upper()
    if t.isdigit() and 1 <= int(t) <= 4:
        return int(t)
    if t in EMOTIONS[1:]:
        return EMOTIONS.index(t)
    raise KeyError(name)


# ---------------------------------------------------------------------------------
# presets: what the model embeds and predicts
# ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenField:
    """One embedded column.  ``module`` names its weights (``encoder_emb_<module>``, ``proj_<module>``:
    the released checkpoint's names for the cmt fields); ``emb`` is the published embedding size."""
    name: str
    col: int
    emb: int
    module: str
    head: bool = True


@dataclass(frozen=True)
class Preset:
    name: str
    columns: tuple[str, ...]          # column names in row order
    n_class: tuple[int, ...]          # full vocabulary per column (i_beat: positional table length)
    fields: tuple[TokenField, ...]    # embedded and concatenated, in this order (type is one of them)
    time_col: int                     # the beat-timing column (own embedding, added)
    init_fields: tuple[str, ...]
    init_n_class: tuple[int, ...]

    @property
    def n_cols(self) -> int:
        return len(self.columns)

    @property
    def heads(self) -> tuple[str, ...]:
        """Predicted fields, type first (it is sampled first and conditions the others)."""
        return ("type",) + tuple(f.name for f in self.fields if f.head and f.name != "type")

    def field(self, name: str) -> TokenField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def emb_sizes(self, cmt_sizes) -> list[int]:
        """Embedding sizes for every field from the seven cmt ones: extra bmt fields are sized
        from the pitch embedding (published 512 -> tempo 128, chord 256, velocity 128)."""
        sizes = [int(v) for v in cmt_sizes]
        if len(sizes) == len(self.fields):
            return sizes
        if len(sizes) != 7:
            need = "7" if len(self.fields) == 7 else f"7 (the cmt fields) or {len(self.fields)} (all {self.name} fields)"
            raise ValueError(f"{self.name} data needs {need} sizes, got {len(sizes)}")
        pitch = sizes[3]
        extra = {"tempo": max(pitch // 4, 2), "chord": max(pitch // 2, 2), "velocity": max(pitch // 4, 2)}
        return sizes + [extra[f.name] for f in self.fields[7:]]


_CMT_FIELDS = (
    TokenField("barbeat", COL_BARBEAT, 64, "barbeat"),
    TokenField("type", COL_TYPE, 32, "type"),
    TokenField("density", COL_DENSITY, 64, "beat_density"),
    TokenField("pitch", COL_PITCH, 512, "pitch"),
    TokenField("duration", COL_DURATION, 128, "duration"),
    TokenField("instr", COL_INSTRUMENT, 32, "instr"),
    TokenField("strength", COL_STRENGTH, 64, "onset_density"),
)

PRESETS = {
    "cmt": Preset("cmt", tuple(FIELDS), tuple(N_CLASS[f] for f in FIELDS), _CMT_FIELDS, COL_PBEAT,
                  tuple(INIT_FIELDS), tuple(INIT_N_CLASS)),
}


def _bmt() -> Preset:
    n_class = [N_CLASS[f] for f in FIELDS]
    n_class[COL_PBEAT] = N_PTIME
    n_class += [N_TEMPO_BINS + 1, N_CHORD, N_VELOCITY_BINS + 1]
    fields = _CMT_FIELDS + (TokenField("tempo", COL_TEMPO, 128, "tempo"),
                            TokenField("chord", COL_CHORD, 256, "chord"),
                            TokenField("velocity", COL_VELOCITY, 128, "velocity"))
    return Preset("bmt", tuple(BMT_FIELDS), tuple(n_class), fields, COL_PBEAT,
                  tuple(INIT_FIELDS) + ("emotion",), tuple(INIT_N_CLASS) + (len(EMOTIONS),))


PRESETS["bmt"] = _bmt()


def preset(name: str | None) -> Preset:
    """The preset named ``name`` (None: cmt); ValueError naming the known ones."""
    try:
        return PRESETS[name or "cmt"]
    except KeyError:
        raise ValueError(f"unknown representation preset {name!r}; use {' or '.join(PRESETS)}") from None
