"""Token rows -> a five-track MIDI file (used by inference; also a small command-line tool).

Library use::

    from numpy2midi_mix import tokens_to_midi, tokens_to_notes
    tokens_to_midi(tokens, "song.mid", tempo_bpm=115.38)

One track per instrument class present, named exactly Drums/Piano/Guitar/Bass/Strings,
with the General MIDI programs of ``dictionary_mix.PROGRAMS`` (Drums on channel 10 with
``is_drum``), a tempo event at time 0, a 4/4 time signature and velocity 80 by default.
Note timing: onset = the row's i_beat (in 16ths), duration = duration-1 sixteenths (at
least 1); the file's resolution is ``ticks_per_beat`` (4 by default, so one MIDI tick is
one token tick).

bmt rows (12 columns) also carry each note's velocity, a tempo per bar and chords: the
notes keep their velocities, the chords become MIDI markers ("C_M", "A#_M7", ...) and, when no
tempo is given, the tokens' tempo changes become the MIDI's.
"""
from __future__ import annotations

import argparse
import contextlib
import os

import numpy as np

import cli
import dictionary_mix as D
from representation import tokens_chords, tokens_tempos
from representation import tokens_to_notes  # re-exported: notes as (onset, pitch, duration, instrument)

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
        from chords import chord_name
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


# ---------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------

def _load_tokens(path: str, key: str | None, index: int | None) -> np.ndarray:
    if not os.path.exists(path):
        raise cli.UserError(f"{path} does not exist; give a .npy of token rows or a training/generation .npz")
    import original_npz
    if original_npz.is_original(path):     # CMT's processed file (10 raw columns): converted as training reads it
        try:
            data = original_npz.read(path)
        except original_npz.OriginalNpzError as e:
            raise cli.UserError(str(e)) from None
        data = {k: data[k] for k in ("x", "y")}
    else:
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as e:
            raise cli.UserError(f"cannot read {path} as numpy data ({type(e).__name__}); give a .npy or .npz") \
                from None
    if isinstance(data, np.ndarray):
        arr = data
    else:
        with data if hasattr(data, "files") else contextlib.nullcontext():
            names = data.files if hasattr(data, "files") else list(data)
            k = key or next((n for n in ("tokens", "x", "y", "sequence") if n in names), None)
            if k is None or k not in names:
                raise cli.UserError(f"{path} has arrays {names}; choose one with --key")
            arr = data[k]
            if k == "x" and "y" in names:
                # a training file: rebuild the full sequence seq = x[0] + y
                y = data["y"]
                if arr.ndim == 3:
                    i = index or 0
                    if not 0 <= i < arr.shape[0]:
                        raise cli.UserError(f"--index {i} out of range 0..{arr.shape[0] - 1}")
                    arr = np.concatenate([arr[i, :1], y[i]])
                    index = None
    if arr.ndim == 3:
        if index is None:
            raise cli.UserError(f"{path} holds {arr.shape[0]} sequences; choose one with --index")
        if not 0 <= index < arr.shape[0]:
            raise cli.UserError(f"--index {index} out of range 0..{arr.shape[0] - 1}")
        arr = arr[index]
    widths = sorted({P.n_cols for P in D.PRESETS.values()})
    if arr.ndim != 2 or arr.shape[1] not in widths:
        raise cli.UserError(f"{path}: expected token rows of {' or '.join(map(str, widths))} columns (cmt, bmt), "
                            f"got an array of shape {arr.shape}; choose the token array with --key")
    tokens = check_tokens(arr, path)
    if not len(tokens_to_notes(tokens)):
        raise cli.UserError(f"{path}: these token rows hold no notes, so there is no MIDI to write; "
                            "choose another --key or --index")
    return tokens


def check_tokens(arr: np.ndarray, source: str) -> np.ndarray:
    """Token rows as int64, or UserError: whole, finite numbers, each column within its
    representation's vocabulary (cmt: 9 columns, bmt: 12; i_beat below 2^24 ticks)."""
    if arr.dtype.kind not in "iuf":
        raise cli.UserError(f"{source}: token rows must be whole numbers, not {arr.dtype}")
    if arr.dtype.kind == "f" and (not np.isfinite(arr).all() or (arr != np.round(arr)).any()):
        raise cli.UserError(f"{source}: token rows must be whole, finite numbers")
    P = next((P for P in D.PRESETS.values() if P.n_cols == arr.shape[1]), D.PRESETS["cmt"])
    limits = [n - 1 for n in P.n_class]
    limits[D.COL_IBEAT] = 2 ** 24
    for c, hi in enumerate(limits):
        bad = np.flatnonzero((arr[:, c] < 0) | (arr[:, c] > hi))
        if len(bad):
            raise cli.UserError(f"{source}: row {bad[0]} has {P.columns[c]} {arr[bad[0], c]}; "
                                f"{P.name} tokens take 0..{hi} there")
    return arr[:, :P.n_cols].astype(np.int64)


def main() -> int:
    ap = argparse.ArgumentParser(description="Write CMT token rows as a five-track MIDI file.")
    ap.add_argument("--in", dest="inp", required=True, help=".npy (T, 9) token rows, or .npz (see --key/--index)")
    ap.add_argument("--out", required=True, help="output .mid path")
    ap.add_argument("--tempo", type=float, default=None,
                    help="tempo in bpm (default: bmt tokens' own tempo, else 120)")
    ap.add_argument("--velocity", type=int, default=80, help="note velocity (default 80)")
    ap.add_argument("--key", help="array name inside an .npz (default: tokens, else x + y of a training file)")
    ap.add_argument("--index", type=int, help="which sequence when the array holds several")
    ap.add_argument("--program", action="append", default=[], metavar="NAME=PROGRAM",
                    help="override a General MIDI program, e.g. --program Strings=48 (repeatable)")
    args = ap.parse_args()
    import paths
    args.inp, args.out = paths.repo_path(args.inp), paths.repo_path(args.out)   # dataset/..., inference/...
    cli.check_outputs([args.inp], [args.out], hint="choose another --out (inputs are never overwritten)")
    if args.tempo is not None:
        from video2npz.metadata import check_tempo
        check_tempo(args.tempo, "--tempo")
    if not 1 <= args.velocity <= 127:
        raise cli.UserError("--velocity must be 1..127")
    programs = {}
    for item in args.program:
        name, _, prog = item.partition("=")
        if name not in D.INSTRUMENTS or not prog.isdigit() or not 0 <= int(prog) <= 127:
            raise cli.UserError(f"--program {item!r}: use NAME=N with NAME in {D.INSTRUMENTS} and N in 0..127")
        programs[name] = int(prog)
    tokens = _load_tokens(args.inp, args.key, args.index)
    midi = tokens_to_midi(tokens, args.out, args.tempo, velocity=args.velocity, programs=programs or None)
    n = sum(len(i.notes) for i in midi.instruments)
    bpm = midi.tempo_changes[0].tempo
    more = f" ({len(midi.tempo_changes)} tempo changes, {len(midi.markers)} chord markers)" if midi.markers else ""
    print(f"wrote {args.out}: {n} notes in {len(midi.instruments)} tracks "
          f"({', '.join(i.name for i in midi.instruments)}), {bpm:g} bpm{more}")
    return 0


if __name__ == "__main__":
    cli.run(main)
