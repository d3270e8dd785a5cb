"""Chords for the ``bmt`` representation preset (the chord field of metrical tokens), as BMT had them.

BMT's chord tokens are those of the ``chorder`` package (the chord recogniser of the
Compound Word Transformer's data): a root and one of chorder's eleven qualities, named
``<root>_<quality>`` with sharps, e.g. ``C_M``, ``A#_M7``, ``A#_/o7``, ``A#_+``.  Extraction
is chorder's too (:func:`segment_chords` runs ``chorder.Dechorder.dechord``).

Vocabulary (134 classes; the layout of ``dictionary_mix``'s bmt chord field)::

    0            none  - the field is unused on this token (note rows, padding)
    1            N_N   - no chord: silence, or nothing chorder recognises
    2 + 11*r + q root r (0 = C .. 11 = B) and quality q, QUALITIES order:
                 M m o + 7 M7 m7 o7 /o7 sus2 sus4

so ``chord_id(0, "M") == 2`` (C_M) and ``chord_id(11, "sus4") == 133`` (B_sus4).
:func:`parse_chord` also accepts flats (``Bb_M7``), chorder's spellings of the qualities
(``maj``, ``min``, ``dim``, ``aug``, ``dom``, ``maj7``, ``min7``, ``dim7``, ``hd7``, ...), the
long names ``dom7`` / ``hdim7`` and ``root:quality`` (``C:maj``).

Segment chords (:func:`segment_chords`)
---------------------------------------
A song's quantised notes (16th-note ticks) become a MIDI object at 4 ticks per beat, drums
(instrument class 1) left out, and ``Dechorder.dechord`` gives one chord per beat: for each
pair of beats it scores the two one-beat chords against one two-beat chord and keeps the
better reading.  A segment (``SEGMENT = 8`` ticks, half a 4/4 bar) gets the chord of its
first beat, the chord in effect where the half bar starts.
"""
from __future__ import annotations

import re

import numpy as np

from vidscore import constants as D

QUALITIES = D.CHORD_QUALITIES       # the names live with the token vocabulary
PITCH_CLASSES = D.PITCH_CLASSES
NONE, NO_CHORD = 0, 1
N_CHORD = D.N_CHORD                 # 134
SEGMENT = 8                         # ticks (16th notes) per chord segment: half a 4/4 bar
TICKS_PER_BEAT = 4

DRUMS = 1                 # instrument class left out of chord recognition

TEMPLATES = {             # intervals above the root (chorder's chord maps)
    "M": (0, 4, 7), "m": (0, 3, 7), "o": (0, 3, 6), "+": (0, 4, 8),
    "7": (0, 4, 7, 10), "M7": (0, 4, 7, 11), "m7": (0, 3, 7, 10),
    "o7": (0, 3, 6, 9), "/o7": (0, 3, 6, 10), "sus2": (0, 2, 7), "sus4": (0, 5, 7),
}

# other spellings of the qualities (chorder's conversion table, and our earlier long names)
ALIASES = {"maj": "M", "min": "m", "dim": "o", "aug": "+", "dom": "7", "dom7": "7", "mm7": "m7", "Mm7": "7",
           "maj7": "M7", "MM7": "M7", "min7": "m7", "dim7": "o7", "d7": "o7", "hd7": "/o7", "hdim7": "/o7",
           "o/7": "/o7"}
_NQ = len(QUALITIES)


# ---------------------------------------------------------------------------------
# ids and names
# ---------------------------------------------------------------------------------

def quality_name(quality: str) -> str:
    """chorder's standard name of a quality (``"maj7"`` -> ``"M7"``); ValueError if unknown."""
    q = ALIASES.get(quality, quality)
    if q not in QUALITIES:
        q = ALIASES.get(str(quality).lower(), q)
    if q not in QUALITIES:
        raise ValueError(f"unknown chord quality {quality!r}; expected one of {QUALITIES}")
    return q


def chord_id(root_pc: int, quality: str) -> int:
    """Class id of a chord: ``2 + root_pc * 11 + QUALITIES.index(quality)``."""
    return 2 + (int(root_pc) % 12) * _NQ + QUALITIES.index(quality_name(quality))


def _check_id(cid) -> int:
    cid = int(cid)
    if not 0 <= cid < N_CHORD:
        raise ValueError(f"chord id {cid} out of range 0..{N_CHORD - 1}")
    return cid


def chord_root_quality(cid: int) -> tuple[int, str] | None:
    """(root pitch class, quality) of a chord id, None for none / no chord."""
    cid = _check_id(cid)
    if cid < 2:
        return None
    root, q = divmod(cid - 2, _NQ)
    return root, QUALITIES[q]


def transpose(cids, k: int) -> np.ndarray:
    """Chord ids (any array shape) with every root moved up ``k`` semitones; none and no chord stay."""
    cids = np.asarray(cids)
    out = cids.copy()
    named = cids >= 2
    root, q = np.divmod(cids[named] - 2, _NQ)
    out[named] = 2 + ((root + k) % 12) * _NQ + q
    return out


def chord_name(cid: int) -> str:
    """``"C_M"``, ``"A#_/o7"``, ``"N_N"`` (no chord) or ``"none"``; ValueError if out of range."""
    rq = chord_root_quality(cid)
    if rq is None:
        return "none" if int(cid) == NONE else "N_N"
    return f"{PITCH_CLASSES[rq[0]]}_{rq[1]}"


_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NAME_RE = re.compile(r"^([A-Ga-g])([#b\-]*)[_:](\S+)$")


def parse_chord(name: str) -> int:
    """Chord id of a name: the inverse of :func:`chord_name`.

    Roots take sharps (``#``) or flats (``b``, or music21's ``-``): ``"Bb_M" == "A#_M"``;
    ``_`` or ``:`` separates root and quality; ``"N_N"`` (also ``"N.C."``, ``"NC"``, ``"N"``)
    and ``"none"`` are the two specials.
    """
    if not isinstance(name, str):
        raise ValueError(f"chord name must be a string, got {type(name).__name__}")
    s = name.strip()
    low = s.lower()
    if low == "none":
        return NONE
    if low in ("n_n", "n.c.", "n.c", "nc", "n"):
        return NO_CHORD
    m = _NAME_RE.match(s)
    if not m:
        raise ValueError(f"bad chord name {name!r}: expected '<root>_<quality>' such as 'C_M' "
                         f"or 'Bb_m7', 'N_N' or 'none'")
    letter, acc, quality = m.groups()
    try:
        quality = quality_name(quality)
    except ValueError:
        raise ValueError(f"bad chord name {name!r}: unknown quality {quality!r}, "
                         f"expected one of {QUALITIES}") from None
    root = _LETTERS[letter.upper()] + acc.count("#") - acc.count("b") - acc.count("-")
    return chord_id(root % 12, quality)


def chord_pitch_classes(cid: int) -> list[int]:
    """Pitch classes of the chord's template, root first (``[]`` for none / no chord)."""
    rq = chord_root_quality(cid)
    if rq is None:
        return []
    root, quality = rq
    return [(root + i) % 12 for i in TEMPLATES[quality]]


# ---------------------------------------------------------------------------------
# chorder
# ---------------------------------------------------------------------------------

def from_chorder(chord) -> int:
    """Our id of a ``chorder.Chord`` (an incomplete one, chorder's "no chord", is N_N)."""
    if chord is None or chord.root_pc is None or chord.quality is None:
        return NO_CHORD
    return chord_id(chord.root_pc, chord.quality)


def beat_chords(notes, n_ticks: int) -> np.ndarray:
    """chorder's chord id for every beat (4 ticks) of quantised notes; drums left out."""
    import miditoolkit
    from chorder import Dechorder

    n_ticks = max(int(n_ticks), 0)
    n_beats = -(-n_ticks // TICKS_PER_BEAT)
    notes = np.asarray(notes, dtype=np.int64)
    if n_beats == 0:
        return np.zeros(0, dtype=np.int32)
    if notes.size and (notes.ndim != 2 or notes.shape[1] < 4):
        raise ValueError(f"notes must be an (n, >=4) array, got shape {notes.shape}")
    midi = miditoolkit.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    inst = miditoolkit.Instrument(program=0, is_drum=False, name="harmony")
    for onset, pitch, dur, cls in (notes[:, :4].tolist() if notes.size else []):
        if cls != DRUMS and 0 <= onset < n_ticks:
            inst.notes.append(miditoolkit.Note(velocity=80, pitch=pitch, start=onset,
                                               end=min(onset + dur, n_ticks)))
    midi.instruments.append(inst)
    midi.max_tick = n_ticks
    out = np.full(n_beats, NO_CHORD, dtype=np.int32)
    if not inst.notes:
        return out
    for b, chord in enumerate(Dechorder.dechord(midi)[:n_beats]):
        out[b] = from_chorder(chord)
    return out


def segment_chords(notes, n_ticks: int, segment: int = SEGMENT) -> np.ndarray:
    """Chord id of every ``segment``-tick segment of a song, int32 of length ceil(n_ticks / segment).

    ``notes``: int array (n, >= 4) of [onset_tick, pitch, duration_ticks, instrument_class, ...];
    drums are left out and notes after ``n_ticks`` are cut off.  A segment takes chorder's
    chord of the beat it starts in (see the module docstring).
    """
    segment = int(segment)
    if segment < 1:
        raise ValueError(f"segment must be >= 1 tick, got {segment}")
    n_ticks = max(int(n_ticks), 0)
    n_seg = -(-n_ticks // segment)
    beats = beat_chords(notes, n_ticks)
    starts = np.arange(n_seg) * segment // TICKS_PER_BEAT
    return beats[starts].astype(np.int32) if n_seg else np.zeros(0, dtype=np.int32)


__all__ = ["QUALITIES", "PITCH_CLASSES", "NONE", "NO_CHORD", "N_CHORD", "SEGMENT", "TEMPLATES", "ALIASES",
           "chord_id", "chord_name", "parse_chord", "chord_pitch_classes", "chord_root_quality",
           "quality_name", "from_chorder", "beat_chords", "segment_chords", "transpose"]
