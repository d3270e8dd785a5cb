"""A PNG summary of one analysis: the envelope with peaks and chosen beats (and, when given,
the beats the music was forced to follow), the motion, and the scene cuts (dashed lines)."""
from __future__ import annotations

import numpy as np

from vidscore import cli


def plot_analysis(analysis, path, title: str | None = None, forced_s=None,
                  forced_label: str = "forced beats") -> None:
    """Write a two-panel figure to ``path`` (PNG), atomically.  ``forced_s``: times (s) of the
    beats the music was made to accent, drawn as markers on the envelope panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = analysis.metadata
    fps = analysis.features.fps
    env = analysis.envelope
    t = np.arange(len(env)) / fps
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    ax1.plot(t, env, lw=0.8, color="0.3", label="impact envelope")
    if len(analysis.peaks):
        ax1.plot(analysis.peaks / fps, env[analysis.peaks], "o", ms=3, color="tab:orange", label="peaks")
    if len(analysis.beats):
        ax1.vlines(analysis.beats / fps, env.min() if len(env) else 0, 1.0, color="tab:red", lw=1.0,
                   label="visual beats")
    if forced_s is not None and len(forced_s):
        top = float(env.max()) if len(env) else 1.0
        ax1.plot(np.asarray(forced_s, float), np.full(len(forced_s), top * 1.05), "v", ms=6, color="tab:purple",
                 label=forced_label)
    cuts = meta.get("scene_cuts") or []
    for ax in (ax1, ax2):
        for k, c in enumerate(cuts):
            ax.axvline(c, color="tab:cyan", lw=2.0, ls="--", label="scene cut" if k == 0 and ax is ax1 else None)
    ax1.set_ylabel("impact (normalised)")
    ax1.legend(loc="upper right", fontsize=8)
    ax1.set_title(title or f"{meta.get('video', '')}  tempo {meta['tempo']:.2f} bpm "
                  f"({meta.get('tempo_source', '')}), {len(meta['vbeats'])} visual beats, "
                  f"{len(meta.get('scene_cuts') or [])} scene cuts")
    motion = analysis.features.motion
    ax2.plot(np.arange(len(motion)) / fps, motion, lw=0.6, color="tab:blue", label="motion speed per frame")
    bar_s = 240.0 / meta["tempo"]
    fmpb = meta["flow_magnitude_per_bar"]
    edges = np.arange(len(fmpb) + 1) * bar_s
    ax2.stairs(fmpb, edges, color="tab:green", lw=2.0, label="mean per bar")
    for e in edges:
        ax2.axvline(e, color="0.85", lw=0.5, zorder=0)
    ax2.set_xlabel("time (s)")
    ax2.set_ylabel("flow (360p px / frame)")
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with cli.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
