"""The command line of a hyperparameter block (main_cp.py's HP): every entry is a flag of the same
name, the comment beside it is the flag's help, a preset is applied before the other flags, and
the repository's folders are resolved from any working folder."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from vidscore import cli, paths

PATH_KEYS = ("data_root", "exp_dir", "log_dir", "out_dir", "videos", "ckpt", "train_data", "init_ckpt")


def comments(source: str | Path) -> dict[str, str]:
    """The comment beside each entry of the HP block in the file ``source``, reused as the flag's help."""
    text = Path(source).read_text()
    block = text[text.index("HP = dict("):text.index("PRESETS = {")]
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s+(\w+)=.*?#\s*(.*)$", block, re.M)}


def parse(hp_block: dict, presets: dict, argv=None, doc: str = "", source: str | Path | None = None) -> dict:
    """The run's hyperparameters: the block, then ``--preset``'s entries, then the flags given."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    notes = comments(source) if source else {}
    ap.add_argument("--mode", choices=["train", "inference"], default=None,
                    help=f"{notes.get('mode', '')} (default: {hp_block['mode']!r}, from the block at the top of main_cp.py)")
    ap.add_argument("--preset", choices=sorted(presets), default="published",
                    help="a named set of hyperparameters applied before the other flags")
    for key, default in hp_block.items():
        if key == "mode":
            continue
        kind = type(default)
        ap.add_argument(f"--{key}", type=kind, default=None, metavar=kind.__name__.upper(),
                        help=f"{notes.get(key, '')} (default: {default!r})".strip())
    args = ap.parse_args(argv)
    hp = dict(hp_block)
    hp.update(presets[args.preset])
    hp.update({k: v for k, v in vars(args).items() if k in hp_block and v is not None})
    hp["mode"], hp["preset"] = args.mode or hp["mode"], args.preset
    if hp["mode"] not in ("train", "inference"):
        raise cli.UserError(f"mode {hp['mode']!r} in the HP block of main_cp.py: use 'train' or 'inference'")
    return resolve_paths(hp)


def resolve_paths(hp: dict) -> dict:
    """dataset/, exp/, logs/, inference/, videos/ are the repository's folders from any working folder."""
    for key in PATH_KEYS:
        if hp.get(key):
            hp[key] = str(paths.repo_path(hp[key]))
    return hp
