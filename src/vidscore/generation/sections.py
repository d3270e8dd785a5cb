"""Sections: the video's scene cuts become the song's sections (issue 28), by control, not by
conditioning (the checkpoints were not trained with section labels).

A new section starts at the bar line nearest each cut (:func:`plan`; a cut that would start a
section less than :data:`MIN_BARS` bars after the last is dropped).  Generation (the rules in
:mod:`vidscore.generation.generate`) then makes the music turn there:

* **instrument set**: the forced tracks play throughout (they carry the visual beats); each new
  section draws a set of the other instruments the model knows that differs from the last
  section's by at least two (or all there are), and the model may start notes on those only;
* **register**: the pitched tracks other than bass move up or down (alternating, from a
  random first direction): their pitches are kept at least :data:`SHIFT` semitones above (or
  below) the last section's mean pitch of those tracks;
* **fill**: the bar before the cut gets a drum roll on its last beat (16ths 13..16, drums only,
  its density raised to make room: :data:`RAISE_DENSITY`), and the new section's first downbeat is an accent on the
  forced tracks;
* within a section nothing changes: the model keeps its groove.

Everything a song draws for its sections comes from its own stream, derived from
``(seed, song index, "sections")``, so the songs' main streams are those of unsectioned songs
until the first section start.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vidscore import constants as D
from vidscore.video.metadata import bar_line

#: a section lasts at least this many bars (a cut closer to the last section start is dropped)
MIN_BARS = 2
#: the register moves at least this many semitones past the last section's mean pitch
SHIFT = 8
#: the drum roll before a cut: these bar-beats (1-based 16ths) of the bar before, strength 2
FILL_POSITIONS = (13, 14, 15, 16)
FILL_STRENGTH = 2
ACCENT_STRENGTH = 2
#: whether the bar before a cut promises the roll's positions on top of the video's density
#: (measured in docs/scenes_and_mood.md: the turn grows from 1.44 to 1.63 x, the density error
#: from 0.084 to 0.106)
RAISE_DENSITY = True
#: the largest density value of a Bar row (class + 1)
MAX_DENSITY = 17
#: tracks the register rule moves (pitched, not bass); drums' pitches are sounds, bass stays low
REGISTER_TRACKS = (D.PIANO, D.GUITAR, D.STRINGS)


@dataclass(frozen=True)
class Section:
    start_bar: int
    start_s: float
    cut_s: float | None          # the cut that opened it (None: the song's start)


def plan(cuts_s, tempo: float, n_bars: int) -> list[Section]:
    """The sections of a song of ``n_bars`` bars at ``tempo`` bpm for scene cuts at ``cuts_s``
    seconds: section 0 at bar 0, then one at the bar line nearest each cut (bar b starts at
    b * 240 / tempo s), at least :data:`MIN_BARS` bars after the last and before the end."""
    bar_s = 240.0 / float(tempo)
    out = [Section(0, 0.0, None)]
    for c in sorted(float(x) for x in cuts_s):
        b = bar_line(c, tempo)
        if b - out[-1].start_bar >= MIN_BARS and b <= n_bars - 1:
            out.append(Section(b, round(b * bar_s, 3), round(c, 3)))
    return out


def section_of(sections: list[Section], bar: int) -> int:
    """Index of the section bar ``bar`` lies in."""
    k = 0
    for i, s in enumerate(sections):
        if s.start_bar <= bar:
            k = i
    return k


def add_fills(rows: np.ndarray, sections: list[Section]) -> tuple[np.ndarray, set]:
    """The video rows with the drum roll before each section start and the accent on its first
    downbeat added as beat rows (positions that already hold a visual beat are kept as they
    are); the bar before each start has its density raised by the roll's positions added.
    Returns (rows, the i_beat ticks of the roll's rows, forced on drums only)."""
    from vidscore.music.representation import p_beat
    rows = np.asarray(rows, np.int64)
    starts = {s.start_bar for s in sections[1:]}
    n_beat = int(rows[0, 4])
    bars: list[list] = []
    for r in rows:
        if r[0] == D.BAR:
            bars.append([r.copy()])
        else:
            bars[-1].append(r.copy())
    fill_ticks: set = set()
    for b, group in enumerate(bars):
        have = {int(r[0]) for r in group[1:]}
        add = [(p, FILL_STRENGTH, True) for p in FILL_POSITIONS if b + 1 in starts and p not in have]
        if b in starts and 1 not in have:
            add.append((1, ACCENT_STRENGTH, False))
        added_roll = 0
        for pos, strength, roll in add:
            tick = b * D.TICKS_PER_BAR + pos - 1
            if tick >= n_beat:
                continue
            group.append(np.array([pos, 0, strength, tick, n_beat, int(p_beat(tick, n_beat, rounding="round"))],
                                  np.int64))
            if roll:
                fill_ticks.add(tick)
                added_roll += 1
        if RAISE_DENSITY:
            group[0][1] = min(MAX_DENSITY, int(group[0][1]) + added_roll)
        group[1:] = sorted(group[1:], key=lambda r: int(r[0]))
    return np.vstack([r for g in bars for r in g]), fill_ticks


@dataclass
class SongSections:
    """One song's section state (the rules in generate read and update it)."""

    sections: list
    forced: tuple                # the forced tracks (play in every section)
    optional: tuple              # the other instruments the model may use
    fill_ticks: set
    rng: np.random.Generator
    index: int = 0
    instruments: tuple = ()      # the current section's instruments
    floor: int = 0               # register window of REGISTER_TRACKS: floor <= pitch token <= ceil
    ceil: int = 127
    up: bool = True              # the next register move
    pitch_sum: float = 0.0       # this section's REGISTER_TRACKS pitch tokens so far
    pitch_n: int = 0
    log: list = field(default_factory=list)   # per section: instruments, register window

    def __post_init__(self):
        self.instruments = tuple(sorted(self.forced + self.optional))
        self.up = bool(self.rng.random() < 0.5)
        self.log.append({"instruments": list(self.instruments), "register": None})

    def enter_bar(self, bar: int) -> None:
        """Called at each new bar: when it starts a section, draw its instruments and register."""
        k = section_of(self.sections, bar)
        if k == self.index:
            return
        self.index = k
        self.instruments = tuple(sorted(self.forced + self._draw_optional()))
        if self.pitch_n:
            mean = self.pitch_sum / self.pitch_n
            if self.up:
                self.floor, self.ceil = int(np.ceil(mean + SHIFT)), 127
            else:
                self.floor, self.ceil = 0, int(np.floor(mean - SHIFT))
            self.up = not self.up
        self.pitch_sum, self.pitch_n = 0.0, 0
        window = (self.floor, self.ceil) != (0, 127)     # (tokens: MIDI pitch + 1; the log says MIDI pitches)
        self.log.append({"instruments": list(self.instruments),
                         "register": [max(0, self.floor - 1), self.ceil - 1] if window else None})

    def _draw_optional(self) -> tuple:
        opt = list(self.optional)
        if not opt:
            return ()
        last = set(self.instruments) - set(self.forced)
        subsets = [tuple(x for i, x in enumerate(opt) if m >> i & 1) for m in range(1, 1 << len(opt))]
        need = min(2, len(opt))
        good = [c for c in subsets if len(last.symmetric_difference(c)) >= need] or subsets
        return good[int(self.rng.integers(len(good)))]

    def note(self, instr: int, pitch: int) -> None:
        if instr in REGISTER_TRACKS:
            self.pitch_sum += pitch
            self.pitch_n += 1

    def pitch_window(self, instr: int) -> tuple[int, int] | None:
        """(lowest, highest) pitch token a note of ``instr`` may take now; None: any."""
        if instr not in REGISTER_TRACKS or (self.floor, self.ceil) == (0, 127):
            return None
        return self.floor, self.ceil

    def tracks_for(self, tick: int, tracks: tuple) -> list:
        """The tracks a forced beat at ``tick`` goes on: drums only for the roll before a cut."""
        if tick in self.fill_ticks and D.DRUMS in self.instruments:
            return [D.DRUMS]
        return list(tracks)


def song_state(sections: list[Section], fill_ticks: set, seed: int, k: int, allowed: list, forced: tuple):
    """Song k's :class:`SongSections`, or None for a song of one section."""
    if len(sections) < 2:
        return None
    rng = np.random.default_rng([int(seed), int(k), 0x5EC7])
    return SongSections(sections, tuple(forced), tuple(c for c in allowed if c not in forced), fill_ticks, rng)


def report(sections: list[Section], state: SongSections | None) -> list[dict]:
    """The song's JSON ``"sections"``: start bar, start second, the cut that opened it, and what
    the song drew for it (instruments, register window)."""
    out = []
    for i, s in enumerate(sections):
        row = {"start_bar": s.start_bar, "start_s": s.start_s, "cut_s": s.cut_s}
        if state is not None and i < len(state.log):
            row.update(state.log[i])
        out.append(row)
    return out


@dataclass(frozen=True)
class SongCuts:
    """A song's scene cuts: where they came from, the times, and the sections they give."""

    source: str                  # "off", "user", "detected" or "none known"
    cuts_s: tuple = ()
    sections: list | None = None  # None: one section


def for_song(meta: dict | None, given, tempo: float, duration: float, rows) -> SongCuts:
    """The song's cuts and sections from the user's ``given`` cuts (Options.scene_cuts: None =
    the video's detected ones, () = off) or the metadata's ``"scene_cuts"``."""
    from vidscore.video.metadata import check_scene_cuts
    if given is not None and not given:
        return SongCuts("off")
    if given is not None:
        cuts, source = check_scene_cuts(list(given), duration, "--scene_cuts"), "user"
    elif meta and meta.get("scene_cuts") is not None:
        cuts, source = list(meta["scene_cuts"]), "detected"
    else:
        return SongCuts("none known")
    n_bars = int((np.asarray(rows)[:, 0] == D.BAR).sum())
    found = plan(cuts, tempo, n_bars)
    return SongCuts(source, tuple(cuts), found if len(found) > 1 else None)


def song_report(song_cuts: SongCuts, state, tokens, tempo: float, n_bars: int) -> dict:
    """The song's JSON entries for its sections: ``"scene_cuts"`` (s) and where they came from,
    ``"sections"`` (:func:`report`), and ``"cut_alignment"``: the music's change across the bar
    lines nearest the cuts against the other bar lines
    (:func:`vidscore.evaluation.metrics.cut_alignment`)."""
    out = {"scene_cuts": list(song_cuts.cuts_s), "scene_cuts_source": song_cuts.source,
           "sections": report(song_cuts.sections or [Section(0, 0.0, None)], state)}
    if song_cuts.cuts_s:
        from vidscore.evaluation import metrics
        ca = metrics.cut_alignment(metrics.notes_from_tokens(tokens),
                                   [bar_line(c, tempo) for c in song_cuts.cuts_s], n_bars)
        out["cut_alignment"] = {k: (round(v, 4) if isinstance(v, float) and np.isfinite(v) else
                                    (v if not isinstance(v, float) else None)) for k, v in ca.items()}
    return out
