"""The GPU check of issue 16, as one script (runs on the CPU too, for a dry run).

    python benchmarks/bench_gpu.py [--device cuda] [--train_data dataset/music21.npz] [--steps 150]

1. trains the published-size model on the corpus twice, in float32 and with ``--amp 1``
   (bfloat16 autocast), ``--steps`` optimizer steps each (``--epochs`` epochs of
   ``--steps / --epochs`` steps), and reads tokens/s and the loss curve from each run's log;
2. times generation (one step with every head) at batch 1 and 8, float32 and bfloat16, eager
   and traced (CMT.freeze, what generation runs);
3. times the whole job on the 60 s video (benchmarks/bench_pipeline.py, published size).

Prints the figures with the device's name and writes benchmarks/results/gpu.json.
``--tiny`` uses a one-layer model and few steps: a dry run that checks the script on a CPU.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("CMT_NO_PROGRESS", "1")

import torch  # noqa: E402

from vidscore import compute  # noqa: E402
import main_cp  # noqa: E402
from vidscore.training import loop as training  # noqa: E402
from vidscore.model.cmt import CMT, ModelConfig  # noqa: E402

TINY = dict(n_layer=1, d_model=32, n_head=2, d_ff=64, emb_sizes="8,4,8,16,8,4,8", time_emb_size=8, init_emb_size=8)


def train_runs(args, tmp: Path) -> dict:
    out = {}
    for amp in (0, 1):
        hp = dict(main_cp.HP, mode="train", preset="published", train_data=args.train_data, name=f"gpu_amp{amp}",
                  exp_dir=str(tmp / "exp"), log_dir=str(tmp / "logs"), device=args.device, amp=amp,
                  epochs=args.epochs, steps_per_epoch=max(1, args.steps // args.epochs), max_len=args.max_len,
                  val_max_songs=args.val_songs, **(TINY if args.tiny else {}))
        t = time.perf_counter()
        training.train(hp)
        rows = list(csv.DictReader(open(tmp / "logs" / f"gpu_amp{amp}.csv")))
        out["amp" if amp else "float32"] = {
            "seconds": time.perf_counter() - t,
            "tokens_per_s": [float(r["tokens_per_s"]) for r in rows],
            "train_loss": [float(r["train_loss"]) for r in rows], "val_loss": [float(r["val_loss"]) for r in rows]}
    return out


def generation(args) -> dict:
    device = compute.inference_device(args.device)
    torch.manual_seed(0)
    cfg = ModelConfig(**{k: (list(map(int, v.split(","))) if k == "emb_sizes" else v) for k, v in TINY.items()}) \
        if args.tiny else ModelConfig()
    base = CMT(cfg).eval().to(device)
    out = {}
    for name in ("float32", "bfloat16"):
        m = base if name == "float32" else CMT(cfg).eval().to(device).to(torch.bfloat16)
        for traced in (False, True):   # the eager step, then the traced one generation runs (CMT.freeze)
            if traced:
                m.freeze()
            for B in (1, 8):
                out[f"{name}{' traced' if traced else ''} batch {B}"] = \
                    1e3 * compute.time_steps(m, B, steps=20, rounds=5) / B
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--train_data", default=str(ROOT / "dataset" / "music21.npz"))
    ap.add_argument("--steps", type=int, default=150, help="optimizer steps per training run")
    ap.add_argument("--epochs", type=int, default=5, help="validations per training run (points of the loss curve)")
    ap.add_argument("--max_len", type=int, default=2048)
    ap.add_argument("--val_songs", type=int, default=100)
    ap.add_argument("--tiny", action="store_true", help="a one-layer model: a dry run of the script on a CPU")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: train,gen,job")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    device = compute.inference_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else compute.processor_name()
    res = {"device": name, "torch": torch.__version__, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        if "train" not in skip:
            res["training"] = train_runs(args, Path(tmp))
            for k, r in res["training"].items():
                print(f"training {k}: {r['tokens_per_s'][-1]:.0f} tokens/s, train loss {r['train_loss']}, "
                      f"val loss {r['val_loss']} ({r['seconds']:.0f} s)", flush=True)
        if "gen" not in skip:
            res["generation_ms_per_token_per_song"] = generation(args)
            for k, v in res["generation_ms_per_token_per_song"].items():
                print(f"generation {k}: {v:.2f} ms/token/song", flush=True)
        if "job" not in skip:
            out = Path(tmp) / "pipeline.json"
            cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_pipeline.py"), "--models", "published",
                   "--device", args.device, "--out", str(out)] + (["--seconds", "5"] if args.tiny else [])
            subprocess.run(cmd, check=True)
            res["whole_job"] = json.loads(out.read_text())
    print(f"device: {name}")
    dest = ROOT / "benchmarks" / "results" / ("gpu_dry_run.json" if args.tiny else "gpu.json")
    dest.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
