"""Wall time from a 60 s video to the finished mp4 (issue 6), per stage.

    python benchmarks/bench_pipeline.py [--seconds 60] [--models bundled,published]

Makes a 60 s, 360p, 30 fps video procedurally, then runs the whole job (analysis, generation,
MIDI, FluidSynth, ffmpeg) once with the bundled model and once with a published-size model
(12 layers, d_model 512, random weights: the time per token does not depend on the weights,
but the number of tokens does; random weights write about as many as the per-bar cap allows).
The precision ``--dtype auto`` chooses is timed once before (a one-off per machine, cached) and
reported apart; the analysis cache is cold.  The stages are timed in this process; the job is
then run once more as the user's command (``main_cp.py``, a fresh process), whose wall time
includes Python's start, the imports and the thread policy.
Prints a table and writes benchmarks/results/pipeline.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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
from vidscore.generation import job as pipeline  # noqa: E402
from vidscore import rendering  # noqa: E402
from make_demo_video import render_demo  # noqa: E402
from vidscore.model.cmt import CMT, ModelConfig, load_checkpoint, save_checkpoint  # noqa: E402


def timed_run(video: Path, ckpt: Path, out: Path, dtype: str, seed: int = 0, device: str = "auto") -> dict:
    times = {}
    t0 = time.perf_counter()
    model = load_checkpoint(ckpt, device=compute.inference_device(device))
    used = compute.prepare(model, dtype)
    times["load model"] = time.perf_counter() - t0
    opts = pipeline.Options(out_dir=str(out), seed=seed, render=False)
    t = time.perf_counter()
    rows, tempo, duration, _, _ = pipeline.video_rows(video, opts)
    times["video analysis"] = time.perf_counter() - t
    t = time.perf_counter()
    pipeline.run([out / f"{video.stem}.npz"], model, opts, log=lambda *a: None)
    times["generation + MIDI"] = time.perf_counter() - t
    mid = out / f"{video.stem}_0.mid"
    t = time.perf_counter()
    wav = rendering.render_wav(mid, out / "song.wav")
    times["FluidSynth"] = time.perf_counter() - t
    t = time.perf_counter()
    rendering.mux(video, wav, out / "song.mp4")
    times["ffmpeg mux"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    n_tokens = json.loads((out / f"{video.stem}_0.json").read_text())["n_tokens"]
    return {"seconds": times, "tokens": n_tokens, "video_seconds": duration, "tempo": tempo, "dtype": used}


def command_run(video: Path, ckpt: Path, out: Path, args) -> float:
    """Wall seconds of the user's command, ``python src/main_cp.py --videos V --ckpt C``, in a
    fresh process: the imports, the thread policy and every stage above, with the video's
    analysis cold (a new cache folder holding only the precision choice already made)."""
    cache = out / "command_cache"
    cache.mkdir()
    shutil.copy(out / "cache" / "dtype.json", cache / "dtype.json")
    cmd = [sys.executable, str(ROOT / "src" / "main_cp.py"), "--mode", "inference", "--videos", str(video),
           "--ckpt", str(ckpt), "--out_dir", str(out / "command"), "--dtype", args.dtype, "--device", args.device,
           "--threads", str(args.requested_threads)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "CMT_CACHE_DIR": str(cache)})
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--models", default="bundled,published")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default 0: the thread policy, as main_cp.py)")
    ap.add_argument("--dtype", default="auto", help="generation dtype, as main_cp.py --dtype (default auto)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda, as main_cp.py --device (default auto)")
    ap.add_argument("--out", default=None, help="default benchmarks/results/pipeline[_DTYPE].json")
    args = ap.parse_args()
    load_before = os.getloadavg()
    args.requested_threads = args.threads
    args.threads = compute.thread_policy(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = Path(render_demo(str(tmp / "bench.mp4"), seconds=args.seconds, fps=30, width=640, height=360))
        for name in args.models.split(","):
            if name == "bundled":
                ckpt = pipeline.DEFAULT_CKPT
                if not ckpt.is_file():
                    print("no bundled model (exp/bundled/model.pt): skipped")
                    continue
            else:
                torch.manual_seed(0)
                ckpt = tmp / "published.pt"
                save_checkpoint(ckpt, CMT(ModelConfig()), vocab={"instruments": [1, 2, 3, 4, 5]})
            out = tmp / name
            out.mkdir()
            os.environ["CMT_CACHE_DIR"] = str(out / "cache")   # a cold analysis for every model
            # --dtype auto times the precisions once per machine and model size, then reads its
            # cache (compute.fastest): that one-off is timed apart, the job as a user runs it again
            t = time.perf_counter()
            compute.prepare(load_checkpoint(ckpt, device=compute.inference_device(args.device)), args.dtype)
            choose = time.perf_counter() - t
            results[name] = timed_run(video, ckpt, out, args.dtype, device=args.device)
            results[name]["precision_choice_one_off_s"] = choose
            results[name]["command_s"] = command_run(video, ckpt, out, args)
            results[name]["parameters"] = sum(p.numel() for p in load_checkpoint(ckpt).parameters())
    stages = ["load model", "video analysis", "generation + MIDI", "FluidSynth", "ffmpeg mux", "total"]
    print(f"\n{args.seconds:.0f} s video, 640x360 @ 30 fps, {args.threads} threads, dtype {args.dtype}, "
          f"load before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| stage | " + " | ".join(f"{m} ({r['parameters'] / 1e6:.1f} M, {r['dtype']}, {r['tokens']} tokens)"
                                     for m, r in results.items()) + " |")
    print("|---|" + "---:|" * len(results))
    for s in stages:
        print(f"| {s} | " + " | ".join(f"{r['seconds'][s]:.1f} s" for r in results.values()) + " |")
    print("| the same job as the command `main_cp.py --videos V` (a fresh process: imports included) | " +
          " | ".join(f"{r['command_s']:.1f} s" for r in results.values()) + " |")
    print("| (once per machine: choosing the precision, then cached) | " +
          " | ".join(f"{r['precision_choice_one_off_s']:.1f} s" for r in results.values()) + " |")
    out = Path(args.out) if args.out else \
        ROOT / "benchmarks" / "results" / ("pipeline.json" if args.dtype == "auto" else f"pipeline_{args.dtype}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"video_seconds": args.seconds, "threads": args.threads, "dtype": args.dtype,
                                "load_before": load_before, "load_after": os.getloadavg(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
