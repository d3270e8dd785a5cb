"""Two generations at once on the shared cores: torch's default threads vs the thread policy.

Starts two processes together, each generating ``--steps`` tokens at batch 1 with the
published-size model (random weights, float32), first with torch's default (one thread per
core in each process, as before the policy), then with ``compute.thread_policy`` (the cores not
busy when the process starts), re-checked every step as generation does (``recheck_threads``).
Prints the machine's load before each pair, each process's threads (at the start -> at the
end) and ms per step (median and whole run), and writes benchmarks/results/threads.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def worker(policy: str, steps: int) -> None:
    import torch

    from vidscore import compute
    from vidscore.model.cmt import CMT, ModelConfig
    n = compute.thread_policy(0) if policy == "policy" else torch.get_num_threads()
    torch.manual_seed(0)
    m = CMT(ModelConfig()).eval()
    init = torch.zeros(1, 7, 3, dtype=torch.long)
    tok = torch.ones(1, 9, dtype=torch.long)
    times = []
    with torch.inference_mode():
        state = m.start(init)
        t_all = time.perf_counter()
        for _ in range(steps):
            t = time.perf_counter()
            h, state = m.step(tok, state)
            m.predict_fields(h, m.predict_type(h).argmax(-1))
            if policy == "policy":
                compute.recheck_threads()   # as generation does every step (pipeline.run_one)
            times.append(time.perf_counter() - t)
        total = time.perf_counter() - t_all
    print(json.dumps({"threads": n, "threads_end": torch.get_num_threads(),
                      "ms_median": 1e3 * sorted(times)[len(times) // 2],
                      "ms_mean": 1e3 * total / steps, "s_total": total}))


def pair(policy: str, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    load = os.getloadavg()
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", policy, "--steps", str(steps)],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    out = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {"policy": policy, "load_before": [round(x, 2) for x in load], "processes": out}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="tokens per process (default 300)")
    ap.add_argument("--worker", choices=["default", "policy"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "threads.json"))
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.steps)
    res = [pair(p, args.steps) for p in ("default", "policy", "default", "policy")]
    print(f"{os.cpu_count()} cores; two processes at once, {args.steps} tokens each, batch 1, float32\n")
    print("| threads | load before (1/5/15 min) | threads per process | ms/token (median) | ms/token (mean) |")
    print("|---|---|---|---|---|")
    for r in res:
        ps = r["processes"]
        load = " / ".join(map(str, r["load_before"]))
        threads = ", ".join(str(p["threads"]) + (f" -> {p['threads_end']}" if p.get("threads_end", p["threads"])
                                                 != p["threads"] else "") for p in ps)
        med = ", ".join(f"{p['ms_median']:.1f}" for p in ps)
        mean = ", ".join(f"{p['ms_mean']:.1f}" for p in ps)
        print(f"| {r['policy']} | {load} | {threads} | {med} | {mean} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
