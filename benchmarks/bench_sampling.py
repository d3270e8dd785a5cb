"""Time of sampling one compound token's fields: sampling.sample (NumPy, one field at a time)
against fast_sampling.sample (torch; the type, then the six other fields in one call).

The published vocabulary sizes, batch 1 and 8, the allowed-class masks given as arrays /
tensors.  Prints ms per token (all fields, all songs) and writes benchmarks/results/sampling.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidscore.model import fast_sampling  # noqa: E402
from vidscore.model import sampling  # noqa: E402

FIELDS = ["barbeat", "density", "pitch", "duration", "instr", "strength"]
SIZES = [18, 18, 129, 18, 6, 20]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sampling.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    t = torch.tensor([sampling.SAMPLING[f][0] for f in FIELDS]).unsqueeze(1)
    p = torch.tensor([sampling.SAMPLING[f][1] or float("nan") for f in FIELDS]).unsqueeze(1)
    res = {"load_before": os.getloadavg(), "rows": []}
    for B in (1, 8):
        type_logits = torch.randn(B, 3, generator=g)
        type_mask = torch.ones(B, 3, dtype=torch.bool)
        logits = [torch.randn(B, V, generator=g) for V in SIZES]
        masks = [torch.ones(B, V, dtype=torch.bool) for V in SIZES]
        np_masks = [m.numpy() for m in masks]

        def numpy_way():
            sampling.sample(type_logits, "type", rng, type_mask.numpy())
            for f, x, m in zip(FIELDS, logits, np_masks):
                sampling.sample(x, f, rng, m)

        def torch_way():
            fast_sampling.sample(type_logits, type_mask, 1.0, 0.9, torch.rand(B, generator=g))
            X, M = fast_sampling.stack(logits, masks)
            fast_sampling.sample(X, M, t, p, torch.rand(len(FIELDS), B, generator=g))

        row = {"batch": B}
        for name, fn in (("numpy", numpy_way), ("torch", torch_way)):
            for _ in range(20):
                fn()
            times = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            row[f"{name}_ms"] = 1e3 * sorted(times)[len(times) // 2]
        res["rows"].append(row)
    print(f"load before: {' / '.join(f'{x:.2f}' for x in res['load_before'])} (1/5/15 min)\n")
    print("| batch | sampling.sample (NumPy, per field) | fast_sampling (torch, fields together) |")
    print("|---|---|---|")
    for r in res["rows"]:
        print(f"| {r['batch']} | {r['numpy_ms']:.2f} ms/token | {r['torch_ms']:.2f} ms/token |")
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
