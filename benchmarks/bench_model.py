"""Speed of the CMT model at the published size (random weights) on this machine.

Measures
  1. generation: ms per compound token per song with the recurrent form (start/step plus
     the type and field heads), at batch 1 and batch 8, against the memory-bandwidth bound
     (bytes of the weights read once per step / 10 GB/s, and / the measured GEMV bandwidth);
  2. the original way (re-running the whole prefix for every new token): time of one
     full forward at prefix lengths 1,000 and 4,000, the per-token ratio there, and the
     ratio for generating the whole song (sum over prefix lengths, linear fit);
  3. training tokens/s (forward + backward + Adam step) per attention backend.

Prints a table and writes benchmarks/results/model.json.  --quick for a short sanity run.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidscore.model import attention  # noqa: E402
from vidscore import cli  # noqa: E402
from vidscore.model import cmt as M  # noqa: E402
from vidscore.model import sampling  # noqa: E402

ASSUMED_GBPS = 10.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short run: fewer steps, shorter sequences")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--steps", type=int, default=None, help="timed generation steps per batch size")
    p.add_argument("--parts", default="gen,orig,train",
                   help="comma-separated subset of gen (generation), orig (original way; needs gen), "
                        "train (training tokens/s); default all")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "int8"],
                   help="weights for the generation part (main_cp.py --dtype auto uses bfloat16 on CPUs with "
                   "native bfloat16); the other parts stay float32")
    p.add_argument("--eager", action="store_true",
                   help="time generation without the traced step (CMT.freeze), for comparison")
    p.add_argument("--out", default=None, help="default benchmarks/results/model.json (model_bfloat16.json)")
    return p.parse_args()


def rand_tokens(cfg, B, L, g):
    cols = [torch.randint(0, n, (B, L), generator=g) for n in cfg.n_class[:8]]
    cols.append(torch.randint(0, 5000, (B, L), generator=g).sort(dim=1).values)
    return torch.stack(cols, -1)


def streamed_bytes(m) -> int:
    """Bytes read per generation step: every weight except the embedding tables (one row each)."""
    total = 0
    for name, p in m.named_parameters():
        if not name.endswith("lut.weight"):
            total += p.numel() * p.element_size()
    return total


def gemv_bandwidth() -> float:
    """GB/s of a large fp32 matrix-vector product (the batch-1 kernel), best of 3 runs."""
    W = torch.randn(4096, 8192)
    x = torch.randn(1, 8192)
    for _ in range(3):
        torch.nn.functional.linear(x, W)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(20):
            torch.nn.functional.linear(x, W)
        best = min(best, (time.perf_counter() - t) / 20)
    return W.numel() * 4 / best / 1e9


def time_generation(m, B, steps, g) -> dict:
    cfg = m.config
    init = torch.stack([torch.randint(0, n, (B, 7), generator=g) for n in cfg.init_n_class], -1)
    toks = rand_tokens(cfg, B, steps + 10, g)
    with torch.inference_mode():
        state = m.start(init)
        for t in range(10):  # warm-up
            h, state = m.step(toks[:, t], state)
        step_only, full, sampled = [], [], []
        rngs = [np.random.default_rng(b) for b in range(B)]
        for t in range(10, steps + 10):
            # the step and the heads; sampling as generation does it, every field drawn
            # (generation skips the fields no song uses at a step: this is its most)
            t0 = time.perf_counter()
            h, state = m.step(toks[:, t], state)
            t1 = time.perf_counter()
            ty = m.predict_type(h)
            t2 = time.perf_counter()
            types = torch.as_tensor(sampling.sample(ty, "type", rngs))
            t3 = time.perf_counter()
            fields = m.predict_fields(h, types)
            t4 = time.perf_counter()
            for name, logits in fields.items():
                sampling.sample(logits, name, rngs)
            t5 = time.perf_counter()
            step_only.append(t1 - t0)
            full.append((t2 - t0) + (t4 - t3))
            sampled.append((t3 - t2) + (t5 - t4))
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    return {"batch": B, "steps": steps,
            "ms_per_step": 1e3 * med(full), "ms_per_token_per_song": 1e3 * med(full) / B,
            "ms_per_step_mean": 1e3 * sum(full) / len(full), "ms_per_step_min": 1e3 * min(full),
            "ms_per_step_backbone_only": 1e3 * med(step_only),
            "ms_sampling_per_step": 1e3 * med(sampled),
            "ms_per_token_per_song_with_sampling": 1e3 * (med(full) + med(sampled)) / B}


def time_full_forward(m, L, g, backend, repeats) -> float:
    """Seconds for the original's per-token work at prefix length L (batch 1)."""
    cfg = m.config
    x = rand_tokens(cfg, 1, L, g)
    init = torch.zeros(1, 7, 3, dtype=torch.long)
    m.config.attention = backend
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            t = time.perf_counter()
            h = m.forward_hidden(x, init)[:, -1]
            ty = m.proj_type(h)
            m.heads(h, ty.argmax(-1))
            best = min(best, time.perf_counter() - t)
    m.config.attention = "auto"
    return best


def time_training(m, backend, B, L, iters, g) -> dict:
    cfg = m.config
    seq = rand_tokens(cfg, B, L + 1, g)
    x, y = seq[:, :-1], seq[:, 1:]
    init = torch.zeros(B, 7, 3, dtype=torch.long)
    mask = torch.ones(B, L)
    m.set_attention(backend)
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    times = []
    for i in range(iters + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, _ = m.loss(x, y, mask, init)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 3.0)
        opt.step()
        if i:  # first iteration is warm-up
            times.append(time.perf_counter() - t)
    m.eval()
    m.set_attention("auto")
    best = min(times)
    return {"backend": backend, "batch": B, "length": L, "iters": iters,
            "s_per_iter": best, "tokens_per_s": B * L / best}


def original_way(m, gen, lengths, g) -> dict:
    backends = attention.available_backends()
    fwd = {b: {L: time_full_forward(m, L, g, b, 1 if L > 2000 else 2) for L in lengths} for b in backends}
    fastest = min(backends, key=lambda b: fwd[b][lengths[-1]])
    t1 = gen[0]["ms_per_step"] / 1e3
    # linear fit t(L) = a + b L through the two lengths (the forward is linear in L)
    (L0, L1), (f0, f1) = lengths, (fwd[fastest][lengths[0]], fwd[fastest][lengths[1]])
    b = (f1 - f0) / (L1 - L0)
    a = f0 - b * L0
    ratios = {}
    for L in lengths:
        total = a * L + b * L * (L + 1) / 2  # sum of the forward times over prefixes 1..L
        ratios[str(L)] = {"orig_s_at_prefix": fwd[fastest][L], "per_token_ratio": fwd[fastest][L] / t1,
                          "whole_song_orig_s_est": total, "whole_song_recurrent_s": L * t1,
                          "whole_song_ratio": total / (L * t1)}
    return {"backend": fastest, "forward_s": {b: {str(k): v for k, v in d.items()} for b, d in fwd.items()},
            "ratios": ratios}


def main():
    args = parse_args()
    parts = set(args.parts.split(","))
    if not parts <= {"gen", "orig", "train"} or ("orig" in parts and "gen" not in parts):
        raise cli.UserError(f"--parts {args.parts}: use a subset of gen,orig,train; orig needs gen")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    m = M.CMT(M.ModelConfig()).eval()
    n_params = M.count_parameters(m)
    nbytes = streamed_bytes(m)
    if args.dtype != "float32":
        if parts != {"gen"}:
            raise cli.UserError(f"--dtype {args.dtype} times generation only: add --parts gen")
        if args.dtype == "int8":
            m.quantize_int8()
            nbytes //= 4   # the Linear weights (nearly all the streamed bytes) in one byte each
        else:
            m = m.to(torch.bfloat16)
            nbytes = streamed_bytes(m)
    args.out = args.out or str(ROOT / "benchmarks" / "results" /
                               ("model.json" if args.dtype == "float32" else f"model_{args.dtype}.json"))
    bw = gemv_bandwidth()
    bound = nbytes / (ASSUMED_GBPS * 1e9) * 1e3
    res = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                    "torch": torch.__version__, "gemv_GBps": bw, "quick": args.quick, "dtype": args.dtype,
                    "traced_step": not args.eager,
                    "fast_transformers": attention.fast_transformers_available()},
        "model": {"parameters": n_params, "streamed_weight_MB": nbytes / 1e6},
        "bound_ms_per_step": {"at_10GBps": bound, "at_measured_GBps": nbytes / (bw * 1e9) * 1e3},
    }
    print(f"CMT {n_params / 1e6:.2f} M parameters, {nbytes / 1e6:.0f} MB of weights streamed per step, "
          f"{args.threads} threads, GEMV {bw:.1f} GB/s")
    print(f"bound per step: {bound:.1f} ms at 10 GB/s, "
          f"{res['bound_ms_per_step']['at_measured_GBps']:.1f} ms at the measured GEMV rate")

    if "gen" in parts:
        if not args.eager:
            m.freeze()   # the traced step, as main_cp.py generates (CMT.freeze); training drops it
        steps = args.steps or (40 if args.quick else 300)
        gen = res["generation"] = [time_generation(m, B, steps, g) for B in (1, 8)]
        res["batch1_over_10GBps_bound"] = gen[0]["ms_per_step"] / bound
        floor = res["bound_ms_per_step"]["at_measured_GBps"]
        print("\n| generation | ms/step | ms/token/song | backbone only | + sampling, ms/token/song "
              "| x measured floor (batch 1: with sampling) |")
        print("|---|---|---|---|---|---|")
        for r in gen:
            print(f"| batch {r['batch']} | {r['ms_per_step']:.2f} | {r['ms_per_token_per_song']:.2f} | "
                  f"{r['ms_per_step_backbone_only']:.2f} | {r['ms_per_token_per_song_with_sampling']:.2f} | "
                  f"{r['ms_per_token_per_song_with_sampling'] * r['batch'] / floor:.2f} |")
    if "orig" in parts:
        orig = res["original_way"] = original_way(m, gen, [250, 1000] if args.quick else [1000, 4000], g)
        print(f"\n| original way ({orig['backend']}) | full forward | per-token ratio | whole-song ratio (est.) |")
        print("|---|---|---|---|")
        for L, r in orig["ratios"].items():
            print(f"| {L} tokens | {r['orig_s_at_prefix'] * 1e3:.0f} ms | {r['per_token_ratio']:.0f}x | "
                  f"{r['whole_song_ratio']:.0f}x |")
    if "train" in parts:
        train_L, train_B, iters = (256, 2, 2) if args.quick else (1024, 2, 3)
        train = res["training"] = [time_training(m, b, train_B, train_L, iters, g)
                                   for b in attention.available_backends()]
        print(f"\n| training (batch {train_B} x {train_L}) | s/iter | tokens/s |")
        print("|---|---|---|")
        for r in train:
            print(f"| {r['backend']} | {r['s_per_iter']:.2f} | {r['tokens_per_s']:.0f} |")

    with cli.atomic_path(args.out) as tmp:
        Path(tmp).write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    cli.run(main)
