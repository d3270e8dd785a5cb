"""A folder of MIDI files -> the training npz (SPEC section 2).

    python src/midi2numpy_mix.py --midi_dir dataset/lpd_midi --out_name dataset/lpd.npz \
        [--genre_file genres.tsv] [--max_len 10000] [--workers N]
    python src/midi2numpy_mix.py --midi_dir EMOPIA_1.0/midis --out_name dataset/emopia.npz \
        --representation bmt

Any MIDI collection works: tracks are mapped to Drums/Piano/Guitar/Bass/Strings by name,
else by General MIDI program family.  Bad files (empty, corrupt, not MIDI, no track with
21+ notes, not 4/4) are skipped with a reason in the final summary.  ``--representation bmt`` writes
BMT's richer tokens (tempo, chord, velocity) and an emotion init field, labelled from
``--emotion_file`` or from EMOPIA-style ``Q1_...`` file names.  Writes the npz,
``<stem>_vocab.json`` and ``<stem>_stats.json``; a per-song token cache (keyed by file
content) makes reruns fast.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from vidscore import cli
from vidscore import paths
from vidscore.training import dataset
from vidscore.training.build_args import add_build_args, cache_dir_for, check_build_args, label_maps


def main() -> int:
    ap = argparse.ArgumentParser(description="Tokenise a folder of MIDI files into the training npz.")
    ap.add_argument("--midi_dir", required=True, help="folder of .mid/.midi files (searched recursively)")
    ap.add_argument("--out_name", required=True, help="output .npz: a bare name goes into the repository's "
                                                     "dataset/ (data.npz -> dataset/data.npz, as in CMT), "
                                                     "else a path")
    add_build_args(ap)
    args = ap.parse_args()
    args.out_name = str(paths.in_folder(args.out_name, "dataset"))
    check_build_args(args)
    midi_dir = Path(args.midi_dir)
    if not midi_dir.is_dir():
        raise cli.UserError(f"--midi_dir {midi_dir} is not a folder")
    files = dataset.find_midi_files(midi_dir)
    if not files:
        raise cli.UserError(f"no .mid/.midi files under {midi_dir}")
    genre_map, emotion_map = label_maps(args)
    stats = dataset.build_training_set(files, args.out_name, max_len=args.max_len, genre_map=genre_map,
                                       workers=args.workers, cache_dir=cache_dir_for(args), source="midi",
                                       val_fraction=args.val_fraction, preset=args.representation,
                                       emotion_map=emotion_map)
    print("\n".join(dataset.summary_lines(stats)))
    return 0


if __name__ == "__main__":
    cli.run(main)
