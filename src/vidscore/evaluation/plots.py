"""Pictures for the evaluation report: piano rolls with visual beats, metric distributions.

Matplotlib with the Agg backend (no display needed).  Every figure is written through
:func:`cli.atomic_path`.
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vidscore import cli  # noqa: E402
from vidscore.evaluation.metrics import INSTRUMENT_NAMES, as_notes, ticks_to_seconds  # noqa: E402

INSTRUMENT_COLOURS = {1: "#555555", 2: "#1f77b4", 3: "#ff7f0e", 4: "#2ca02c", 5: "#9467bd"}


def _save(fig, path: str) -> None:
    with cli.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_piano_roll(path: str, notes, tempo: float, title: str = "", beat_times=(), kept_times=(),
                    video_duration: float | None = None) -> None:
    """A piano roll (time in seconds, MIDI pitch, colour by instrument) with the visual beats.

    ``beat_times``: all visual beats (thin dashed grey lines); ``kept_times``: the beats kept by
    the control rules (red lines); ``video_duration``: a black line at the video's end.
    """
    end = _roll_end(as_notes(notes), tempo, video_duration)
    fig, ax = plt.subplots(figsize=(min(20.0, max(8.0, end / 4.0)), 4.5))
    draw_piano_roll(ax, notes, tempo, title, beat_times, kept_times, video_duration)
    _save(fig, path)


def _roll_end(notes, tempo: float, video_duration: float | None) -> float:
    return max([float(ticks_to_seconds((notes["onset"] + np.maximum(notes["duration"], 1)).max(), tempo))
                if len(notes) else 0.0, video_duration or 0.0, 1.0])


def draw_piano_roll(ax, notes, tempo: float, title: str = "", beat_times=(), kept_times=(),
                    video_duration: float | None = None, legend: bool = True) -> None:
    """:func:`plot_piano_roll`'s picture on the axes ``ax`` (for figures of several rolls)."""
    notes = as_notes(notes)
    end = _roll_end(notes, tempo, video_duration)
    for k, name in INSTRUMENT_NAMES.items():
        sel = notes[notes["instrument"] == k]
        if len(sel) == 0:
            continue
        start = ticks_to_seconds(sel["onset"], tempo)
        width = ticks_to_seconds(np.maximum(sel["duration"], 1), tempo)
        ax.barh(sel["pitch"], width, left=start, height=0.9, color=INSTRUMENT_COLOURS[k], label=name,
                linewidth=0, alpha=0.85, zorder=2)
    lo = int(notes["pitch"].min()) - 2 if len(notes) else 40
    hi = int(notes["pitch"].max()) + 2 if len(notes) else 90
    if len(beat_times):
        ax.vlines(beat_times, lo, hi, colors="0.6", linestyles="dashed", linewidth=0.6, label="visual beat",
                  zorder=1)
    if len(kept_times):
        ax.vlines(kept_times, lo, hi, colors="red", linewidth=0.9, alpha=0.6, label="kept visual beat",
                  zorder=1)
    if video_duration:
        ax.axvline(video_duration, color="black", linewidth=1.2, label="video end", zorder=3)
    ax.set_xlim(0, end * 1.01)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, framealpha=0.8)


def draw_confusion(ax, classes, confusion, title: str = "") -> None:
    """A confusion matrix (rows: true class, columns: predicted) as counts on a white-blue scale."""
    m = np.asarray(confusion, dtype=float).reshape(len(classes), len(classes))
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels([str(c) for c in classes], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)))
    ax.set_yticklabels([str(c) for c in classes], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)


def plot_rolls_and_confusions(path: str, rolls, confusions, title: str = "") -> None:
    """One figure: a piano roll per entry of ``rolls`` ((title, notes, tempo) each), stacked, and
    beside them a confusion matrix per entry of ``confusions`` ((title, classes, matrix) each)."""
    n_rows = max(len(rolls), len(confusions), 1)
    fig = plt.figure(figsize=(16, 2.6 * n_rows + 0.6))
    grid = fig.add_gridspec(n_rows, 2, width_ratios=[3.2, 1])
    for i, (name, notes, tempo) in enumerate(rolls):
        draw_piano_roll(fig.add_subplot(grid[i, 0]), notes, tempo, name, legend=i == 0)
    for i, (name, classes, matrix) in enumerate(confusions):
        draw_confusion(fig.add_subplot(grid[i, 1]), classes, matrix, name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_distributions(path: str, metrics: list[tuple[str, str]], sets: dict[str, list[dict]]) -> None:
    """Box plots (with the individual songs as dots) of each metric, one box per set.

    ``metrics``: (key, label) pairs; ``sets``: set name -> per-song metric dicts.  Metrics with
    no finite value in any set are left out.
    """
    keep = []
    for key, label in metrics:
        data = {name: np.array([r.get(key) for r in rows if _finite(r.get(key))], dtype=float)
                for name, rows in sets.items()}
        if any(v.size for v in data.values()):
            keep.append((label, data))
    if not keep:
        keep = [("no metric values", {name: np.zeros(0) for name in sets})]
    cols = min(4, len(keep))
    rows = math.ceil(len(keep) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    colour = {name: f"C{i}" for i, name in enumerate(sets)}
    for ax, (label, data) in zip(axes.flat, keep):
        names = [name for name, v in data.items() if v.size]   # only the sets with values
        values = [data[name] for name in names]
        if names:
            ax.boxplot(values, positions=range(1, len(names) + 1), widths=0.5, showfliers=False)
        for i, (name, v) in enumerate(zip(names, values)):
            ax.scatter(i + 1 + rng.uniform(-0.12, 0.12, v.size), v, s=8, alpha=0.6, color=colour[name])
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels([f"{name} ({data[name].size})" for name in names], fontsize=8)
        ax.set_xlim(0.4, max(len(names), 1) + 0.6)
        ax.set_title(label, fontsize=9)
    for ax in list(axes.flat)[len(keep):]:
        ax.axis("off")
    fig.tight_layout()
    _save(fig, path)


def _finite(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v))
