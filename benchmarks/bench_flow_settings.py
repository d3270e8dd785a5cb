"""Could a cheaper optical flow keep the beats?  Farneback settings against today's fast mode.

The flow is ~95 % of the video analysis' CPU time (about 7.9 of 8.3 ms per frame pair at
180p), so the analysis only gets much faster with less flow work.  This runs the analysis with
each setting on the synthetic 60 s clip (benchmarks/bench_video.py makes it) and the demo video,
and reports CPU ms per frame and the F-measure of the visual beats against today's fast mode
(a beat matches within 70 ms, each at most once).  The issue's bar is F >= 0.95 on every clip.
Writes benchmarks/results/flow_settings.json.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("CMT_NO_PROGRESS", "1")

import bench_video  # noqa: E402
from vidscore.video import analysis, flow  # noqa: E402

VARIANTS = {
    "today (levels L, winsize 15, 3 iterations)": lambda p: p,
    "2 iterations": lambda p: dataclasses.replace(p, iterations=2),
    "winsize 11": lambda p: dataclasses.replace(p, winsize=11),
    "one level fewer": lambda p: dataclasses.replace(p, levels=max(0, p.levels - 1)),
}


def f_measure(ref: list[float], est: list[float], tol: float = 0.07) -> float:
    used, hit = set(), 0
    for r in ref:
        near = [i for i, e in enumerate(est) if abs(e - r) <= tol and i not in used]
        if near:
            used.add(min(near, key=lambda i: abs(est[i] - r)))
            hit += 1
    p, rc = hit / max(1, len(est)), hit / max(1, len(ref))
    return 2 * p * rc / max(1e-9, p + rc)


def main() -> None:
    clips = [bench_video.make_synthetic(bench_video.DATA / "synthetic_60s_360p30.mp4", 60), ROOT / "videos" / "demo.mp4"]
    farneback = flow.farneback
    ref, rows = {}, []
    try:
        for name, change in VARIANTS.items():
            flow.farneback = lambda a, b, p, change=change: farneback(a, b, change(p))
            for clip in clips:
                t = time.process_time()
                a = analysis.analyse(clip, progress=False, use_cache=False)
                cpu = time.process_time() - t
                beats = [b["start_time"] for b in a.metadata["vbeats"]]
                ref.setdefault(clip.name, beats)
                rows.append({"setting": name, "clip": clip.name, "cpu_ms_per_frame": 1e3 * cpu / a.metadata["n_frames"],
                             "beats": len(beats), "tempo": a.metadata["tempo"], "F": f_measure(ref[clip.name], beats)})
                r = rows[-1]
                print(f"| {name} | {clip.name} | {r['cpu_ms_per_frame']:.2f} | {r['beats']} | {r['tempo']:.1f} | {r['F']:.3f} |",
                      flush=True)
    finally:
        flow.farneback = farneback
    out = ROOT / "benchmarks" / "results" / "flow_settings.json"
    out.write_text(json.dumps({"load": os.getloadavg(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
