"""Controlled generation (SPEC section 5): the video's rhythm forced into the sampled music.

The model runs in its recurrent form (constant work per token) and the ``num_songs`` songs of
one video are generated together as one batch.  Each song walks the video's rows
``[bar-beat, density, strength, i_beat, n_beat, p_beat]``:

* Bar rows: when the model samples a Bar, its density is replaced by the video's with
  probability ``C``; the song gets exactly the video's number of bars.
* Visual-beat rows at position ``b`` (those with strength >= ``min_strength``; the weakest,
  strength 1, are dropped as in the original): when the model samples a beat at or after ``b``
  (or a Bar), a Beat token at ``b`` with the video's strength is forced, once for each forced
  track in turn (Drums, Piano, Guitar, restricted to the classes the model knows).

Beyond the published rules, the sampler keeps every song well formed: it never ends before its
video does (EOS is masked while video rows remain), never moves backwards inside a bar, follows
every Beat token with exactly as many notes as its strength says (as in the data: strength is
the number of notes of the simu-note), of distinct pitches and with the Beat's instrument,
keeps the last bar from closing empty (so the music lasts to the video's end), and closes a bar
by force if the model stalls in one.

With a bmt model (SPEC section 8) the rows carry three more fields: Bar tokens get the tempo
class of the music's real tempo (``Controls.tempo``: the video's, or the user's), so the model
composes for the tempo the MIDI will be played at; chords (Bar and Beat tokens) and velocities
(Note tokens) are sampled from their heads.  The emotion is a global control in the init rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

import dictionary_mix as D
from representation import p_beat, p_time
from sampling import sample

FORCED_TRACKS = (1, 2, 3)   # Drums, Piano, Guitar (instrument class ids)


@dataclass
class Controls:
    C: float = 0.7                      # probability of taking the video's bar density
    min_strength: int = 2               # visual beats with a weaker strength class are not forced
    forced_tracks: tuple[int, ...] = FORCED_TRACKS
    instruments: tuple[int, ...] | None = None   # classes the music may use (None: all the model knows)
    max_tokens_per_bar: int = 160       # a bar that runs longer is closed by force
    tempo: float | None = None          # bmt: the tempo (bpm) written on Bar tokens (None: sampled)


@dataclass
class Song:
    """Per-song control state and output."""
    rows: np.ndarray                    # kept video rows
    n_beat: int
    tracks: tuple[int, ...]
    j: int = 1                          # next video row to honour (row 0 starts the song)
    bar: int = 0
    barbeat: int = 0                    # 1-based position of the current simu-note, 0 at a bar start
    instr: int = 0                      # instrument of the current simu-note
    pending: list = field(default_factory=list)   # tracks still to force for the current visual beat
    in_bar: int = 0
    notes_in_bar: int = 0
    notes_left: int = 0                 # notes still owed to the current Beat (its strength)
    chord: set = field(default_factory=set)   # pitches already in the current simu-note
    done: bool = False
    tokens: list = field(default_factory=list)
    forced: list = field(default_factory=list)    # (bar, barbeat, strength, instr)

    @property
    def next_row(self):
        return self.rows[self.j] if self.j < len(self.rows) else None


def keep_rows(rows: np.ndarray, min_strength: int) -> np.ndarray:
    """Video rows the rules use: all Bar rows, and visual beats at least ``min_strength``."""
    rows = np.asarray(rows, dtype=np.int64)
    keep = (rows[:, 0] == D.BAR) | (rows[:, 2] >= min_strength)
    return rows[keep]


EOS = [0] * 9


def _row(barbeat=0, type_=0, density=0, pitch=0, duration=0, instr=0, strength=0, i_beat=0, n_beat=1,
         bmt=None):
    """A token row; ``bmt`` = (tempo, chord, velocity) makes it a 12-column bmt row (p_time in col 7)."""
    if bmt is None:
        return [barbeat, type_, density, pitch, duration, instr, strength, int(p_beat(i_beat, n_beat)), i_beat]
    return [barbeat, type_, density, pitch, duration, instr, strength, int(p_time(i_beat, n_beat)), i_beat, *bmt]


@torch.inference_mode()
def generate(model, video_rows: np.ndarray, init: np.ndarray, num_songs: int = 1, *,
             controls: Controls | None = None, seed: int = 0, progress=None) -> list[Song]:
    """Generate ``num_songs`` songs for one video; returns their :class:`Song` records.

    ``video_rows``: the inference npz rows; ``init``: the (7, 3) init tokens ((7, 4) for bmt).
    """
    controls = controls or Controls()
    rng = np.random.default_rng(seed)
    n_class = model.config.n_class
    bmt = model.config.preset == "bmt"
    eos = [0] * len(n_class) if bmt else EOS
    tempo_cls = D.tempo_bin(controls.tempo) if bmt and controls.tempo else None
    rows = keep_rows(video_rows, controls.min_strength)
    if len(rows) == 0 or rows[0, 0] != D.BAR:
        raise ValueError("video rows must start with a Bar row")
    n_beat = int(rows[0, 4])
    known = [c for c in range(1, n_class[D.COL_INSTRUMENT])]
    allowed_instr = [c for c in (controls.instruments or known) if c in known] or known
    tracks = tuple(t for t in controls.forced_tracks if t in allowed_instr) or (allowed_instr[0],)
    songs = [Song(rows=rows, n_beat=n_beat, tracks=tracks) for _ in range(num_songs)]

    device = next(model.parameters()).device
    init_t = torch.as_tensor(np.repeat(init[None], num_songs, 0), dtype=torch.long, device=device)
    state = model.start(init_t)
    # (the first token is input only: its chord is not known yet, so it says "no chord")
    first = _row(D.BAR, D.TYPE_M, int(rows[0, 1]), i_beat=0, n_beat=n_beat,
                 bmt=(tempo_cls or D.tempo_bin(120), 1, 0) if bmt else None)
    for s in songs:
        s.tokens.append(first)
    tok = torch.tensor([first] * num_songs, dtype=torch.long, device=device)
    h, state = model.step(tok, state)

    # masks that are the same for every token: value 0 ("none") is never sampled for a field
    def non_zero(col):
        m = np.ones((num_songs, n_class[col]), bool)
        m[:, 0] = False
        return m
    allow_dens, allow_dur, allow_str = non_zero(D.COL_DENSITY), non_zero(D.COL_DURATION), non_zero(D.COL_STRENGTH)
    if bmt:
        allow_tempo, allow_chord, allow_vel = non_zero(D.COL_TEMPO), non_zero(D.COL_CHORD), non_zero(D.COL_VELOCITY)
    allow_instr = np.zeros((num_songs, n_class[D.COL_INSTRUMENT]), bool)
    allow_instr[:, allowed_instr] = True
    n_bars = int((rows[:, 0] == D.BAR).sum())
    budget = n_bars * controls.max_tokens_per_bar + 16
    for _ in range(budget):
        if all(s.done for s in songs):
            break
        # ---- type, with the structural masks
        allow_type = np.ones((num_songs, n_class[D.COL_TYPE]), bool)
        for b, s in enumerate(songs):
            allow_type[b, D.TYPE_EOS] = s.next_row is None and not s.pending and s.notes_in_bar > 0
            if s.notes_left > 0:                     # a Beat of strength s is followed by s notes
                allow_type[b, :] = False
                allow_type[b, D.TYPE_NOTE] = True
            else:                                    # and by no more: the next token is metrical
                allow_type[b, D.TYPE_NOTE] = False
        types = sample(model.predict_type(h), "type", rng, allow_type)
        heads = model.predict_fields(h, torch.as_tensor(types, dtype=torch.long, device=device))
        # ---- the other fields, masked to what the type and the position permit
        allow_bb = np.zeros((num_songs, n_class[D.COL_BARBEAT]), bool)
        for b, s in enumerate(songs):
            allow_bb[b, max(s.barbeat, 1):D.BAR + 1] = True
            if s.in_bar >= controls.max_tokens_per_bar:
                allow_bb[b, :D.BAR] = False
            elif s.next_row is None and s.notes_in_bar == 0:
                allow_bb[b, D.BAR] = False           # the last bar has music, up to the video's end
        bb = sample(heads["barbeat"], "barbeat", rng, allow_bb)
        dens = sample(heads["density"], "density", rng, allow_dens)
        allow_pitch = non_zero(D.COL_PITCH)
        for b, s in enumerate(songs):
            allow_pitch[b, list(s.chord)] = False    # the notes of a simu-note have distinct pitches
        pitch = sample(heads["pitch"], "pitch", rng, allow_pitch)
        dur = sample(heads["duration"], "duration", rng, allow_dur)
        instr = sample(heads["instr"], "instr", rng, allow_instr)
        strength = sample(heads["strength"], "strength", rng, allow_str)
        if bmt:
            tempo = sample(heads["tempo"], "tempo", rng, allow_tempo) if tempo_cls is None \
                else np.full(num_songs, tempo_cls)
            chord = sample(heads["chord"], "chord", rng, allow_chord)
            vel = sample(heads["velocity"], "velocity", rng, allow_vel)

        next_tokens = []
        for b, s in enumerate(songs):
            if s.done:
                next_tokens.append(eos)
                continue
            t = int(types[b])
            if t == D.TYPE_EOS:
                s.done = True
                next_tokens.append(eos)
                continue
            if t == D.TYPE_NOTE:
                row = _row(s.barbeat, D.TYPE_NOTE, 0, int(pitch[b]), int(dur[b]), s.instr, 0,
                           16 * s.bar + s.barbeat - 1, n_beat, bmt=(0, 0, int(vel[b])) if bmt else None)
            else:
                extra = (int(tempo[b]), int(chord[b])) if bmt else None
                row = _metrical(s, int(bb[b]), int(dens[b]), int(instr[b]), int(strength[b]), rng, controls.C,
                                extra)
                if row is None:          # the video is over and the model closed the last bar
                    s.done = True
                    next_tokens.append(eos)
                    continue
            s.tokens.append(row)
            is_bar = row[D.COL_BARBEAT] == D.BAR
            s.in_bar = 0 if is_bar else s.in_bar + 1
            is_note = row[D.COL_TYPE] == D.TYPE_NOTE
            s.notes_in_bar = 0 if is_bar else s.notes_in_bar + is_note
            if is_note:
                s.notes_left -= 1
                s.chord.add(row[D.COL_PITCH])
            else:
                s.notes_left = row[D.COL_STRENGTH]
                s.chord = set()
            next_tokens.append(row)
        if progress is not None:
            progress.update(1)
        tok = torch.tensor(next_tokens, dtype=torch.long, device=device)
        h, state = model.step(tok, state)
    for s in songs:
        s.tokens.append(eos)
        s.done = True
    return songs


def _metrical(s: Song, bb: int, dens: int, instr: int, strength: int, rng, C: float, bmt=None):
    """Apply the video's rules to a sampled metrical token; returns the row to write.

    ``bmt`` = (tempo, chord) sampled for this token (bmt models): Bars keep both, Beats the chord."""
    nxt = s.next_row
    beat_extra = (0, bmt[1], 0) if bmt else None
    if s.pending or (nxt is not None and nxt[0] != D.BAR and (bb == D.BAR or bb >= nxt[0])):
        # force the visual beat, once per forced track
        if not s.pending:
            s.pending = list(s.tracks)
        b, vs = int(nxt[0]), int(nxt[2])
        track = s.pending.pop(0)
        if not s.pending:
            s.j += 1
        s.barbeat, s.instr = b, track
        s.forced.append((s.bar, b, vs, track))
        return _row(b, D.TYPE_M, dens, 0, 0, track, vs, 16 * s.bar + b - 1, s.n_beat, bmt=beat_extra)
    if bb == D.BAR:
        if nxt is None:
            return None
        s.j += 1
        s.bar += 1
        s.barbeat, s.instr = 0, 0
        if rng.random() < C:
            dens = int(nxt[1])
        return _row(D.BAR, D.TYPE_M, dens, i_beat=16 * s.bar, n_beat=s.n_beat,
                    bmt=(bmt[0], bmt[1], 0) if bmt else None)
    s.barbeat, s.instr = bb, instr
    return _row(bb, D.TYPE_M, dens, 0, 0, instr, strength, 16 * s.bar + bb - 1, s.n_beat, bmt=beat_extra)
