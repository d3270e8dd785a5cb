"""Token rows -> a five-track MIDI file (a small command-line tool; the writer is
:mod:`vidscore.music.midi_write`, which inference uses).

    python src/numpy2midi_mix.py --in song.npy --out song.mid --tempo 115.38
"""
from __future__ import annotations

import argparse

from vidscore import cli
from vidscore import constants as D
from vidscore.music.midi_write import tokens_to_midi
from vidscore.training.token_files import load_tokens


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
    from vidscore import paths
    args.inp, args.out = paths.repo_path(args.inp), paths.repo_path(args.out)   # dataset/..., inference/...
    cli.check_outputs([args.inp], [args.out], hint="choose another --out (inputs are never overwritten)")
    if args.tempo is not None:
        from vidscore.video.metadata import check_tempo
        check_tempo(args.tempo, "--tempo")
    if not 1 <= args.velocity <= 127:
        raise cli.UserError("--velocity must be 1..127")
    programs = {}
    for item in args.program:
        name, _, prog = item.partition("=")
        if name not in D.INSTRUMENTS or not prog.isdigit() or not 0 <= int(prog) <= 127:
            raise cli.UserError(f"--program {item!r}: use NAME=N with NAME in {D.INSTRUMENTS} and N in 0..127")
        programs[name] = int(prog)
    tokens = load_tokens(args.inp, args.key, args.index)
    midi = tokens_to_midi(tokens, args.out, args.tempo, velocity=args.velocity, programs=programs or None)
    n = sum(len(i.notes) for i in midi.instruments)
    bpm = midi.tempo_changes[0].tempo
    more = f" ({len(midi.tempo_changes)} tempo changes, {len(midi.markers)} chord markers)" if midi.markers else ""
    print(f"wrote {args.out}: {n} notes in {len(midi.instruments)} tracks "
          f"({', '.join(i.name for i in midi.instruments)}), {bpm:g} bpm{more}")
    return 0


if __name__ == "__main__":
    cli.run(main)
