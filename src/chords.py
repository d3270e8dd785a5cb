"""Chord extraction for the ``bmt`` representation preset (the chord field of metrical tokens).

Vocabulary
----------
SPEC section 8 says BMT's chord field is "root x quality, 127 classes".  Ours is derived
from what music21 can name: 12 roots x 11 qualities plus two specials, 134 classes::

    0            none  - the field is unused on this token (note rows, padding)
    1            N.C.  - no chord: silence, or too few / unnameable pitch classes
    2 + 11*r + q root r (0 = C .. 11 = B) and quality q, QUALITIES order:
                 maj min dim aug dom7 maj7 min7 dim7 hdim7 sus2 sus4

so ``chord_id(0, "maj") == 2`` (C:maj) and ``chord_id(11, "sus4") == 133`` (B:sus4).
Names are ``"<root>:<quality>"`` with sharps (``"F#:min7"``), plus ``"N.C."`` and ``"none"``;
:func:`parse_chord` also accepts flats (``"Bb:maj"``) and any case for the quality.

Naming a pitch-class set (:func:`name_pitch_classes`)
----------------------------------------------------
music21 does the naming: the set is voiced with the bass (if known) an octave below the
other tones, and ``music21.harmony.chordSymbolFigureFromChord(chord, True)`` gives the
chord kind, ``chord.root()`` the root.  The set is first transposed so that its bass is C,
so naming is transposition-equivariant and cached (``functools.lru_cache``) per frozenset
of intervals above the bass: at most about 2,000 music21 calls ever (220 for sets of 3 or 4
tones, about 4 ms each).  music21 kinds map onto our qualities by their triad / seventh:

* major (and major-sixth) -> maj; minor, minor-sixth, minor-major-7th/9th/11th/13th -> min
* dominant-7th/9th/11th/13th, seventh-flat-five -> dom7; major-7th/9th/11th/13th -> maj7;
  minor-7th/9th/11th/13th -> min7; half-diminished-* -> hdim7; diminished-7th/9th/11th -> dim7
* augmented and every augmented-* extension -> aug; diminished -> dim
* suspended-second -> sus2; suspended-fourth, suspended-fourth-seventh -> sus4
* power (with added tones), pedal, Neapolitan, Italian/French/German sixths, Tristan and
  "cannot be identified" -> not named (the fallback below takes over).

Music21 notes worth knowing (checked on v10.5):

* ``root()`` works on spellings, so pitches built from MIDI numbers (C-D#-G#) are first
  respelled along the line of fifths (``simplifyEnharmonics``: C-Eb-Ab); otherwise Ab/C
  "cannot be identified".
* It never answers major-sixth or minor-sixth: C-E-G-A is "Am7/C", C-Eb-G-A "Aø7/C".  We
  re-read a min7 (hdim7) whose *bass is its minor third* as a major (minor) triad on the
  bass: C-E-G-A over C is C:maj, over A it stays A:min7 (so Am7/C is also C:maj).
* Symmetric chords get their root from the spelling (C-Eb-F#-A is "F#o7/C"), so for aug
  and dim7 we define the root as the bass (with no bass: the lowest pitch-class number,
  C=0 first, so C-E-G# = E-G#-C = C:aug).
* Sus chords depend on the bass: C-D-G over C is Csus2, over G Gsus4; a sus chord over its
  fifth (a stack of fourths) is sus4 on the bass (G-C-F = G:sus4, D-G-C = D:sus4).
* Many sets are named with "add"/"omit" (C-E-F-G is "CaddF" -> C:maj); we accept them.
  Dyads: only the fifth/fourth is named ("power"); thirds "cannot be identified".

With no bass given, every tone is tried as the bass; readings in root position (root =
bass) win, then the one whose template explains most of the set, then quality preference
maj, min, dom7, min7, maj7, sus4, sus2, dim, hdim7, aug, dim7, then the lowest root.

Fallback when music21 cannot name the set as one of our qualities: drop the least salient
non-bass tone (the input order is the salience order: most salient first; a set is taken
in ascending pitch-class order) - first try each single drop, least salient first; if no
(n-1)-subset names, drop the least salient and repeat.  Down to two tones, a dyad is named
by its interval: a fifth/fourth (music21's "power" chord) is major on the lower note of
the fifth (C-G and G-C both C:maj), a major third (minor sixth) is major on its lower
(upper) note, a minor third (major sixth) minor on its lower (upper) note (A-C = A:min);
seconds, sevenths and the tritone are N.C.  Fewer than two tones are N.C.

Segment chords (:func:`segment_chords`)
---------------------------------------
A song is cut into segments of ``SEGMENT = 8`` ticks (half a 4/4 bar).  Drums (instrument
class 1) are ignored.  Every other note adds its overlap with the segment, in ticks (a note
of duration 0 counts as 1 tick), to its pitch class; notes below MIDI 48 (C3, bass register)
weigh ``BASS_WEIGHT = 1.5`` times as much, since the bass line mostly plays roots.  A note
sustained across a boundary counts in both segments with its overlap in each.

* Salient pitch classes: weight >= ``SALIENCE = 0.3`` x the segment's largest weight, at
  most ``MAX_TONES = 4`` (the heaviest; ties by pitch class), ordered by weight.
* Bass: the pitch class of the lowest sounding note whose pitch class is salient.
* No notes at all: N.C. (silence breaks the harmony).
* One or two salient pitch classes that all belong to the previous segment's chord
  template: the previous chord is held (a sustained root, a power chord or a thinning
  texture keeps the harmony: C-E after A:min stays A:min, C-G after A:min is C:maj).
  Otherwise one pitch class is N.C. and two are named by the dyad rule above.
* Three or four: :func:`name_pitch_classes` (music21 + fallback) with that bass.
"""
from __future__ import annotations

import functools
import re

import numpy as np

import dictionary_mix as D

QUALITIES = D.CHORD_QUALITIES       # the names live with the token vocabulary
PITCH_CLASSES = D.PITCH_CLASSES
NONE, NO_CHORD = 0, 1
N_CHORD = D.N_CHORD                 # 134
SEGMENT = 8                         # ticks (16th notes) per chord segment: half a 4/4 bar

DRUMS = 1                 # instrument class ignored by segment_chords
SALIENCE = 0.3            # a pitch class is salient at >= this fraction of the segment's max weight
MAX_TONES = 4             # at most this many salient pitch classes per segment
BASS_PITCH = 48           # notes below this MIDI pitch (C3) ...
BASS_WEIGHT = 1.5         # ... weigh this much more

TEMPLATES = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
    "dom7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
    "dim7": (0, 3, 6, 9), "hdim7": (0, 3, 6, 10), "sus2": (0, 2, 7), "sus4": (0, 5, 7),
}

# music21 chord kind (harmony.CHORD_TYPES keys) -> our quality; kinds not listed are not named
KIND_TO_QUALITY = {
    "major": "maj", "major-sixth": "maj",
    "minor": "min", "minor-sixth": "min",
    "minor-major-seventh": "min", "minor-major-ninth": "min", "minor-major-11th": "min",
    "minor-major-13th": "min",
    "diminished": "dim",
    "augmented": "aug", "augmented-seventh": "aug", "augmented-major-seventh": "aug",
    "augmented-major-ninth": "aug", "augmented-dominant-ninth": "aug",
    "augmented-major-11th": "aug", "augmented-11th": "aug", "augmented-major-13th": "aug",
    "augmented-dominant-13th": "aug",
    "dominant-seventh": "dom7", "seventh-flat-five": "dom7", "dominant-ninth": "dom7",
    "dominant-11th": "dom7", "dominant-13th": "dom7",
    "major-seventh": "maj7", "major-ninth": "maj7", "major-11th": "maj7", "major-13th": "maj7",
    "minor-seventh": "min7", "minor-ninth": "min7", "minor-11th": "min7", "minor-13th": "min7",
    "diminished-seventh": "dim7", "diminished-ninth": "dim7", "diminished-minor-ninth": "dim7",
    "diminished-11th": "dim7",
    "half-diminished-seventh": "hdim7", "half-diminished-ninth": "hdim7",
    "half-diminished-minor-ninth": "hdim7", "half-diminished-11th": "hdim7",
    "half-diminished-13th": "hdim7",
    "suspended-second": "sus2", "suspended-fourth": "sus4", "suspended-fourth-seventh": "sus4",
}

_PREFERENCE = ["maj", "min", "dom7", "min7", "maj7", "sus4", "sus2", "dim", "hdim7", "aug", "dim7"]
_SYMMETRIC = ("aug", "dim7")
_NQ = len(QUALITIES)


# ---------------------------------------------------------------------------------
# ids and names
# ---------------------------------------------------------------------------------

def chord_id(root_pc: int, quality: str) -> int:
    """Class id of a chord: ``2 + root_pc * 11 + QUALITIES.index(quality)``."""
    if quality not in QUALITIES:
        raise ValueError(f"unknown chord quality {quality!r}; expected one of {QUALITIES}")
    return 2 + (int(root_pc) % 12) * _NQ + QUALITIES.index(quality)


def _check_id(cid) -> int:
    cid = int(cid)
    if not 0 <= cid < N_CHORD:
        raise ValueError(f"chord id {cid} out of range 0..{N_CHORD - 1}")
    return cid


def chord_root_quality(cid: int) -> tuple[int, str] | None:
    """(root pitch class, quality) of a chord id, None for none / N.C."""
    cid = _check_id(cid)
    if cid < 2:
        return None
    root, q = divmod(cid - 2, _NQ)
    return root, QUALITIES[q]


def transpose(cids, k: int) -> np.ndarray:
    """Chord ids (any array shape) with every root moved up ``k`` semitones; none and N.C. stay."""
    cids = np.asarray(cids)
    out = cids.copy()
    named = cids >= 2
    root, q = np.divmod(cids[named] - 2, _NQ)
    out[named] = 2 + ((root + k) % 12) * _NQ + q
    return out


def chord_name(cid: int) -> str:
    """``"C:maj"``, ``"F#:min7"``, ``"N.C."`` or ``"none"``; ValueError if out of range."""
    rq = chord_root_quality(cid)
    if rq is None:
        return "none" if int(cid) == NONE else "N.C."
    return f"{PITCH_CLASSES[rq[0]]}:{rq[1]}"


_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NAME_RE = re.compile(r"^([A-Ga-g])([#b\-]*):([A-Za-z0-9]+)$")


def parse_chord(name: str) -> int:
    """Chord id of a name: the inverse of :func:`chord_name`.

    Roots take sharps (``#``) or flats (``b``, or music21's ``-``): ``"Bb:maj" == "A#:maj"``;
    the quality is case-insensitive; ``"N.C."`` (also ``"NC"``, ``"N"``) and ``"none"`` are
    the two specials.
    """
    if not isinstance(name, str):
        raise ValueError(f"chord name must be a string, got {type(name).__name__}")
    s = name.strip()
    low = s.lower()
    if low == "none":
        return NONE
    if low in ("n.c.", "n.c", "nc", "n"):
        return NO_CHORD
    m = _NAME_RE.match(s)
    if not m:
        raise ValueError(f"bad chord name {name!r}: expected '<root>:<quality>' such as 'C:maj' "
                         f"or 'Bb:min7', 'N.C.' or 'none'")
    letter, acc, quality = m.groups()
    quality = quality.lower()
    if quality not in QUALITIES:
        raise ValueError(f"bad chord name {name!r}: unknown quality {quality!r}, "
                         f"expected one of {QUALITIES}")
    root = _LETTERS[letter.upper()] + acc.count("#") - acc.count("b") - acc.count("-")
    return chord_id(root % 12, quality)


def chord_pitch_classes(cid: int) -> list[int]:
    """Pitch classes of the chord's template, root first (``[]`` for none / N.C.)."""
    rq = chord_root_quality(cid)
    if rq is None:
        return []
    root, quality = rq
    return [(root + i) % 12 for i in TEMPLATES[quality]]


# ---------------------------------------------------------------------------------
# naming pitch-class sets with music21
# ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _music21_rel(rel: frozenset) -> tuple[int, str] | None:
    """(root interval above the bass, quality) of a set of intervals above a bass (0 in rel).

    The bass sounds an octave below the other tones; None if music21 cannot name the set as
    one of our qualities.
    """
    from music21 import chord as m21chord
    from music21 import pitch as m21pitch
    from music21.harmony import chordSymbolFigureFromChord

    pitches = [m21pitch.Pitch(midi=48)] + [m21pitch.Pitch(midi=60 + i) for i in sorted(rel) if i]
    c = m21chord.Chord(pitches)
    try:
        # spell by the line of fifths (C-Eb-Ab, not C-D#-G#): music21's root() reads spellings
        c = c.simplifyEnharmonics(inPlace=False)
        _figure, kind = chordSymbolFigureFromChord(c, True)
        root = c.root().pitchClass      # read after the call: it may re-root sus2 inversions
    except Exception:                   # music21 raises HarmonyException on unrootable sets
        return None
    quality = KIND_TO_QUALITY.get(kind)
    if quality is None:
        return None
    if quality in _SYMMETRIC:
        root = 0                        # aug / dim7: the bass is the root
    elif quality in ("min7", "hdim7") and (0 - root) % 12 == 3:
        root, quality = 0, ("maj" if quality == "min7" else "min")   # 6th chord on the bass
    return root, quality


def _name_with_bass(pcs: frozenset, bass: int) -> int | None:
    r = _music21_rel(frozenset((p - bass) % 12 for p in pcs))
    return None if r is None else chord_id((bass + r[0]) % 12, r[1])


@functools.lru_cache(maxsize=None)
def _name_set(pcs: frozenset, bass: int | None) -> int | None:
    """Chord id music21 gives a set of >= 3 pitch classes, or None if it names none of ours."""
    if bass is not None:
        return _name_with_bass(pcs, bass)
    best = None
    for b in sorted(pcs):
        cid = _name_with_bass(pcs, b)
        if cid is None:
            continue
        root, quality = chord_root_quality(cid)
        covered = len(pcs & set(chord_pitch_classes(cid)))
        key = (root != b, -covered, _PREFERENCE.index(quality), root)
        if best is None or key < best[0]:
            best = (key, cid)
    return None if best is None else best[1]


def _name_dyad(a: int, b: int) -> int:
    d = (b - a) % 12
    if d == 7:
        return chord_id(a, "maj")        # power chord a-b
    if d == 5:
        return chord_id(b, "maj")        # power chord b-a (fourth = inverted fifth)
    if d == 4:
        return chord_id(a, "maj")
    if d == 8:
        return chord_id(b, "maj")
    if d == 3:
        return chord_id(a, "min")
    if d == 9:
        return chord_id(b, "min")
    return NO_CHORD                      # seconds, sevenths, tritone


@functools.lru_cache(maxsize=None)
def _name_ranked(tones: tuple, bass: int | None) -> int:
    n = len(tones)
    if n < 2:
        return NO_CHORD
    if n == 2:
        return _name_dyad(*tones)
    cid = _name_set(frozenset(tones), bass)
    if cid is not None:
        return cid
    droppable = [t for t in reversed(tones) if t != bass]        # least salient first
    if n - 1 >= 3:
        for t in droppable:
            cid = _name_set(frozenset(x for x in tones if x != t), bass)
            if cid is not None:
                return cid
    return _name_ranked(tuple(x for x in tones if x != droppable[0]), bass)


def name_pitch_classes(pcs, bass: int | None = None) -> int:
    """Chord id of a set of pitch classes, named by music21 (cached); see the module docstring.

    ``pcs``: pitch classes (or MIDI pitches: taken mod 12).  A list / tuple is read in
    salience order, most salient first (it decides which tone the fallback drops); a set in
    ascending order.  ``bass``: the pitch class in the bass, which must be one of ``pcs``
    (it picks among readings music21 would voice differently: sus2/sus4, 6th chords, and the
    root of aug / dim7); None tries every tone.  Empty or single tones give ``NO_CHORD``.
    """
    if isinstance(pcs, (set, frozenset)):
        pcs = sorted(pcs)
    tones = tuple(dict.fromkeys(int(p) % 12 for p in pcs))
    if bass is not None:
        bass = int(bass) % 12
        if bass not in tones:
            raise ValueError(f"bass {bass} is not one of the pitch classes {list(tones)}")
    return _name_ranked(tones, bass)


# ---------------------------------------------------------------------------------
# segment chords
# ---------------------------------------------------------------------------------

_TEMPLATE_SETS = [frozenset(chord_pitch_classes(c)) for c in range(N_CHORD)]


def segment_chords(notes, n_ticks: int, segment: int = SEGMENT) -> np.ndarray:
    """Chord id of every ``segment``-tick segment of a song, int32 of length ceil(n_ticks / segment).

    ``notes``: int array (n, >= 4) of [onset_tick, pitch, duration_ticks, instrument_class, ...];
    instrument class 1 (Drums) is ignored.  Notes after ``n_ticks`` are cut off.  The rule
    (duration-weighted pitch-class histogram, salient tones, bass, holds) is in the module
    docstring.
    """
    segment = int(segment)
    if segment < 1:
        raise ValueError(f"segment must be >= 1 tick, got {segment}")
    n_ticks = max(int(n_ticks), 0)
    n_seg = -(-n_ticks // segment)
    out = np.full(n_seg, NO_CHORD, dtype=np.int32)
    notes = np.asarray(notes, dtype=np.int64)
    if n_seg == 0 or notes.size == 0:
        return out
    if notes.ndim != 2 or notes.shape[1] < 4:
        raise ValueError(f"notes must be an (n, >=4) array, got shape {notes.shape}")
    onset, pitch, dur, inst = notes[:, 0], notes[:, 1], notes[:, 2], notes[:, 3]
    end = np.minimum(onset + np.maximum(dur, 1), n_ticks)
    onset = np.maximum(onset, 0)
    keep = (inst != DRUMS) & (end > onset)
    onset, end, pitch = onset[keep], end[keep], pitch[keep]
    if len(onset) == 0:
        return out

    # one entry per (note, segment it overlaps)
    first = onset // segment
    count = (end - 1) // segment - first + 1
    note_idx = np.repeat(np.arange(len(onset)), count)
    start_of = np.cumsum(count) - count
    seg_idx = first[note_idx] + (np.arange(len(note_idx)) - start_of[note_idx])
    overlap = (np.minimum(end[note_idx], (seg_idx + 1) * segment)
               - np.maximum(onset[note_idx], seg_idx * segment))
    p = pitch[note_idx]
    pc = p % 12
    weight = overlap * np.where(p < BASS_PITCH, BASS_WEIGHT, 1.0)
    hist = np.bincount(seg_idx * 12 + pc, weights=weight, minlength=n_seg * 12).reshape(n_seg, 12)

    order = np.argsort(-hist, axis=1, kind="stable")[:, :MAX_TONES]
    top = np.take_along_axis(hist, order, axis=1)
    n_salient = ((top > 0) & (top >= SALIENCE * hist.max(axis=1, keepdims=True))).sum(axis=1)
    salient = np.zeros((n_seg, 12), dtype=bool)
    rows = np.repeat(np.arange(n_seg), MAX_TONES).reshape(n_seg, MAX_TONES)
    ranked = np.arange(MAX_TONES)[None, :] < n_salient[:, None]
    salient[rows[ranked], order[ranked]] = True
    ok = salient[seg_idx, pc]
    bass_pitch = np.full(n_seg, 1 << 30, dtype=np.int64)
    np.minimum.at(bass_pitch, seg_idx[ok], p[ok])

    prev = NO_CHORD
    for s, (k, tones, bp) in enumerate(zip(n_salient.tolist(), order.tolist(), bass_pitch.tolist())):
        if k == 0:
            cid = NO_CHORD
        else:
            tones = tuple(tones[:k])
            if k <= 2 and _TEMPLATE_SETS[prev].issuperset(tones):
                cid = prev
            else:
                cid = _name_ranked(tones, bp % 12)
        out[s] = prev = cid
    return out


__all__ = ["QUALITIES", "PITCH_CLASSES", "NONE", "NO_CHORD", "N_CHORD", "SEGMENT", "TEMPLATES",
           "KIND_TO_QUALITY", "chord_id", "chord_name", "parse_chord", "chord_pitch_classes",
           "chord_root_quality", "name_pitch_classes", "segment_chords", "transpose"]
