"""Validation loss of a checkpoint per source of its training corpus (music21, openmsx, blupi, ...).

    python benchmarks/val_loss_per_source.py [--ckpt exp/bundled/model.pt] [--data dataset/bundled.npz]

The loss is training.evaluate's (token-weighted over the songs, mean over the fields), on each
source's validation sequences (and, for comparison, on as many of its training sequences,
evenly spread: a large gap says the source was learnt by heart).  Writes
benchmarks/results/val_loss_per_source.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]
os.environ.setdefault("CMT_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidscore.training import loop as training  # noqa: E402
from vidscore.model.cmt import load_checkpoint  # noqa: E402


def per_source(model, data: dict, max_songs: int, hp: dict) -> dict:
    meta = data["metadata"] or []
    sources = np.array([m.get("source", "?") for m in meta]) if meta else np.array(["all"] * len(data["x"]))
    out = {}
    for name in dict.fromkeys(sources.tolist()):
        row = {}
        for split, label in ((1, "validation"), (0, "train")):
            idx = np.flatnonzero((sources == name) & (data["split"] == split))
            if split == 0:   # as many training sequences as validation ones (at least 8), evenly spread
                n = min(len(idx), max(8, row.get("validation_sequences", 0)), max_songs)
                idx = idx[np.linspace(0, len(idx) - 1, n).astype(int)] if n else idx[:0]
            elif len(idx) > max_songs:
                idx = idx[np.linspace(0, len(idx) - 1, max_songs).astype(int)]
            loss, parts = training.evaluate(model, data, idx, hp, torch.device("cpu"))
            row[f"{label}_sequences"] = int(len(idx))
            row[f"{label}_tokens"] = int(data["seq_len"][idx].sum())
            row[f"{label}_loss"] = None if np.isnan(loss) else round(loss, 4)
            row[f"{label}_fields"] = {k: round(v, 4) for k, v in parts.items()}
        out[name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=str(ROOT / "exp" / "bundled" / "model.pt"))
    ap.add_argument("--data", default=str(ROOT / "dataset" / "bundled.npz"))
    ap.add_argument("--max_songs", type=int, default=200, help="at most this many sequences per source and split")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "val_loss_per_source.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    model = load_checkpoint(args.ckpt).float().eval()
    data = training.load_data(args.data)
    hp = {"batch_size": 8, "max_tokens": 16384, "max_len": 2048}
    table = per_source(model, data, args.max_songs, hp)
    info = model.checkpoint_info or {}
    result = {"ckpt": str(args.ckpt), "data": str(args.data), "epoch": info.get("epoch"),
              "checkpoint_val_loss": info.get("val_loss"), "sources": table,
              "seconds": round(time.time() - t0, 1), "load_average": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("| source | validation sequences (tokens) | validation loss | training sequences (tokens) | training loss |")
    print("|---|---|---|---|---|")
    for name, r in table.items():
        print(f"| {name} | {r['validation_sequences']} ({r['validation_tokens']}) | {r['validation_loss']} | "
              f"{r['train_sequences']} ({r['train_tokens']}) | {r['train_loss']} |")
    print(f"({result['seconds']} s, load average {result['load_average'][0]:.1f}; written {args.out})")


if __name__ == "__main__":
    main()
