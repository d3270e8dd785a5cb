"""MIDI <-> CMT compound words (SPEC section 2).

The tokeniser works in three steps:

1. :func:`extract_notes` reads a MIDI file (path or ``miditoolkit.MidiFile``), maps every
   track to one of the five instrument classes (:func:`instrument_class`), drops tracks
   with <= 20 notes and quantises notes to the 16th-note grid.  The result is a
   ``(n, 4)`` int array of ``[onset_tick, pitch, duration_ticks, instrument_class]``.
2. :func:`notes_to_tokens` turns such a note array into token rows (Bar, Beat and Note
   tokens, then one all-zero EOS row).
3. :func:`midi_to_tokens` / :func:`midi_to_windows` glue the two together and add
   per-song information (bars, instruments present, estimated key).

``preset="bmt"`` (SPEC section 8) adds per-token tempo (on Bar tokens: the MIDI's tempo at
the bar's start), chord (on Bar and Beat tokens: the chord of the half bar they fall in,
:mod:`chords`) and velocity (on Note tokens), and writes p_time instead of p_beat in column 7;
the first nine columns mean the same in both presets.

:func:`tokens_to_notes` is the inverse of step 2 (used by ``numpy2midi_mix`` and by
evaluation); :func:`tokens_tempos` and :func:`tokens_chords` read back bmt's tempo and chords.  Files that cannot be tokenised raise :class:`BadMidiError` whose message
is a one-line reason, so folder tools can skip them and report why.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from vidscore import constants as D


class BadMidiError(ValueError):
    """A file that cannot be tokenised; ``str(e)`` is a one-line reason."""


# ---------------------------------------------------------------------------------
# reading MIDI and mapping instruments
# ---------------------------------------------------------------------------------

def program_class(program: int) -> int:
    """Instrument class of a General MIDI program (0..127) on a melodic channel, by its family
    (:data:`dictionary_mix.GM_FAMILY_CLASS`, the LPD-5 merge); 0 for the families left out."""
    return D.GM_FAMILY_CLASS[int(program) // 8 % 16]


def instrument_class(name: str | None, program: int, is_drum: bool) -> int:
    """Instrument class id (1..5, 0 = left out) of a MIDI track.

    A track named exactly (case-insensitively) Drums/Piano/Guitar/Bass/Strings gets that class
    (LPD-5 files name their tracks so).  Otherwise drum-channel tracks are Drums and the General
    MIDI program decides (:func:`program_class`): pianos -> Piano, guitars -> Guitar, basses ->
    Bass, the other melodic families (organ included) -> Strings, effects and percussive -> 0.
    Tokenisation and evaluation both call this, so a track is the same class in both.
    """
    if name:
        key = name.strip().lower()
        for i, inst in enumerate(D.INSTRUMENTS):
            if key == inst.lower():
                return i + 1
    if is_drum:
        return D.DRUMS
    return program_class(program)


def load_midi(src):
    """A ``miditoolkit.MidiFile`` from a path (or the object itself); BadMidiError if unreadable."""
    import miditoolkit

    if isinstance(src, miditoolkit.MidiFile):
        return src
    path = Path(src)
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            _check_head(head)               # before reading a large file that is not MIDI at all
            data = head + f.read()
    except OSError as e:
        raise BadMidiError(f"cannot open: {e.strerror or e}") from None
    return midi_from_bytes(data)


def _check_head(head: bytes) -> None:
    if not head:
        raise BadMidiError("empty file (0 bytes)")
    if head[:4] != b"MThd" and not (head[:4] == b"RIFF" and head[8:12] == b"RMID"):
        raise BadMidiError("not a MIDI file (no MThd header)")


def midi_from_bytes(data: bytes):
    """A ``miditoolkit.MidiFile`` from a MIDI file's bytes (or a Windows RIFF .rmi around one);
    BadMidiError with a one-line reason if they are not a readable MIDI file."""
    import miditoolkit

    _check_head(data[:12])
    if data[:4] == b"RIFF":                 # .rmi: the MIDI file is the RIFF's data chunk
        at = data.find(b"MThd", 12)
        if at < 0:
            raise BadMidiError("a RIFF MIDI (.rmi) file without a MIDI file inside")
        data = data[at:]
    try:
        return miditoolkit.MidiFile(file=io.BytesIO(data))
    except Exception as e:  # mido/miditoolkit raise many types for corrupt data
        msg = " ".join(str(e).split())[:120]
        raise BadMidiError(f"corrupt MIDI ({type(e).__name__}: {msg})") from None


def check_meter(midi, until_tick: int | None = None) -> None:
    """Raise BadMidiError unless every time signature (up to ``until_tick``) has 16 sixteenths per bar.

    4/4, 2/2 and 8/8 pass; a file without time-signature events is taken as 4/4 (the MIDI default).
    """
    for ts in midi.time_signature_changes:
        if until_tick is not None and ts.time > until_tick:
            continue
        if ts.numerator != ts.denominator:  # numerator * 16 / denominator sixteenths per bar
            raise BadMidiError(
                f"time signature {ts.numerator}/{ts.denominator} at tick {ts.time} "
                "(only bars of 16 sixteenths, e.g. 4/4 or 2/2, are supported)")


def extract_notes(src, min_track_notes: int = D.MIN_TRACK_NOTES, check_time_signature: bool = True,
                  velocity: bool = False, max_duration: int | None = D.MAX_DURATION):
    """Quantised notes of a MIDI file and a description of its tracks.

    Returns ``(notes, tracks)``: ``notes`` is an int32 array ``(n, 4)`` of
    ``[onset_tick, pitch, duration_ticks, instrument_class]`` on the 16th-note grid
    (onset and end rounded to the nearest 16th, halves to even, as the original's muspy;
    duration = end - onset clipped to 0..16: a note shorter than half a 16th has duration 0),
    sorted by onset, then instrument class, then unquantised start, then pitch; a repeated
    ``(onset, pitch, instrument)`` from the same unquantised start keeps only its longest note.  ``tracks`` lists
    ``{"name", "program", "is_drum", "class", "n_notes", "kept"}`` per MIDI track.
    Tracks with fewer than ``min_track_notes`` notes are dropped (SPEC: <= 20), and so are tracks
    of class 0 (the effect families).  With ``velocity`` the notes get a fifth column, their MIDI
    velocity; ``max_duration=None`` keeps long notes whole (evaluation measures sounding time).
    """
    midi = load_midi(src)
    tpb = int(midi.ticks_per_beat)
    if tpb <= 0:
        if tpb < 0:     # the header's division with its top bit set: frames a second and ticks a frame
            raise BadMidiError("timed in SMPTE frames, not in beats (only ticks-per-beat files are read; "
                               "export it again from a sequencer with PPQ timing)")
        raise BadMidiError(f"unsupported time division ({tpb} ticks per beat)")
    if not midi.instruments:
        raise BadMidiError("no tracks with notes")
    tracks = []
    parts, raw_starts = [], []
    for inst in midi.instruments:
        cls = instrument_class(inst.name, inst.program, inst.is_drum)
        n = len(inst.notes)
        kept = n >= min_track_notes and cls > 0
        tracks.append({"name": inst.name, "program": int(inst.program), "is_drum": bool(inst.is_drum),
                       "class": cls, "n_notes": n, "kept": kept})
        if not kept or n == 0:
            continue
        arr = np.array([(nt.start, nt.end, nt.pitch, nt.velocity) for nt in inst.notes], dtype=np.int64)
        start, end, pitch = arr[:, 0], arr[:, 1], arr[:, 2]
        # as the original (muspy's adjust_resolution): onset and end each rounded half to even,
        # duration = end - onset, so a very short note has duration 0
        onset = np.rint(start * (D.TICKS_PER_BEAT / tpb)).astype(np.int64)
        dur = np.rint(end * (D.TICKS_PER_BEAT / tpb)).astype(np.int64) - onset
        dur = np.clip(dur, 0, max_duration)   # (None: long notes kept whole)
        cols = [onset, pitch, dur, np.full_like(onset, cls)] + ([arr[:, 3]] if velocity else [])
        parts.append(np.stack(cols, axis=1))
        raw_starts.append(start)
    if not any(t["n_notes"] for t in tracks):
        raise BadMidiError("no notes")
    if not parts:
        raise BadMidiError(f"no track with at least {min_track_notes} notes of a kept instrument")
    notes, raw_start = np.concatenate(parts), np.concatenate(raw_starts)
    ok = (notes[:, 0] >= 0) & (notes[:, 1] >= 0) & (notes[:, 1] <= 127)
    notes, raw_start = notes[ok], raw_start[ok]
    if check_time_signature:
        last_onset_midi = int(max(nt.start for inst in midi.instruments for nt in inst.notes))
        check_meter(midi, until_tick=last_onset_midi)
    return dedupe_and_sort(notes, raw_start), tracks


def note_columns(notes) -> np.ndarray:
    """The four note columns [onset, pitch, duration, instrument] of an (n, >= 4) array (or an empty one)."""
    notes = np.asarray(notes)
    if notes.ndim == 2 and notes.shape[1] >= 4:
        return notes[:, :4]
    return notes.reshape(-1, 4)


def dedupe_and_sort(notes: np.ndarray, raw_start=None) -> np.ndarray:
    """Sort notes by (onset, instrument, pitch) and keep the longest of duplicated (onset, pitch, instrument).

    With ``raw_start`` (each note's unquantised start) the original's rules hold: only notes
    that also start on the same unquantised tick are duplicates (two short notes that round
    onto one 16th are both kept), and notes of one instrument on the same 16th keep the order
    of their unquantised starts, then pitch (muspy sorts a track by its own ticks; the
    original's bar sort is stable).  Columns beyond the four (velocity) travel with their note."""
    notes = np.asarray(notes, dtype=np.int64)
    notes = notes.reshape(-1, notes.shape[-1] if notes.ndim == 2 and notes.shape[-1] >= 4 else 4)
    if len(notes) == 0:
        return notes.astype(np.int32)
    raw = np.zeros(len(notes), np.int64) if raw_start is None else np.asarray(raw_start, np.int64)
    # order: onset, instrument, (unquantised start,) pitch, then longest duration first
    order = np.lexsort((-notes[:, 2], notes[:, 1], raw, notes[:, 3], notes[:, 0]))
    notes, raw = notes[order], raw[order]
    key = np.column_stack([notes[:, [0, 3, 1]], raw])
    first = np.ones(len(notes), dtype=bool)
    first[1:] = np.any(key[1:] != key[:-1], axis=1)
    return notes[first].astype(np.int32)


def bar_tempos(midi, n_bars: int, bar_offset: int = 0) -> np.ndarray:
    """Tempo (bpm) in effect at the start of each bar ``bar_offset .. bar_offset + n_bars - 1``
    (120 before the first tempo event, the MIDI default)."""
    tpb = int(midi.ticks_per_beat)
    changes = sorted((int(t.time), float(t.tempo)) for t in midi.tempo_changes if float(t.tempo) > 0)
    times = np.array([c[0] for c in changes], dtype=np.int64)
    values = np.array([c[1] for c in changes])
    starts = (np.arange(n_bars) + bar_offset) * D.TICKS_PER_BAR * tpb // D.TICKS_PER_BEAT
    if not len(changes):
        return np.full(n_bars, 120.0)
    idx = np.searchsorted(times, starts, side="right") - 1
    return np.where(idx >= 0, values[np.maximum(idx, 0)], 120.0)


# ---------------------------------------------------------------------------------
# key estimation
# ---------------------------------------------------------------------------------

# Krumhansl-Kessler key profiles (probe-tone ratings, Krumhansl 1990), tonic first.
_KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def pitch_class_histogram(notes: np.ndarray) -> np.ndarray:
    """Duration-weighted 12-bin pitch-class histogram of the pitched (non-drum) notes."""
    notes = note_columns(notes)
    pitched = notes[notes[:, 3] != D.DRUMS]
    return np.bincount(pitched[:, 1] % 12, weights=pitched[:, 2], minlength=12).astype(np.float64)


def estimate_key(notes: np.ndarray) -> int:
    """Key id (1..12 C..B major, 13..24 C..B minor; 0 when undecidable) by the Krumhansl-Schmuckler method.

    The duration-weighted pitch-class histogram is correlated (Pearson) with the 24
    rotations of the Krumhansl-Kessler profiles; the best correlation wins.
    """
    hist = pitch_class_histogram(notes)
    if hist.sum() <= 0 or np.allclose(hist, hist[0]):
        return 0
    h = hist - hist.mean()
    best, best_id = -np.inf, 0
    for mode, profile in ((0, _KK_MAJOR), (1, _KK_MINOR)):
        for tonic in range(12):
            p = np.roll(profile, tonic)  # p[pc] = weight of pc in the key with this tonic
            p = p - p.mean()
            r = float(h @ p / (np.linalg.norm(h) * np.linalg.norm(p)))
            if r > best + 1e-12:
                best, best_id = r, 1 + 12 * mode + tonic
    return best_id


# ---------------------------------------------------------------------------------
# notes <-> tokens
# ---------------------------------------------------------------------------------

def p_beat(i_beat, n_beat: int, rounding: str = "floor"):
    """Beat-timing class of tick ``i_beat`` in a song of ``n_beat`` ticks, the one definition.

    ``rounding="floor"`` (tokens: training data and generation, SPEC section 2): the original's
    float expression int(i_beat / n_beat * 100) + 1, clipped to 1..101 (so values just under an
    integer round as they did there).  ``rounding="round"`` (the video rows of the inference npz, as
    the original's metadata2numpy_mix.py): round(i_beat / n_beat * 100) + 1, Python's
    round-half-to-even, not clipped.
    """
    n_beat = max(int(n_beat), 1)
    if rounding == "round":
        return np.round(np.asarray(i_beat, dtype=np.float64) / n_beat * 100).astype(np.int64) + 1
    if rounding != "floor":
        raise ValueError(f"rounding must be 'floor' or 'round', got {rounding!r}")
    return np.minimum((np.asarray(i_beat, dtype=np.float64) / n_beat * 100).astype(np.int64) + 1, D.N_PBEAT - 1)


def p_time(i_beat, n_beat: int):
    """bmt's beat timing, stored + 1: min(99, int(100 * i_beat / n_beat)) + 1, so 1..100 (0 = pad)."""
    n_beat = max(int(n_beat), 1)
    return np.minimum((100 * np.asarray(i_beat, dtype=np.int64)) // n_beat, 99) + 1


def _bmt_classes(notes: np.ndarray, n_bars: int, tempos, chords):
    """bmt's extra fields of a song: the tempo class of each bar, the chord of each half bar and
    each note's velocity class (see :func:`notes_to_tokens`)."""
    from vidscore.music import chords as CH
    tempo_cls = [D.tempo_bin(t) for t in (np.full(n_bars, 120.0) if tempos is None else tempos)]
    if len(tempo_cls) < n_bars:
        raise ValueError(f"tempos has {len(tempo_cls)} bars, the song {n_bars}")
    seg = CH.segment_chords(notes, n_bars * D.TICKS_PER_BAR) if chords is None else np.asarray(chords)
    vel_cls = np.array([D.velocity_bin(v) for v in (notes[:, 4] if notes.shape[1] > 4 else [80] * len(notes))])
    return tempo_cls, seg, vel_cls


def notes_to_tokens(notes: np.ndarray, n_beat: int | None = None, n_bars: int | None = None,
                    preset: str = "cmt", tempos=None, chords=None) -> np.ndarray:
    """Token rows (T, 9) int32 (bmt: (T, 12)) for sorted, quantised notes; the last row is the all-zero EOS.

    ``notes`` as from :func:`extract_notes` (sorted by onset; ties keep their order).
    ``n_beat`` (song length in ticks for p_beat) defaults to the end of the last note;
    ``n_bars`` defaults to the bar of the last onset + 1 (bars without notes get a Bar
    token with density 1).

    ``preset="bmt"`` also writes tempo, chord and velocity: ``tempos`` is the bpm of each
    bar (default 120), ``chords`` the chord id of each half bar (default: extracted from
    the notes by :func:`chords.segment_chords`), velocities come from a fifth note column
    (default 80).
    """
    notes = np.asarray(notes, dtype=np.int64)
    notes = notes.reshape(-1, notes.shape[-1] if notes.ndim == 2 and notes.shape[-1] >= 4 else 4)
    if len(notes) == 0:
        raise BadMidiError("no notes")
    onset = notes[:, 0]
    if np.any(np.diff(onset) < 0):
        raise ValueError("notes must be sorted by onset")
    if n_bars is None:
        n_bars = int(onset[-1] // D.TICKS_PER_BAR) + 1
    if n_beat is None:
        n_beat = int(np.max(onset + notes[:, 2]))
    n_beat = max(int(n_beat), int(onset[-1]) + 1)
    P = D.preset(preset)
    bmt = P.name == "bmt"
    timing = p_time if bmt else p_beat
    if bmt:
        from vidscore.music import chords as CH
        tempo_cls, seg, vel_cls = _bmt_classes(notes, n_bars, tempos, chords)
    pos = onset % D.TICKS_PER_BAR
    inst = notes[:, 3]
    bar_start = np.searchsorted(onset, np.arange(n_bars + 1) * D.TICKS_PER_BAR)
    # group boundaries: a new simu-note where onset or instrument changes
    new_group = np.ones(len(notes), dtype=bool)
    new_group[1:] = (onset[1:] != onset[:-1]) | (inst[1:] != inst[:-1])
    group_id = np.cumsum(new_group) - 1
    group_size = np.bincount(group_id)
    n_groups = len(group_size)
    out = np.zeros((n_bars + n_groups + len(notes) + 1, P.n_cols), dtype=np.int32)
    r = 0
    for b in range(n_bars):
        lo, hi = bar_start[b], bar_start[b + 1]
        bar_pos = pos[lo:hi]
        distinct = np.unique(bar_pos)
        tick = b * D.TICKS_PER_BAR
        out[r, [D.COL_BARBEAT, D.COL_TYPE, D.COL_DENSITY, D.COL_PBEAT, D.COL_IBEAT]] = (
            D.BAR, D.TYPE_M, len(distinct) + 1, timing(tick, n_beat), tick)
        if bmt:
            out[r, [D.COL_TEMPO, D.COL_CHORD]] = tempo_cls[b], seg[tick // CH.SEGMENT]
        r += 1
        i = lo
        while i < hi:
            g = group_id[i]
            j = i + group_size[g]
            t = int(onset[i])
            pb = int(timing(t, n_beat))
            after = len(distinct) - int(np.searchsorted(distinct, pos[i], side="right"))
            out[r, [D.COL_BARBEAT, D.COL_TYPE, D.COL_DENSITY, D.COL_INSTRUMENT, D.COL_STRENGTH,
                    D.COL_PBEAT, D.COL_IBEAT]] = (
                pos[i] + 1, D.TYPE_M, after + 1, inst[i], min(j - i, D.N_CLASS["strength"] - 1), pb, t)
            if bmt:
                out[r, D.COL_CHORD] = seg[t // CH.SEGMENT]
            r += 1
            k = j - i
            rows = out[r:r + k]
            rows[:, D.COL_TYPE] = D.TYPE_NOTE
            rows[:, D.COL_PITCH] = notes[i:j, 1] + 1
            rows[:, D.COL_DURATION] = np.minimum(notes[i:j, 2], D.MAX_DURATION) + 1
            rows[:, D.COL_INSTRUMENT] = inst[i]
            rows[:, D.COL_PBEAT] = pb
            rows[:, D.COL_IBEAT] = t
            if bmt:
                rows[:, D.COL_VELOCITY] = vel_cls[i:j]
            r += k
            i = j
    assert r == len(out) - 1
    return out


def tokens_to_notes(tokens: np.ndarray, timing: str = "i_beat", velocity: bool = False) -> np.ndarray:
    """Notes ``(n, 4)`` int32 ``[onset_tick, pitch, duration_ticks, instrument_class]`` from token rows.

    Reads rows until the first EOS (type 0) row.  ``timing="i_beat"`` takes the onset
    from the i_beat column; ``timing="structure"`` recomputes it from the Bar and Beat
    tokens seen so far (16 * bars-before + position), for rows whose i_beat is unset.
    Note rows with pitch, duration or instrument 0 are skipped; a duration of 0 ticks
    becomes 1.  Extra columns beyond the nine are ignored, except with ``velocity``: then a
    fifth column holds each note's MIDI velocity (from bmt's velocity column, 80 without one).
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] < (D.N_COLS if timing == "i_beat" else D.N_COLS - 1):
        raise ValueError(f"tokens must be (T, 9) rows, got shape {tokens.shape}")
    typ = tokens[:, D.COL_TYPE]
    eos = np.flatnonzero(typ == D.TYPE_EOS)
    end = int(eos[0]) if len(eos) else len(tokens)
    tokens = tokens[:end]
    typ = typ[:end]
    if timing == "i_beat":
        onset = tokens[:, D.COL_IBEAT].astype(np.int64)
    elif timing == "structure":
        onset = np.zeros(len(tokens), dtype=np.int64)
        bar, position = -1, 0
        for i, row in enumerate(tokens):
            if row[D.COL_TYPE] == D.TYPE_M:
                bb = int(row[D.COL_BARBEAT])
                if bb == D.BAR:
                    bar, position = bar + 1, 0
                elif 1 <= bb <= 16:
                    position = bb - 1
            onset[i] = max(bar, 0) * D.TICKS_PER_BAR + position
    else:
        raise ValueError(f"unknown timing {timing!r}")
    sel = ((typ == D.TYPE_NOTE) & (tokens[:, D.COL_PITCH] > 0) & (tokens[:, D.COL_DURATION] > 0)
           & (tokens[:, D.COL_INSTRUMENT] > 0) & (tokens[:, D.COL_INSTRUMENT] <= len(D.INSTRUMENTS)))
    rows = tokens[sel]
    cols = [onset[sel], rows[:, D.COL_PITCH] - 1, np.maximum(rows[:, D.COL_DURATION] - 1, 1),
            rows[:, D.COL_INSTRUMENT]]
    if velocity:
        vel = rows[:, D.COL_VELOCITY] if tokens.shape[1] > D.COL_VELOCITY else np.zeros(len(rows), np.int64)
        cols.append(np.array([D.velocity_value(v) if 1 <= v <= D.N_VELOCITY_BINS else 80 for v in vel], np.int64))
    out = np.stack(cols, axis=1) if len(rows) else np.zeros((0, len(cols)))
    return out.astype(np.int32)


def _until_eos(tokens: np.ndarray) -> np.ndarray:
    tokens = np.asarray(tokens)
    eos = np.flatnonzero(tokens[:, D.COL_TYPE] == D.TYPE_EOS)
    return tokens[:int(eos[0])] if len(eos) else tokens


def tokens_tempos(tokens: np.ndarray) -> list[tuple[int, float]]:
    """bmt tempo changes ``[(tick, bpm), ...]`` from the tempo of Bar tokens (empty for cmt rows)."""
    tokens = _until_eos(tokens)
    if tokens.shape[1] <= D.COL_TEMPO:
        return []
    out = []
    for row in tokens[(tokens[:, D.COL_BARBEAT] == D.BAR) & (tokens[:, D.COL_TEMPO] > 0)]:
        bpm = D.tempo_value(int(row[D.COL_TEMPO]))
        if not out or out[-1][1] != bpm:
            out.append((int(row[D.COL_IBEAT]), bpm))
    return out


def tokens_chords(tokens: np.ndarray) -> list[tuple[int, int]]:
    """bmt chord changes ``[(tick, chord id), ...]`` read from metrical tokens (empty for cmt rows)."""
    tokens = _until_eos(tokens)
    if tokens.shape[1] <= D.COL_CHORD:
        return []
    out = []
    for row in tokens[(tokens[:, D.COL_TYPE] == D.TYPE_M) & (tokens[:, D.COL_CHORD] > 0)]:
        cid = int(row[D.COL_CHORD])
        if not out or out[-1][1] != cid:
            out.append((int(row[D.COL_IBEAT]), cid))
    return out


# ---------------------------------------------------------------------------------
# songs and windows
# ---------------------------------------------------------------------------------

def song_end(midi) -> int:
    """The song length in 16ths for p_beat, as the original's muspy ``get_end_time``: the latest
    rounded note end (before durations are clipped, dropped tracks included) or tempo, meter,
    key, marker or lyric time."""
    f = D.TICKS_PER_BEAT / int(midi.ticks_per_beat)
    times = [n.end for inst in midi.instruments for n in inst.notes]
    for events in (midi.tempo_changes, midi.time_signature_changes, midi.key_signature_changes,
                   midi.markers, midi.lyrics):
        times.extend(e.time for e in events)
    return int(np.rint(np.max(np.asarray(times, dtype=np.int64)) * f)) if times else 0


def _song_notes(src, trim_leading: bool, preset: str = "cmt"):
    """(notes, tracks, bar_offset, tempos per bar or None, song end in 16ths after the offset);
    bmt notes carry velocity."""
    bmt = D.preset(preset).name == "bmt"
    midi = load_midi(src)
    notes, tracks = extract_notes(midi, velocity=bmt)
    if len(notes) == 0:
        raise BadMidiError("no notes")
    bar_offset = int(notes[0, 0] // D.TICKS_PER_BAR) if trim_leading else 0
    if bar_offset:
        notes = notes.copy()
        notes[:, 0] -= bar_offset * D.TICKS_PER_BAR
    n_bars = int(notes[-1, 0] // D.TICKS_PER_BAR) + 1
    tempos = bar_tempos(midi, n_bars, bar_offset) if bmt else None
    end = max(song_end(midi) - bar_offset * D.TICKS_PER_BAR, int(np.max(notes[:, 0] + notes[:, 2])))
    return notes, tracks, bar_offset, tempos, end


def _info(tokens, notes, n_bars, n_beat, key, **extra):
    return {
        "length": int(len(tokens)),
        "n_bars": int(n_bars),
        "n_beat": int(n_beat),
        "n_notes": int(len(notes)),
        "instruments": sorted(int(c) for c in np.unique(notes[:, 3])),
        "key": int(key),
        **extra,
    }


def midi_to_tokens(src, trim_leading: bool = True, preset: str = "cmt"):
    """Tokens of a whole song and information about it.

    ``src`` is a path or a ``miditoolkit.MidiFile``.  Returns ``(tokens, info)``:
    tokens int32 ``(T, 9)`` (bmt: ``(T, 12)``) ending with the EOS row; info holds ``length``,
    ``n_bars``, ``n_beat``, ``n_notes``, ``instruments`` (class ids present), ``key`` (id),
    ``bar_offset`` (leading empty bars removed when ``trim_leading``) and ``tracks``.
    Raises :class:`BadMidiError` for files that cannot be tokenised.
    """
    notes, tracks, bar_offset, tempos, n_beat = _song_notes(src, trim_leading, preset)
    key = estimate_key(notes)
    tokens = notes_to_tokens(notes, n_beat=n_beat, preset=preset, tempos=tempos)
    n_bars = int(notes[-1, 0] // D.TICKS_PER_BAR) + 1
    return tokens, _info(tokens, notes, n_bars, n_beat, key, bar_offset=bar_offset, tracks=tracks, window=0,
                         n_windows=1)


def bar_token_counts(notes: np.ndarray, n_bars: int) -> np.ndarray:
    """Number of token rows each bar produces: 1 Bar + one Beat per simu-note + one per note."""
    notes = note_columns(notes)
    bar = notes[:, 0] // D.TICKS_PER_BAR
    new_group = np.ones(len(notes), dtype=bool)
    new_group[1:] = (notes[1:, 0] != notes[:-1, 0]) | (notes[1:, 3] != notes[:-1, 3])
    per_bar_notes = np.bincount(bar, minlength=n_bars)
    per_bar_groups = np.bincount(bar[new_group], minlength=n_bars)
    return 1 + per_bar_notes + per_bar_groups


def window_bounds(counts: np.ndarray, max_len: int) -> list[tuple[int, int]]:
    """Greedy cut of bars into windows ``[b0, b1)`` whose tokens + EOS fit in ``max_len`` rows."""
    bounds = []
    b0, used = 0, 1  # the EOS row
    for b, c in enumerate(counts):
        if c + 1 > max_len:
            raise BadMidiError(f"bar {b} alone needs {int(c) + 1} tokens, more than max_len={max_len}")
        if used + c > max_len:
            bounds.append((b0, b))
            b0, used = b, 1
        used += c
    bounds.append((b0, len(counts)))
    return bounds


def midi_to_windows(src, max_len: int | None = 10000, trim_leading: bool = True, preset: str = "cmt"):
    """A song as a list of ``(tokens, info)`` windows of at most ``max_len`` rows (EOS included).

    A song that fits is one window (identical to :func:`midi_to_tokens`).  A longer one
    is cut at bar boundaries; each window is tokenised as its own song: ticks relative
    to the window start, ``n_beat`` = the window's span (its bars, or up to the last
    note's end for the final window).  The key is estimated once for the whole song;
    ``instruments`` lists the classes present in each window.  Windows without notes
    are left out.  ``preset="bmt"``: chords are extracted once from the whole song.
    """
    notes, tracks, bar_offset, tempos, end = _song_notes(src, trim_leading, preset)
    key = estimate_key(notes)
    n_bars = int(notes[-1, 0] // D.TICKS_PER_BAR) + 1
    counts = bar_token_counts(notes, n_bars)
    song_chords = None
    if tempos is not None:
        from vidscore.music import chords as CH
        song_chords = CH.segment_chords(notes, n_bars * D.TICKS_PER_BAR)
    if max_len is None or counts.sum() + 1 <= max_len:
        bounds = [(0, n_bars)]
    else:
        bounds = window_bounds(counts, max_len)
    windows = []
    for b0, b1 in bounds:
        t0, t1 = b0 * D.TICKS_PER_BAR, b1 * D.TICKS_PER_BAR
        lo, hi = np.searchsorted(notes[:, 0], [t0, t1])
        if hi <= lo:
            continue
        w = notes[lo:hi].copy()
        w[:, 0] -= t0
        last = b1 == n_bars
        n_beat = (end - t0) if last else (t1 - t0)
        extra = {}
        if tempos is not None:
            per_bar = D.TICKS_PER_BAR // CH.SEGMENT
            extra = dict(preset=preset, tempos=tempos[b0:b1], chords=song_chords[b0 * per_bar:b1 * per_bar])
        tokens = notes_to_tokens(w, n_beat=n_beat, n_bars=b1 - b0, **extra)
        windows.append((tokens, _info(tokens, w, b1 - b0, n_beat, key, bar_offset=bar_offset + b0,
                                      tracks=tracks, window=len(windows))))
    for _, info in windows:
        info["n_windows"] = len(windows)
    return windows


# ---------------------------------------------------------------------------------
# init tokens and the training file
# ---------------------------------------------------------------------------------

def init_tokens(instruments_present, key_id: int, genre_id: int, emotion: int | None = None) -> np.ndarray:
    """The 7 global rows ``[genre, key, instrument]`` (int32, (7, 3)); with ``emotion`` (bmt,
    0..4, 0 = unknown) ``[genre, key, instrument, emotion]`` (7, 4).

    Row 0 = [genre, 0, 0(, emotion)], row 1 = [0, key, 0(, 0)], row 1+k = [0, 0, k(, 0)] for
    each instrument class k in 1..5 that is present, else zeros.
    """
    out = np.zeros((D.N_INIT_ROWS, 3 if emotion is None else 4), dtype=np.int32)
    out[D.INIT_CELL["genre"]] = int(genre_id)
    out[D.INIT_CELL["key"]] = int(key_id)
    if emotion is not None:
        out[D.INIT_CELL["emotion"]] = int(emotion)
    present = {int(k) for k in instruments_present}
    for k in range(1, len(D.INSTRUMENTS) + 1):
        if k in present:
            out[1 + k, D.INIT_INSTRUMENT_COLUMN] = k
    return out


def load_training_npz(path: str | os.PathLike) -> dict:
    """A training npz written by ``midi2numpy_mix.py`` as a dict of arrays.

    Keys: ``x``, ``y`` (int32 (N, L, 9); bmt 12), ``mask`` (float32 (N, L)), ``seq_len`` (int32 (N,)),
    ``init`` (int32 (N, 7, 3); bmt (N, 7, 4)), ``split`` (uint8 (N,), 0 train / 1 validation), ``metadata``
    (list of per-song dicts) and ``vocab`` (dict), the last two parsed from JSON.
    """
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    for k in ("metadata", "vocab"):
        if k in out:
            out[k] = json.loads(str(out[k][()]))
    return out
