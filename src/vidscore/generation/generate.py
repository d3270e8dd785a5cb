"""Controlled generation (SPEC section 5): the video's rhythm forced into the sampled music.

The model runs in its recurrent form (constant work per token) and the ``num_songs`` songs of
one video are generated together as one batch.  Each song walks the video's rows
``[bar-beat, density, strength, i_beat, n_beat, p_beat]`` under these rules, one function each:

* **Type masks** (:func:`type_mask`): a Beat of strength s is followed by exactly s notes and by
  no more (as in the data: strength is the number of notes of the simu-note); EOS only once the
  video is over (see *end of song*).
* **Bar and density** (:func:`barbeat_mask`, :func:`take_bar`): when the model samples a Bar, its
  density is replaced by the video's with probability ``C``; the song gets exactly the video's
  number of bars.  The Bar's density is a promise (distinct onset positions in the bar + 1) and
  the Beat tokens' density counts it down (SPEC section 2).  The model predicts every field from
  the token type alone, so a Bar's sampled density is often a Beat's count-down value and the
  model does not keep it; the original ignored the promise, which is why the realised density
  fell short of the video's.  In bars whose density is the video's (the first, and those that
  took it with probability C) the sampler keeps it (bars the model chose stay free): while onsets
  are owed the bar cannot close (Bar is masked) and no position is taken that leaves too little
  room for the rest; once the count-down reaches its end no new position is opened; each Beat's
  density is the count-down's value (:func:`beat_density`).  Positions of visual beats still to
  come in the bar are reserved out of the count.
* **Forced beats** (:func:`force_beat`): at a visual-beat row at position ``b`` (those with
  strength >= ``min_strength``), when the model samples a beat at or after ``b`` (or a Bar), a
  Beat token at ``b`` is forced once for each forced track in turn, with the video's strength
  clamped to what that track plays in the model's data (``Controls.strength_max``).
* **Notes owed to a Beat** (:func:`note_masks`): the notes of a simu-note have distinct pitches
  and the Beat's instrument.
* **End of song** (:func:`type_mask`, :func:`barbeat_mask`): the song never ends before its
  video does, never moves backwards inside a bar, keeps the last bar from closing empty (so the
  music lasts to the video's end), and a bar that stalls is closed by force.

* **Sections** (``Controls.sections``, :mod:`vidscore.generation.sections`): at each section
  start (the bar line nearest a scene cut) the song's instrument set and register change, the
  bar before ends in a drum roll and the first downbeat is an accent.

The forced tracks, their strength clamp and the video -> class thresholds come from the model's
calibration (``calibration.py``, SPEC section 5b); :class:`Controls`' defaults are the
original's (Drums, Piano, Guitar, no clamp).

Every song has its own random stream, derived from ``(seed, song index)``, so song k is the
same whatever ``num_songs`` is.

With a bmt model (SPEC section 8) the rows carry three more fields: Bar tokens get the tempo
class of the music's real tempo (``Controls.tempo``: the video's, or the user's), so the model
composes for the tempo the MIDI will be played at; chords (Bar and Beat tokens) and velocities
(Note tokens) are sampled from their heads.  The emotion is a global control in the init rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vidscore import constants as D
from vidscore.music.representation import p_beat, p_time
from vidscore.generation import sections
from vidscore.model.sampling import sample

FORCED_TRACKS = D.FORCED_TRACKS   # Drums, Piano, Guitar (instrument class ids): the original's


@dataclass
class Controls:
    C: float = D.DEFAULT_C              # probability of taking the video's bar density
    min_strength: int = D.DEFAULT_MIN_STRENGTH   # visual beats with a weaker strength class are not forced
    forced_tracks: tuple[int, ...] = FORCED_TRACKS
    instruments: tuple[int, ...] | None = None   # classes the music may use (None: all the model knows)
    max_tokens_per_bar: int = 160       # a bar that runs longer is closed by force
    tempo: float | None = None          # bmt: the tempo (bpm) written on Bar tokens (None: sampled)
    strength_max: dict | None = None    # track -> the largest strength forced on it (None: no clamp)
    count_down: bool = True             # keep the Bar's density promise (False: the original's sampler)
    sampling: dict | None = None        # field -> (temperature, top_p); None: sampling.SAMPLING (published)
    max_forced_tracks: int | None = None   # force each visual beat on at most this many tracks (None: all)
    sections: list | None = None        # the song's sections (sections.plan: scene cuts); None: one section


@dataclass
class Song:
    """Per-song control state and output."""
    rows: np.ndarray                    # kept video rows
    n_beat: int
    tracks: tuple[int, ...]
    rng: np.random.Generator | None = None   # this song's random stream
    j: int = 1                          # next video row to honour (row 0 starts the song)
    bar: int = 0
    barbeat: int = 0                    # 1-based position of the current simu-note, 0 at a bar start
    instr: int = 0                      # instrument of the current simu-note
    at_pos: set = field(default_factory=set)      # instruments that have a Beat at position at_pos_of
    at_pos_of: int = 0
    pending: list = field(default_factory=list)   # tracks still to force for the current visual beat
    in_bar: int = 0
    notes_in_bar: int = 0
    notes_left: int = 0                 # notes still owed to the current Beat (its strength)
    owed: int = 0                       # onset positions the Bar's density still promises
    keep_count: bool = True             # the bar's density is the video's: the count-down is kept
    chord: set = field(default_factory=set)   # pitches already in the current simu-note
    done: bool = False
    tokens: list = field(default_factory=list)
    forced: list = field(default_factory=list)    # (bar, barbeat, strength, instr)
    sec: object = None                  # its sections' state (sections.SongSections), None: one section

    @property
    def next_row(self):
        return self.rows[self.j] if self.j < len(self.rows) else None

    def beats_ahead(self) -> list[int]:
        """Positions of the visual beats still to force in the current bar (not yet started)."""
        out = []
        k = self.j + (1 if self.pending else 0)
        while k < len(self.rows) and self.rows[k][0] != D.BAR:
            if self.rows[k][0] != self.barbeat:
                out.append(int(self.rows[k][0]))
            k += 1
        return out


def keep_rows(rows: np.ndarray, min_strength: int) -> np.ndarray:
    """Video rows the rules use: all Bar rows, and visual beats at least ``min_strength``."""
    rows = np.asarray(rows, dtype=np.int64)
    keep = (rows[:, 0] == D.BAR) | (rows[:, 2] >= min_strength)
    return rows[keep]


def song_rng(seed: int, k: int) -> np.random.Generator:
    """Song k's random stream: depends on (seed, k) only, not on how many songs are made."""
    return np.random.default_rng([int(seed), int(k)])


def clamp_strength(strength: int, track: int, strength_max: dict | None) -> int:
    """The strength forced on ``track``: the video's, at least 1 and at most what the track plays."""
    s = max(1, int(strength))
    if strength_max:
        top = strength_max.get(track, strength_max.get(str(track)))
        if top is not None:
            s = min(s, max(1, int(top)))
    return s


EOS = [0] * 9


def _row(barbeat=0, type_=0, density=0, pitch=0, duration=0, instr=0, strength=0, i_beat=0, n_beat=1,
         bmt=None):
    """A token row; ``bmt`` = (tempo, chord, velocity) makes it a 12-column bmt row (p_time in col 7)."""
    if bmt is None:
        return [barbeat, type_, density, pitch, duration, instr, strength, int(p_beat(i_beat, n_beat)), i_beat]
    return [barbeat, type_, density, pitch, duration, instr, strength, int(p_time(i_beat, n_beat)), i_beat, *bmt]


# ----------------------------------------------------------------------------- the rules

def type_mask(s: Song, n_type: int, controls: Controls) -> np.ndarray:
    """Notes owed to a Beat, and the end of song: which token types ``s`` may take next (EOS
    only after the video's last row, with music in the last bar and, with the count-down, no
    onset owed)."""
    allow = np.ones(n_type, bool)
    allow[D.TYPE_EOS] = (s.next_row is None and not s.pending and s.notes_in_bar > 0
                         and (s.owed <= 0 or not _counting(s, controls) or s.barbeat >= last_position(s)))
    if s.notes_left > 0:                     # a Beat of strength s is followed by s notes
        allow[:] = False
        allow[D.TYPE_NOTE] = True
    else:                                    # and by no more: the next token is metrical
        allow[D.TYPE_NOTE] = False
    if not allow.any():                      # (EOS closed and no note owed: a metrical token)
        allow[D.TYPE_M] = True
    return allow


def last_position(s: Song) -> int:
    """End of song: the last bar-beat of the current bar inside the video (SPEC 5 stops when
    p_beat passes 101, i.e. at the video's end; onsets after it would be cut from the mp4)."""
    return max(0, min(D.TICKS_PER_BAR, s.n_beat - D.TICKS_PER_BAR * s.bar))


def barbeat_mask(s: Song, n_bb: int, controls: Controls, instruments=()) -> np.ndarray:
    """Bar and density, and the end of song: which bar-beat values a metrical token may take.

    Time never moves backwards in a bar.  With the count-down (SPEC section 2: a bar of density d
    has d - 1 onset positions; the Beat tokens' density counts down those left), a new position is
    opened only while the count is not used up, and only where room remains for the onsets still
    owed after it; the visual beats still to come in the bar keep their positions out of the
    count (sampling a position at or after the next one forces it).  Bar stays masked while onsets
    are owed.  Another simu-note at the current position needs an instrument (of
    ``instruments``) that has none there yet.  A stalled bar is closed by force; the last bar
    does not close empty.  No new position opens after the video's end (:func:`last_position`).
    """
    allow = np.zeros(n_bb, bool)
    p = s.barbeat
    end = last_position(s)
    if p >= 1 and (not len(instruments) or set(instruments) - s.at_pos):
        allow[p] = True                      # another simu-note at the same position
    if not _counting(s, controls):
        allow[p + 1:end + 1] = True
        allow[D.BAR] = True
    else:
        ahead = s.beats_ahead()
        free = s.owed - len(ahead)           # onsets the model may place itself
        if free > 0:
            last = min(end, D.TICKS_PER_BAR - (s.owed - 1))   # room for the onsets owed after this one
            if ahead:
                last = min(last, ahead[0] - 1)
            allow[p + 1:last + 1] = True
        free_room = allow[p + 1:D.BAR].any()
        if ahead and (D.TICKS_PER_BAR - ahead[0] >= s.owed - 1 or not free_room):
            allow[ahead[0]:D.BAR + 1] = True     # these force the next visual beat (a Bar too),
        elif not ahead and (s.owed <= 0 or not free_room):   # once the onsets owed before it are placed
            allow[D.BAR] = True
        if s.pending:
            allow[D.BAR] = True
    if s.in_bar >= controls.max_tokens_per_bar:
        allow[:D.BAR] = False
        allow[D.BAR] = True
    elif s.next_row is None and s.notes_in_bar == 0:
        allow[D.BAR] = False                 # the last bar has music, up to the video's end
        if not allow.any():
            allow[max(p, 1):max(end, p, 1) + 1] = True
    if not allow.any():
        allow[max(p, 1):D.BAR + 1] = True
    return allow


def instrument_mask(s: Song, bb: int, allowed: np.ndarray) -> np.ndarray:
    """A Beat at the current position takes an instrument that has none there yet."""
    if bb != s.barbeat or not s.at_pos:
        return allowed
    out = allowed.copy()
    out[list(s.at_pos)] = False
    return out if out.any() else allowed


def note_masks(s: Song, n_pitch: int) -> np.ndarray:
    """Notes owed to a Beat: the notes of a simu-note have distinct pitches (pitch 0 is "none")."""
    allow = np.ones(n_pitch, bool)
    allow[0] = False
    allow[list(s.chord)] = False
    window = s.sec.pitch_window(s.instr) if s.sec is not None else None
    if window is not None:                   # sections: the register of this section
        inside = allow.copy()
        inside[:window[0]] = False
        inside[window[1] + 1:] = False
        if inside.any():
            return inside
    return allow


def _counting(s: Song, controls: Controls) -> bool:
    """Whether the count-down rule holds in the current bar: with ``count_down`` on, in bars
    whose density is the video's (the first bar, and a Bar that took it with probability C; a
    bar whose density the model sampled itself stays free, as uncontrolled music)."""
    return controls.count_down and s.keep_count


def beat_density(s: Song, position: int) -> int:
    """Count the Bar's promise down for a Beat at ``position``; returns the Beat's density value
    (onset positions still to come in the bar + 1)."""
    if position != s.barbeat or s.barbeat == 0:
        s.owed -= 1
    return max(s.owed, 0) + 1


def force_beat(s: Song, dens: int, controls: Controls, bmt=None):
    """Forced beats: the Beat token at the next visual beat, for the next forced track."""
    nxt = s.next_row
    if not s.pending:
        s.pending = s.sec.tracks_for(int(nxt[3]), s.tracks) if s.sec is not None else list(s.tracks)
    b = int(nxt[0])
    track = s.pending.pop(0)
    strength = clamp_strength(int(nxt[2]), track, controls.strength_max)
    if not s.pending:
        s.j += 1
    if _counting(s, controls):
        dens = beat_density(s, b)
    s.barbeat, s.instr = b, track
    s.forced.append((s.bar, b, strength, track))
    return _row(b, D.TYPE_M, dens, 0, 0, track, strength, 16 * s.bar + b - 1, s.n_beat, bmt=bmt)


def take_bar(s: Song, dens: int, C: float, bmt=None):
    """Bar and density: the video's next bar, with the video's density with probability ``C``."""
    nxt = s.next_row
    if nxt is None:
        return None
    s.j += 1
    s.bar += 1
    s.barbeat, s.instr = 0, 0
    if s.sec is not None:
        s.sec.enter_bar(s.bar)
    s.keep_count = bool(s.rng.random() < C)
    if s.keep_count:
        dens = int(nxt[1])
    s.owed = dens - 1
    return _row(D.BAR, D.TYPE_M, dens, i_beat=16 * s.bar, n_beat=s.n_beat, bmt=bmt)


def metrical(s: Song, bb: int, dens: int, instr: int, strength: int, controls: Controls, bmt=None):
    """Apply the video's rules to a sampled metrical token; returns the row to write (None: the
    video is over and the model closed the last bar).

    ``bmt`` = (tempo, chord) sampled for this token (bmt models): Bars keep both, Beats the chord."""
    nxt = s.next_row
    beat_extra = (0, bmt[1], 0) if bmt else None
    if s.pending or (nxt is not None and nxt[0] != D.BAR and (bb == D.BAR or bb >= nxt[0])):
        return force_beat(s, dens, controls, beat_extra)
    if bb == D.BAR:
        return take_bar(s, dens, controls.C, (bmt[0], bmt[1], 0) if bmt else None)
    if _counting(s, controls):
        dens = beat_density(s, bb)
    s.barbeat, s.instr = bb, instr
    return _row(bb, D.TYPE_M, dens, 0, 0, instr, strength, 16 * s.bar + bb - 1, s.n_beat, bmt=beat_extra)


def _section_instruments(s: Song, allowed: np.ndarray) -> np.ndarray:
    """Sections: the instruments of the song's current section (of those ``allowed``)."""
    if s.sec is None:
        return allowed
    out = np.zeros_like(allowed)
    out[list(s.sec.instruments)] = True
    out &= allowed
    return out if out.any() else allowed


def _record(s: Song, row) -> None:
    """Update a song's state with the row just written."""
    s.tokens.append(row)
    is_bar = row[D.COL_BARBEAT] == D.BAR
    if is_bar:
        s.at_pos, s.at_pos_of = set(), 0
    elif row[D.COL_TYPE] == D.TYPE_M:
        if row[D.COL_BARBEAT] != s.at_pos_of:
            s.at_pos, s.at_pos_of = set(), int(row[D.COL_BARBEAT])
        s.at_pos.add(int(row[D.COL_INSTRUMENT]))
    s.in_bar = 0 if is_bar else s.in_bar + 1
    is_note = row[D.COL_TYPE] == D.TYPE_NOTE
    s.notes_in_bar = 0 if is_bar else s.notes_in_bar + is_note
    if is_note:
        s.notes_left -= 1
        s.chord.add(row[D.COL_PITCH])
        if s.sec is not None:
            s.sec.note(s.instr, int(row[D.COL_PITCH]))
    else:
        s.notes_left = row[D.COL_STRENGTH]
        s.chord = set()


# ----------------------------------------------------------------------------- the loop

@dataclass
class _Run:
    """What the steps of one :func:`generate` call share."""
    model: object
    controls: Controls
    songs: list
    n_class: list
    bmt: bool
    eos: list
    tempo_cls: int | None
    allowed_instr: list
    n_beat: int
    n_bars: int
    device: object
    masks: dict = field(default_factory=dict)     # the masks that are the same for every token

    def draw(self, logits, name, allowed):   # one field for every song, with the run's sampling settings
        return sample(logits, name, [s.rng for s in self.songs], allowed, self.controls.sampling)


def _start(model, video_rows, init, num_songs: int, controls: Controls, seed: int):
    """The run, the first hidden state and the model's state: the songs set up, the first Bar given."""
    n_class = model.config.n_class
    bmt = model.config.preset == "bmt"
    tempo_cls = D.tempo_bin(controls.tempo) if bmt and controls.tempo else None
    rows = keep_rows(video_rows, controls.min_strength)
    if len(rows) == 0 or rows[0, 0] != D.BAR:
        raise ValueError("video rows must start with a Bar row")
    fill_ticks: set = set()
    if controls.sections and len(controls.sections) > 1:     # the rolls before the cuts, the accents on them
        rows, fill_ticks = sections.add_fills(rows, controls.sections)
    n_beat = int(rows[0, 4])
    known = [c for c in range(1, n_class[D.COL_INSTRUMENT])]
    allowed_instr = [c for c in (controls.instruments or known) if c in known] or known
    tracks = tuple(t for t in controls.forced_tracks if t in allowed_instr)[:controls.max_forced_tracks] \
        or (allowed_instr[0],)
    songs = [Song(rows=rows, n_beat=n_beat, tracks=tracks, rng=song_rng(seed, k),
                  sec=sections.song_state(controls.sections or [], fill_ticks, seed, k, allowed_instr, tracks))
             for k in range(num_songs)]
    device = next(model.parameters()).device
    run = _Run(model, controls, songs, n_class, bmt, [0] * len(n_class) if bmt else EOS, tempo_cls,
               allowed_instr, n_beat, int((rows[:, 0] == D.BAR).sum()), device)

    init_t = torch.as_tensor(np.repeat(init[None], num_songs, 0), dtype=torch.long, device=device)
    state = model.start(init_t)
    # (the first token is input only: its chord is not known yet, so it says "no chord")
    first = _row(D.BAR, D.TYPE_M, int(rows[0, 1]), i_beat=0, n_beat=n_beat,
                 bmt=(tempo_cls or D.tempo_bin(120), 1, 0) if bmt else None)
    for s in songs:
        s.tokens.append(first)
        s.owed = int(rows[0, 1]) - 1
    h, state = model.step(torch.tensor([first] * num_songs, dtype=torch.long, device=device), state)

    def non_zero(col):             # value 0 ("none") is never sampled for a field
        m = np.ones((num_songs, n_class[col]), bool)
        m[:, 0] = False
        return m
    for name, col in (("density", D.COL_DENSITY), ("duration", D.COL_DURATION), ("strength", D.COL_STRENGTH)) + \
            ((("tempo", D.COL_TEMPO), ("chord", D.COL_CHORD), ("velocity", D.COL_VELOCITY)) if bmt else ()):
        run.masks[name] = non_zero(col)
    allow_instr = np.zeros((num_songs, n_class[D.COL_INSTRUMENT]), bool)
    allow_instr[:, allowed_instr] = True
    run.masks["instr"] = allow_instr
    return run, h, state


def _draw_fields(run: _Run, h, types) -> dict:
    """This step's fields for every song.  Every field is drawn for every song, in a fixed order,
    so that each song's stream (and so the song) does not depend on the others; the fields of a
    type no song takes this step (a Note's bar-beat, density, instrument and strength; a metrical
    token's pitch, duration and velocity) are not computed, only their draws taken: the same
    songs, faster."""
    songs, n_class, controls, masks = run.songs, run.n_class, run.controls, run.masks
    heads = run.model.predict_fields(h, torch.as_tensor(types, dtype=torch.long, device=run.device))
    live = np.array([not s.done for s in songs])
    notes = bool((live & (types == D.TYPE_NOTE)).any())
    metric = bool((live & (types != D.TYPE_NOTE) & (types != D.TYPE_EOS)).any())
    f = {}

    def field(needed, name, allowed):
        """Field ``name`` (``allowed``: the mask, or a function making it); where no song uses it,
        only the draws (each stream moves on)."""
        if not needed:
            for s in songs:
                s.rng.random()
            return None
        return run.draw(heads[name], name, allowed() if callable(allowed) else allowed)

    f["barbeat"] = field(metric, "barbeat", lambda: np.stack(
        [barbeat_mask(s, n_class[D.COL_BARBEAT], controls, s.sec.instruments if s.sec else run.allowed_instr)
         for s in songs]))
    f["density"] = field(metric, "density", masks["density"])
    f["pitch"] = field(notes, "pitch", lambda: np.stack([note_masks(s, n_class[D.COL_PITCH]) for s in songs]))
    f["duration"] = field(notes, "duration", masks["duration"])
    f["instr"] = field(metric, "instr", lambda: np.stack(
        [instrument_mask(s, int(f["barbeat"][b]), _section_instruments(s, masks["instr"][b]))
         for b, s in enumerate(songs)]))
    f["strength"] = field(metric, "strength", masks["strength"])
    if run.bmt:
        f["tempo"] = field(metric, "tempo", masks["tempo"]) if run.tempo_cls is None \
            else np.full(len(songs), run.tempo_cls)
        f["chord"] = field(metric, "chord", masks["chord"])
        f["velocity"] = field(notes, "velocity", masks["velocity"])
    return f


def _next_rows(run: _Run, types, f: dict) -> list:
    """Each song's next token row from its drawn fields and the control rules (EOS when it is done)."""
    out = []
    for b, s in enumerate(run.songs):
        t = int(types[b])
        if s.done or t == D.TYPE_EOS:
            s.done = True
            out.append(run.eos)
            continue
        if t == D.TYPE_NOTE:      # bar-beat, density and strength 0, as in the data (SPEC 2)
            row = _row(0, D.TYPE_NOTE, 0, int(f["pitch"][b]), int(f["duration"][b]), s.instr, 0,
                       16 * s.bar + s.barbeat - 1, run.n_beat, bmt=(0, 0, int(f["velocity"][b])) if run.bmt else None)
        else:
            extra = (int(f["tempo"][b]), int(f["chord"][b])) if run.bmt else None
            row = metrical(s, int(f["barbeat"][b]), int(f["density"][b]), int(f["instr"][b]), int(f["strength"][b]),
                           run.controls, extra)
            if row is None:          # the video is over and the model closed the last bar
                s.done = True
                out.append(run.eos)
                continue
        _record(s, row)
        out.append(row)
    return out


@torch.inference_mode()
def generate(model, video_rows: np.ndarray, init: np.ndarray, num_songs: int = 1, *,
             controls: Controls | None = None, seed: int = 0, progress=None, on_step=None) -> list[Song]:
    """Generate ``num_songs`` songs for one video; returns their :class:`Song` records.

    ``video_rows``: the inference npz rows; ``init``: the (7, 3) init tokens ((7, 4) for bmt).
    ``progress``: a tqdm-like bar, advanced by one per step; ``on_step(fraction, tokens)``:
    called after every step with the share of the video's bars composed (finished songs count
    whole) and the tokens written so far, over all songs.
    """
    controls = controls or Controls()
    run, h, state = _start(model, video_rows, init, num_songs, controls, seed)
    songs = run.songs
    budget = run.n_bars * controls.max_tokens_per_bar + 16
    for _ in range(budget):
        if all(s.done for s in songs):
            break
        allow_type = np.stack([type_mask(s, run.n_class[D.COL_TYPE], controls) for s in songs])
        types = run.draw(model.predict_type(h), "type", allow_type)
        next_tokens = _next_rows(run, types, _draw_fields(run, h, types))
        if progress is not None:
            progress.update(1)
        if on_step is not None:
            on_step(sum(1.0 if s.done else min(s.bar / run.n_bars, 1.0) for s in songs) / num_songs,
                    sum(len(s.tokens) for s in songs))
        h, state = model.step(torch.tensor(next_tokens, dtype=torch.long, device=run.device), state)
    for s in songs:
        s.tokens.append(run.eos)
        s.done = True
    return songs
