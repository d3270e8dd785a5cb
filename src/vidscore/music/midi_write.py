"""Token rows or notes -> a five-track MIDI file.

    from vidscore.music.midi_write import tokens_to_midi
    tokens_to_midi(tokens, "song.mid", tempo_bpm=115.38)

One track per instrument class present, named exactly Drums/Piano/Guitar/Bass/Strings,
with the General MIDI programs of ``constants.PROGRAMS`` (Drums on channel 10 with
``is_drum``), a tempo event at time 0, a 4/4 time signature and velocity 80 by default.
Note timing: onset = the row's i_beat (in 16ths), duration = duration-1 sixteenths (at
least 1); the file's resolution is ``ticks_per_beat`` (4 by default, so one MIDI tick is
one token tick).

bmt rows (12 columns) also carry each note's velocity, a tempo per bar and chords: the
notes keep their velocities, the chords become MIDI markers ("C_M", "A#_M7", ...) and, when no
tempo is given, the tokens' tempo changes become the MIDI's.
"""
from __future__ import annotations

import os

import numpy as np

from vidscore import cli
from vidscore import constants as D
from vidscore.music.representation import tokens_chords, tokens_tempos, tokens_to_notes

__all__ = ["tokens_to_midi", "notes_to_midi", "tokens_to_notes", "write_midi"]


def notes_to_midi(notes: np.ndarray, tempo_bpm: float, velocity: int = 80, programs: dict | None = None,
                  ticks_per_beat: int = D.TICKS_PER_BEAT, tempos=None, chords=None):
    """A ``miditoolkit.MidiFile`` for notes ``(n, 4)`` ``[onset_16th, pitch, duration_16ths, instrument]``.

    A fifth column, when present, is each note's velocity (else ``velocity`` for all).
    ``tempos``: ``[(tick_16th, bpm), ...]`` tempo changes replacing ``tempo_bpm``; ``chords``:
    ``[(tick_16th, chord id), ...]`` written as markers named by :func:`chords.chord_name`.
    """
    import miditoolkit
    from miditoolkit.midi.containers import Instrument, Marker, Note, TempoChange, TimeSignature

    for bpm in ([b for _, b in tempos] if tempos else [tempo_bpm]):
        if not (bpm and D.USER_TEMPO_MIN <= float(bpm) <= D.USER_TEMPO_MAX):   # NaN fails too
            raise ValueError(f"tempo must be {D.USER_TEMPO_MIN:g}..{D.USER_TEMPO_MAX:g} bpm, got {bpm}")
    if ticks_per_beat % D.TICKS_PER_BEAT:
        raise ValueError("ticks_per_beat must be a multiple of 4 (one 16th = a whole number of ticks)")
    progs = dict(D.PROGRAMS)
    if programs:
        unknown = set(programs) - set(D.INSTRUMENTS)
        if unknown:
            raise ValueError(f"unknown instrument names in programs: {sorted(unknown)}")
        progs.update({k: int(v) for k, v in programs.items()})
    scale = ticks_per_beat // D.TICKS_PER_BEAT
    notes = np.asarray(notes, dtype=np.int64)
    notes = notes.reshape(-1, notes.shape[-1] if notes.ndim == 2 and notes.shape[-1] >= 4 else 4)
    midi = miditoolkit.MidiFile(ticks_per_beat=ticks_per_beat)
    if tempos:
        midi.tempo_changes = [TempoChange(float(bpm), int(t) * scale) for t, bpm in tempos]
        midi.tempo_changes[0].time = 0
    else:
        midi.tempo_changes = [TempoChange(float(tempo_bpm), 0)]
    midi.time_signature_changes = [TimeSignature(4, 4, 0)]
    if chords:
        from vidscore.music.chords import chord_name
        midi.markers = [Marker(chord_name(int(c)), int(t) * scale) for t, c in chords]
    vel = int(np.clip(velocity, 1, 127))
    for k, name in enumerate(D.INSTRUMENTS, start=1):
        sel = notes[notes[:, 3] == k]
        if len(sel) == 0:
            continue
        inst = Instrument(program=progs[name], is_drum=(k == D.DRUMS), name=name)
        order = np.lexsort((sel[:, 1], sel[:, 0]))
        for onset, pitch, dur, *rest in sel[order]:
            start = int(onset) * scale
            v = int(np.clip(rest[1], 1, 127)) if len(rest) > 1 else vel
            inst.notes.append(Note(velocity=v, pitch=int(pitch), start=start, end=start + max(int(dur), 1) * scale))
        midi.instruments.append(inst)
    if midi.instruments:
        midi.max_tick = max(n.end for i in midi.instruments for n in i.notes) + 1
    return midi


def write_midi(midi, out_path: str | os.PathLike) -> None:
    """Dump a ``miditoolkit.MidiFile`` atomically (nothing half-written)."""
    with cli.atomic_path(out_path) as tmp:
        midi.dump(tmp)


def tokens_to_midi(tokens: np.ndarray, out_path: str | os.PathLike, tempo_bpm: float | None, velocity: int = 80,
                   programs: dict | None = None, ticks_per_beat: int = D.TICKS_PER_BEAT, timing: str = "i_beat"):
    """Write token rows (T, >= 9 columns; stops at the first EOS row) as a MIDI file; returns the MidiFile.

    ``programs`` overrides General MIDI programs by instrument name, e.g. ``{"Strings": 48}``.
    ``timing="structure"`` takes onsets from the Bar/Beat tokens instead of i_beat.
    bmt rows: notes keep their velocity, chords become markers, and with ``tempo_bpm`` None
    the tempo follows the tokens (120 if they hold none).  A given ``tempo_bpm`` always wins
    (a video's music must play at the video's tempo).
    """
    tokens = np.asarray(tokens)
    bmt = tokens.shape[1] > D.COL_VELOCITY
    notes = tokens_to_notes(tokens, timing=timing, velocity=bmt)
    tempos = tokens_tempos(tokens) if bmt and not tempo_bpm else None
    midi = notes_to_midi(notes, tempo_bpm or 120.0, velocity=velocity, programs=programs,
                         ticks_per_beat=ticks_per_beat, tempos=tempos,
                         chords=tokens_chords(tokens) if bmt else None)
    write_midi(midi, out_path)
    return midi
