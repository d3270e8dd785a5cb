"""Does a lower precision keep the music?  The bundled model in bfloat16 and int8 against float32.

Generates songs with the float32 model for the demo video, then reads the same songs with
each precision (teacher-forced) and reports, per predicted field, the mean KL divergence of
its next-token distribution from float32's, how often its most likely class is float32's, and
the log-likelihood each precision gives the songs.  bfloat16 is what ``--dtype auto`` already
uses where it is faster, so it is the yardstick: a precision that moves the distributions no
more than bfloat16 does keeps the music as well as today's default.  Writes
benchmarks/results/precision.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("CMT_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidscore.generation import generate as generation  # noqa: E402
from vidscore.generation import job as pipeline  # noqa: E402
from vidscore.model.cmt import load_checkpoint  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=str(ROOT / "videos" / "demo.mp4"))
    ap.add_argument("--songs", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "precision.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from vidscore.video import analyse_video, metadata_to_rows
    rows = metadata_to_rows(analyse_video(args.video, progress=False))
    ref = load_checkpoint(pipeline.DEFAULT_CKPT)
    init = pipeline.init_block(ref, pipeline.Options())
    songs = generation.generate(ref, rows, init, args.songs, seed=0)
    L = min(len(s.tokens) for s in songs)
    seq = torch.as_tensor(np.stack([np.asarray(s.tokens[:L]) for s in songs]), dtype=torch.long)
    x, y = seq[:, :-1], seq[:, 1:]
    init_t = torch.as_tensor(np.repeat(init[None], args.songs, 0), dtype=torch.long)
    models = {"float32": ref}
    models["bfloat16"] = load_checkpoint(pipeline.DEFAULT_CKPT).to(torch.bfloat16)
    models["int8"] = load_checkpoint(pipeline.DEFAULT_CKPT).quantize_int8()
    with torch.inference_mode():
        logp = {k: {f: v.float().log_softmax(-1) for f, v in m(x, y, init_t).items()} for k, m in models.items()}
    fields = list(logp["float32"])
    res = {"songs": args.songs, "tokens_per_song": L - 1, "load": os.getloadavg(), "precisions": {}}
    for k in ("float32", "bfloat16", "int8"):
        r = {}
        for f in fields:
            p32, pk = logp["float32"][f], logp[k][f]
            col = ref.layout.field(f).col
            r[f] = {"kl": float((p32.exp() * (p32 - pk)).sum(-1).mean()),
                    "top1_agree": float((p32.argmax(-1) == pk.argmax(-1)).float().mean()),
                    "nll": float(-pk.gather(-1, y[..., col:col + 1]).mean())}
        res["precisions"][k] = r
    print(f"{args.songs} songs of {L - 1} tokens generated in float32, read by each precision "
          f"(load {res['load'][0]:.1f})\n")
    print("| field | KL bf16 | KL int8 | top-1 = fp32: bf16 | int8 | NLL fp32 | bf16 | int8 |")
    print("|---|---|---|---|---|---|---|---|")
    P = res["precisions"]
    for f in fields:
        print(f"| {f} | {P['bfloat16'][f]['kl']:.4f} | {P['int8'][f]['kl']:.4f} | "
              f"{P['bfloat16'][f]['top1_agree']:.3f} | {P['int8'][f]['top1_agree']:.3f} | "
              f"{P['float32'][f]['nll']:.3f} | {P['bfloat16'][f]['nll']:.3f} | {P['int8'][f]['nll']:.3f} |")
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
