"""MMA (Musical MIDI Accompaniment) chord charts for music21 melodies: the genre families and their
grooves, a chord per bar for a melody, which grooves arrange a melody, and the chart text.

Everything here is pure (no subprocess): :mod:`vidscore.training.mma` renders the charts with MMA
and adds the melody (see docs/corpus_mma.md).

* :data:`FAMILIES`: genre family -> the MMA library files whose grooves it uses, its genre label
  (a name in ``constants.GENRES``), a tempo range that suits it and the General MIDI programs its
  lead (the melody) may take.  Every file is in 4/4: the melodies are 4/4 and the tokeniser's bars
  are 16 sixteenths, so MMA's waltzes (3/4) and 6/8 grooves are left out.
* :func:`style_from_grooves` sorts a library file's grooves, as MMA describes them, into main
  grooves (those with drums), intros, fills and endings (:class:`Style`).
* :func:`harmonise` gives a melody one chord per bar (ids of :mod:`vidscore.music.chords`).
* :func:`plan_songs` chooses, seeded by the melody id, the families, grooves, tempi and leads of a
  melody's arrangements; :func:`chart_text` writes one as an MMA chart.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

from vidscore import constants as D
from vidscore.music import chords
from vidscore.music.representation import estimate_key

CHART_VERSION = 1


@dataclass(frozen=True)
class Family:
    name: str                      # the song ids' family part, e.g. "Rock"
    genre: str                     # its label, a name in constants.GENRES
    tempo: tuple[int, int]         # bpm range (inclusive) its songs are drawn from
    libraries: tuple[str, ...]     # MMA library files (under usr/share/mma/lib, without .mma)
    leads: tuple[int, ...]         # General MIDI programs (0-based) the melody may be played on


FAMILIES = {f.name: f for f in (
    Family("Rock", "Rock", (100, 140),
           ("stdlib/50srock", "stdlib/60srock", "stdlib/8beat", "stdlib/basicrock", "stdlib/softrock",
            "stdlib/rock-128", "stdlib/bubblerock", "casio/rock1", "casio/rock2", "casio/slowrock",
            "casio/shufflerock", "casio/digitalrock"), (29, 30, 81)),
    Family("Pop", "Pop", (96, 128),
           ("casio/pop", "casio/80spop", "casio/60spop", "casio/8beatpop1", "casio/8beatpop2", "casio/8beatpop3",
            "casio/poprock1", "casio/poprock2", "casio/popshuffle1", "casio/soulpop", "casio/worldpop",
            "casio/electricpop", "casio/16beat1", "casio/8beat1", "kara/8beatmotown", "stdlib/twist"), (0, 4, 80)),
    Family("Jazz", "Jazz", (110, 180),
           ("stdlib/swing", "stdlib/fastswing", "stdlib/easyswing", "stdlib/jazzcombo", "stdlib/bigband",
            "stdlib/mellowjazz", "stdlib/modernjazz", "stdlib/slowjazz", "stdlib/nitejazz", "stdlib/dixie",
            "stdlib/bebop", "yamaha/jazzswing", "yamaha/jazztrio", "yamaha/jazzbasie", "casio/slowswing"),
           (65, 66, 56, 11)),
    Family("Latin", "Latin", (100, 140),
           ("stdlib/bossanova", "stdlib/samba", "stdlib/rhumba", "stdlib/chacha", "stdlib/mambo", "stdlib/salsa",
            "stdlib/beguine", "stdlib/bolero", "stdlib/merengue", "stdlib/son", "stdlib/tango",
            "stdlib/jazzrhumba", "yamaha/salsa1", "yamaha/jazzbossa", "kara/kbossa", "casio/latinfusion"),
           (73, 24, 56)),
    Family("Country", "Country", (100, 150),
           ("stdlib/countryswing", "stdlib/countryblues", "stdlib/bluegrass", "stdlib/slowcountry",
            "stdlib/westernswing", "stdlib/hillcountry", "stdlib/zydeco", "yamaha/western", "yamaha/jazzcountry",
            "kara/kwestballad"), (110, 25, 22)),
    Family("Blues", "Blues", (70, 110),
           ("stdlib/blues", "stdlib/blues128", "stdlib/fastblues", "stdlib/slowblues", "stdlib/shuffleboggie",
            "casio/shuffleboogie"), (22, 27, 66)),
    Family("Reggae", "Reggae", (130, 160), ("stdlib/ska",), (16, 56, 65)),
    Family("Folk", "Folk", (90, 130),
           ("stdlib/folk", "stdlib/folkrock", "stdlib/bluefolk", "stdlib/polka"),
           (40, 73, 21, 24)),
    Family("Ballad", "NewAge", (60, 84),
           ("stdlib/ballad", "stdlib/ballad128", "stdlib/pianoballad", "stdlib/guitarballad", "stdlib/popballad", "casio/ambient1", "casio/ambient2", "casio/ambient3",
            "casio/serenade", "casio/8beatballad1", "casio/16beatballad1", "casio/oldieballad"), (0, 73, 88, 48)),
    Family("Electronic", "Electronic", (120, 136),
           ("stdlib/trance", "casio/techno", "casio/trance1", "casio/trance2", "casio/house", "casio/dance1",
            "casio/dance2", "casio/rave", "casio/8beatdance", "casio/dancepop1", "casio/triphop",
            "alexis/teamtechno"), (80, 81, 87)),
    Family("RnB", "RnB", (80, 108),
           ("stdlib/rb", "stdlib/dsoul", "stdlib/bvfunk", "casio/soul", "casio/funk1", "casio/funk2",
            "casio/mellowrb", "casio/modernrb", "casio/discosoul", "casio/60ssoul"), (4, 65, 16)),
)}


def family_genre_id(family: str) -> int:
    """The genre id (``constants.GENRES``) a family's songs are labelled with."""
    return D.genre_id(FAMILIES[family].genre)


# ---------------------------------------------------------------------------------
# MMA's groove library
# ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Style:
    """The grooves one library file defines: its main grooves that have drums, and ``(name, bars)``
    of its intros, fills and endings."""
    library: str
    mains: tuple[str, ...]
    intros: tuple[tuple[str, int], ...]
    fills: tuple[tuple[str, int], ...]
    ends: tuple[tuple[str, int], ...]


def style_from_grooves(library: str, grooves: list[dict]) -> Style | None:
    """The :class:`Style` of a library file from its grooves as MMA plays them
    (``[{"groove", "size", "time", "drums"}]``, :func:`vidscore.training.mma.library_grooves`).
    Names with Intro / Fill / End in them are those variations, the others main grooves; only
    grooves of 4 beats a bar are kept, and only main grooves with drums.  None when no main is left."""
    found = {"main": [], "intro": [], "fill": [], "end": []}
    for g in grooves:
        name = g["groove"]
        kind = next((k for k in ("intro", "fill", "end") if k in name.lower()), "main")
        if g["time"] != 4:
            continue
        if kind != "main":
            found[kind].append((name, int(g["size"])))
        elif g["drums"]:
            found["main"].append(name)
    if not found["main"]:
        return None
    return Style(library, tuple(found["main"]), tuple(found["intro"]), tuple(found["fill"]), tuple(found["end"]))


# ---------------------------------------------------------------------------------
# a chord per bar
# ---------------------------------------------------------------------------------

#: (semitones above the tonic, quality) of the chords a melody may be harmonised with, in order of
#: preference (the first of equal scores wins); a minor key takes the harmonic minor's major V.
DIATONIC = {"major": ((0, "M"), (7, "M"), (5, "M"), (9, "m"), (2, "m"), (4, "m"), (7, "7")),
            "minor": ((0, "m"), (7, "M"), (5, "m"), (8, "M"), (3, "M"), (10, "M"), (7, "7"))}
PRIOR = (0.6, 0.4, 0.4, 0.1, 0.1, 0.0, -0.3)   # per DIATONIC position: tonic, V, IV first; V7 needs its 7th
NON_CHORD = 0.6      # weight lost per unit of a melody pitch class outside the chord
STAY = 0.5           # bonus for keeping the previous bar's chord


def bar_weights(notes: np.ndarray, n_bars: int) -> np.ndarray:
    """(n_bars, 12) duration-weighted pitch-class histogram per bar of quantised notes
    ``[onset, pitch, duration, ...]`` (16ths); an onset on beat 1 or 3 counts double."""
    w = np.zeros((n_bars, 12))
    for onset, pitch, dur in np.asarray(notes)[:, :3].tolist():
        bar = onset // D.TICKS_PER_BAR
        if 0 <= bar < n_bars:
            strong = 2.0 if onset % (D.TICKS_PER_BAR // 2) == 0 else 1.0
            w[bar, pitch % 12] += strong * max(1, min(dur, D.TICKS_PER_BAR - onset % D.TICKS_PER_BAR))
    return w


def harmonise(notes: np.ndarray, n_bars: int) -> list[int]:
    """One chord id (:mod:`vidscore.music.chords`) per bar of a melody.

    chorder (``chords.segment_chords``) recognises chords in harmony, but names each note of a
    lone melody as a major triad; a melody needs harmonising instead.  Each bar takes the
    diatonic chord of the melody's key (``representation.estimate_key``) that best covers its
    pitch classes (:func:`bar_weights`: chord tones count, others count against, plus a small
    preference for tonic, dominant and subdominant and for keeping the previous chord).  An empty
    bar keeps the previous chord; the last bar is the tonic.
    """
    key = estimate_key(notes) or 1
    tonic, mode = (key - 1) % 12, "minor" if key > 12 else "major"
    cands = [chords.chord_id((tonic + off) % 12, q) for off, q in DIATONIC[mode]]
    member = np.array([[pc in chords.chord_pitch_classes(c) for pc in range(12)] for c in cands], dtype=float)
    out: list[int] = []
    for w in bar_weights(notes, n_bars):
        if w.sum() == 0:
            out.append(out[-1] if out else cands[0])
            continue
        score = member @ w - NON_CHORD * ((1 - member) @ w) + np.array(PRIOR)
        if out:
            score += STAY * np.array([c == out[-1] for c in cands])
        out.append(cands[int(np.argmax(score))])
    if out:
        out[-1] = cands[0]
    return out


_MMA_QUALITY = {"M": "", "m": "m", "o": "dim", "+": "aug", "7": "7", "M7": "M7", "m7": "m7", "o7": "dim7",
                "/o7": "m7b5", "sus2": "sus2", "sus4": "sus4"}


def mma_chord(cid: int) -> str:
    """MMA's name of a chord id: ``C``, ``A#m``, ``G7``, ``Bdim``, ``Dm7b5``; ``z`` (a rest) for none."""
    rq = chords.chord_root_quality(cid)
    if rq is None:
        return "z"
    return D.PITCH_CLASSES[rq[0]] + _MMA_QUALITY[rq[1]]


# ---------------------------------------------------------------------------------
# which arrangements, and their charts
# ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SongPlan:
    family: str
    library: str
    groove: str                    # the main groove (the song id's last part)
    groove_b: str                  # the main groove of every other phrase (may equal groove)
    intro: tuple[str, int] | None  # (groove, bars)
    fill: str | None
    end: tuple[str, int] | None
    tempo: int
    lead: int                      # GM program of the melody
    seed: int                      # MMA's RndSeed


def _rng(*parts) -> random.Random:
    return random.Random(int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:16], 16))


def plan_song(melody_id: str, family: str, styles: list[Style]) -> SongPlan:
    """The arrangement of ``melody_id`` in ``family``: a library file, then its grooves, a tempo and
    a lead, all drawn from a generator seeded by the melody id and the family."""
    fam, rng = FAMILIES[family], _rng("mma", melody_id, family)
    style = styles[rng.randrange(len(styles))]
    groove = rng.choice(style.mains)
    others = [g for g in style.mains if g != groove]
    groove_b = rng.choice(others) if others else groove
    intros = [i for i in style.intros if i[1] <= 4] or list(style.intros)
    intro = rng.choice(intros) if intros else None
    fill = rng.choice(style.fills)[0] if style.fills else None
    end = rng.choice(style.ends) if style.ends else None
    return SongPlan(family, style.library, groove, groove_b, intro, fill, end, rng.randint(*fam.tempo),
                    rng.choice(fam.leads), rng.randrange(1, 2 ** 31))


def plan_songs(melody_id: str, styles: dict[str, list[Style]], per_melody: int) -> list[SongPlan]:
    """``per_melody`` arrangements of a melody in as many different families (of ``styles``),
    the families drawn by a generator seeded by the melody id."""
    names = sorted(styles)
    _rng("mma-families", melody_id).shuffle(names)
    return [plan_song(melody_id, f, styles[f]) for f in names[:per_melody]]


def song_id(melody_id: str, plan: SongPlan) -> str:
    return f"mma/{plan.family}/{melody_id}/{plan.groove}"


def phrase_bars(n_bars: int) -> int:
    """Phrase length: 4 bars for a tune of at most 16 bars, else 8."""
    return 4 if n_bars <= 16 else 8


def bar_grooves(plan: SongPlan, n_bars: int) -> list[str]:
    """The groove of each of a melody's bars: phrases alternate the main grooves, a phrase's last bar
    is the fill (when the style has one), the last bars are the ending (at most 2, at most the
    ending's length, and never the whole tune)."""
    n_end = min(plan.end[1], 2, n_bars - 1) if plan.end else 0
    p = phrase_bars(n_bars)
    out = []
    for b in range(n_bars):
        if b >= n_bars - n_end:
            out.append(plan.end[0])
        elif plan.fill and (b + 1) % p == 0:
            out.append(plan.fill)
        else:
            out.append(plan.groove if (b // p) % 2 == 0 else plan.groove_b)
    return out


def intro_bars(plan: SongPlan) -> int:
    """Bars of the intro before the melody starts (0 without one; its length, at most 4)."""
    return min(plan.intro[1], 4) if plan.intro else 0


def chart_text(sid: str, plan: SongPlan, bar_chords: list[int]) -> str:
    """The MMA chart of a song: header, the intro over the tune's last chords, then one line per bar
    of the melody with a ``Groove`` line wherever the groove changes."""
    lines = [f"// {sid}", f"RndSeed {plan.seed}", f"Tempo {plan.tempo}", f"Use {plan.library}"]
    names = [mma_chord(c) for c in bar_chords]
    n_intro = intro_bars(plan)
    if n_intro:
        lines.append(f"Groove {plan.intro[0]}")
        lines += [names[max(len(names) - n_intro, 0) + i % len(names)] for i in range(n_intro)]
    current = None
    for groove, name in zip(bar_grooves(plan, len(names)), names):
        if groove != current:
            lines.append(f"Groove {groove}")
            current = groove
        lines.append(name)
    return "\n".join(lines) + "\n"
