"""The flags every dataset builder shares (midi2numpy_mix.py, prepare_corpus.py): max length,
workers, labels from files, the token cache, the representation, the validation share;
checked before any work."""
from __future__ import annotations

import argparse
from pathlib import Path

from vidscore import cli
from vidscore.training import dataset  # noqa: F401
from vidscore import paths


def add_build_args(ap: argparse.ArgumentParser, default_max_len: int = 10000) -> None:
    ap.add_argument("--genre_file", help="optional id -> genre table (TSV/CSV 'id<TAB>genre' or JSON); ids are "
                                         "file paths relative to the MIDI folder without suffix, file names, "
                                         "or parent folder names")
    ap.add_argument("--representation", choices=["cmt", "bmt"], default="cmt",
                    help="token preset: cmt (the published 9 fields) or bmt (adds tempo, chord, velocity and "
                         "an emotion label; default cmt)")
    ap.add_argument("--emotion_file", help="bmt: optional id -> emotion table ('id<TAB>Q1'..'Q4', or JSON); "
                                           "without an entry a file named Q1_... (EMOPIA) is Q1, else unknown")
    ap.add_argument("--max_len", type=int, default=default_max_len,
                    help=f"longest sequence in tokens (EOS included); longer songs are cut into windows at bar "
                         f"boundaries (default {default_max_len})")
    ap.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    ap.add_argument("--cache_dir", help="token cache folder (default: .cache/tokens beside the output)")
    ap.add_argument("--no_cache", action="store_true", help="do not read or write the token cache")
    ap.add_argument("--val_fraction", type=float, default=0.1, help="share of songs in the validation split "
                                                                     "(default 0.1)")


def check_build_args(args) -> None:
    if args.max_len is not None and args.max_len < 32:
        raise cli.UserError(f"--max_len {args.max_len} is too small; use at least 32 (default 10000)")
    if not 0.0 <= args.val_fraction < 1.0:
        raise cli.UserError("--val_fraction must be in [0, 1)")
    if not str(args.out_name).endswith(".npz"):
        raise cli.UserError(f"--out_name {args.out_name} must end with .npz")
    if args.emotion_file and args.representation != "bmt":
        raise cli.UserError("--emotion_file needs --representation bmt (the cmt tokens have no emotion field)")
    out = Path(args.out_name)
    cli.check_outputs([args.genre_file, args.emotion_file],
                      [out, out.with_name(f"{out.stem}_vocab.json"), out.with_name(f"{out.stem}_stats.json")],
                      hint="choose another --out_name")
    folder = cache_dir_for(args)
    if folder is not None:
        cli.check_out_dir(folder, "--cache_dir", name=None if args.cache_dir else
                          f"the token cache {folder} (--cache_dir, or --no_cache)")


def label_maps(args) -> tuple[dict | None, dict | None]:
    """(genre map, emotion map) from --genre_file / --emotion_file."""
    genre_map = dataset.read_genre_file(args.genre_file) if args.genre_file else None
    emotion_map = dataset.read_emotion_file(args.emotion_file) if args.emotion_file else None
    return genre_map, emotion_map


def cache_dir_for(args) -> Path | None:
    """The token cache's folder (None with --no_cache; check_build_args checks it can be written)."""
    if args.no_cache:
        return None
    if args.cache_dir:
        return Path(args.cache_dir)
    out_dir = Path(args.out_name).resolve().parent
    if out_dir == paths.REPO / "src" or paths.REPO / "src" in out_dir.parents:
        return paths.CACHE / "tokens"   # caches never land inside src/
    return out_dir / ".cache" / "tokens"
