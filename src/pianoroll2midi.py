"""lpd-5-cleansed pypianoroll ``.npz`` files -> MIDI files with tracks Drums, Piano, Guitar, Bass, Strings.

    python src/pianoroll2midi.py --in_dir lpd_5/lpd_5_cleansed --out_dir dataset/lpd_midi [--workers N]

The folder is searched recursively and its layout mirrored (``A/B/C/TRxxx/<md5>.npz`` ->
``out_dir/A/B/C/TRxxx/<md5>.mid``).  Resumable: outputs that exist are skipped.  Files
that cannot be converted are skipped with a reason, counted in the final summary.
"""
from __future__ import annotations

import argparse
import time

from vidscore import cli
from vidscore.training import corpus


def main() -> int:
    ap = argparse.ArgumentParser(description="Convert pypianoroll .npz files (LPD-5) to five-track MIDI files.")
    ap.add_argument("--in_dir", required=True, help="folder of pypianoroll .npz files (searched recursively)")
    ap.add_argument("--out_dir", required=True, help="output folder for the .mid files")
    ap.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    args = ap.parse_args()
    from vidscore import paths
    in_dir, args.out_dir = paths.repo_path(args.in_dir), paths.repo_path(args.out_dir)
    if not in_dir.exists():
        raise cli.UserError(f"--in_dir {in_dir} does not exist; give the folder of pypianoroll .npz files")
    if not in_dir.is_dir():
        raise cli.UserError(f"--in_dir {in_dir} is not a folder")
    if args.workers < 0:
        raise cli.UserError("--workers must be 0 (all cores) or more")
    cli.check_out_dir(args.out_dir, "--out_dir")
    if not corpus.find_pianoroll_files(in_dir):
        raise cli.UserError(f"no .npz files under {in_dir}")
    t0 = time.perf_counter()
    report = corpus.convert_pianoroll_folder(in_dir, args.out_dir, workers=args.workers)
    dt = time.perf_counter() - t0
    n = report.n_ok + len(report.skipped)
    print("\n".join(report.lines()))
    print(f"{n} files in {dt:.1f} s ({n / dt:.1f} files/s); MIDI under {args.out_dir}")
    if not report.n_ok:
        raise cli.UserError(f"none of the {n} files under {in_dir} could be converted (reasons above)")
    return 0


if __name__ == "__main__":
    cli.run(main)
