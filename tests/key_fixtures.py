"""Labelled songs for showing that the key control acts, and a small model trained on them.

Every song is four bars of Piano + Bass in one of four major keys whose tonics are a minor
third apart (C, Eb, F# and A major: two of their scales share at most four of their seven
pitch classes).  The piano plays simu-notes of one to three distinct pitches drawn at random
from the key's scale (G3..G5) on a random rhythm; the bass plays the tonic at every bar.  The
melodies are random, so nothing before the first note tells the key: only the init tokens
(representation.init_tokens, which carry the song's key) do, and a model that fits the
first notes of the songs must read them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vidscore import constants as D
from vidscore.music.representation import init_tokens, notes_to_tokens, pitch_class_histogram, tokens_to_notes

MAJOR = (0, 2, 4, 5, 7, 9, 11)
KEY_C, KEY_EB, KEY_FS, KEY_A = 1, 4, 7, 10            # dictionary_mix.KEY_NAMES ids
TONIC = {KEY_C: 0, KEY_EB: 3, KEY_FS: 6, KEY_A: 9}    # key id -> tonic pitch class
INSTRUMENTS = (D.PIANO, D.BASS)

# Two layers and a larger init embedding than the other tests' model: the one-layer model with
# 8-wide init embeddings learns the first note's key but loses it along the song.
KEY_MODEL = dict(n_layer=2, d_model=64, n_head=4, d_ff=128, emb_sizes="8,4,8,32,8,4,8", time_emb_size=8,
                 init_emb_size=16, dropout=0.0, attention="torch")


def scale(key_id: int) -> set[int]:
    """Pitch classes of a major key's scale."""
    return {(TONIC[key_id] + p) % 12 for p in MAJOR}


def random_piano_bass(pitches, bass_pitch: int, rng: np.random.Generator, bars: int = 4,
                      velocity: tuple[int, int] | None = None) -> np.ndarray:
    """Notes ``[onset, pitch, duration, instrument]``: piano simu-notes of one to three distinct
    ``pitches`` on a random rhythm over ``bass_pitch`` held through every bar; with ``velocity``
    = (lo, hi) a fifth column of random velocities in [lo, hi)."""
    def note(onset, pitch, dur, instrument):
        row = [onset, int(pitch), dur, instrument]
        return row + [int(rng.integers(*velocity))] if velocity else row

    notes = []
    for b in range(bars):
        t = 0
        while t < D.TICKS_PER_BAR:
            dur = min(int(rng.choice([2, 4, 4, 8])), D.TICKS_PER_BAR - t)
            for p in rng.choice(pitches, size=int(rng.integers(1, 4)), replace=False):
                notes.append(note(16 * b + t, p, dur, D.PIANO))
            t += dur
        notes.append(note(16 * b, bass_pitch, 16, D.BASS))
    notes.sort(key=lambda n: (n[0], n[3], n[1]))
    return np.array(notes, dtype=np.int64)


def random_key_song(key_id: int, rng: np.random.Generator, bars: int = 4) -> np.ndarray:
    """Random piano simu-notes from the key's scale (G3..G5) over a bass tonic."""
    pitches = [p for p in range(55, 80) if p % 12 in scale(key_id)]
    return random_piano_bass(pitches, 36 + TONIC[key_id], rng, bars)


def write_key_npz(path: Path, per_key: int = 48, seed: int = 0) -> Path:
    """A training npz of ``per_key`` songs in each key (the last song held out for validation).

    The keys are interleaved and equally common in the training split but for the held-out
    song (A major), so the checkpoint's default key (the commonest, ties to the lowest id) is
    C major."""
    rng = np.random.default_rng(seed)
    seqs, keys = [], []
    for _ in range(per_key):
        for k in TONIC:
            seqs.append(notes_to_tokens(random_key_song(k, rng)))
            keys.append(k)
    n, L = len(seqs), max(len(s) for s in seqs) - 1
    x, y = np.zeros((n, L, 9), np.int32), np.zeros((n, L, 9), np.int32)
    mask = np.zeros((n, L), np.float32)
    for i, s in enumerate(seqs):
        x[i, :len(s) - 1], y[i, :len(s) - 1], mask[i, :len(s) - 1] = s[:-1], s[1:], 1
    init = np.stack([init_tokens(INSTRUMENTS, k, 0) for k in keys])
    split = np.zeros(n, np.uint8)
    split[-1] = 1
    np.savez(path, x=x, y=y, mask=mask, init=init, seq_len=mask.sum(1).astype(np.int32), split=split,
             metadata=np.array("[]"), vocab=np.array("{}"))
    return Path(path)


def train_key_model(d: Path, seed: int = 0):
    """Train KEY_MODEL on write_key_npz's songs in ``d``; returns the loaded last checkpoint."""
    from vidscore.training import loop as training
    from vidscore.model.cmt import load_checkpoint

    d = Path(d)
    write_key_npz(d / "keys4.npz", seed=seed)
    hp = dict(name="keys4", data_root=str(d), train_data="keys4.npz", exp_dir=str(d / "exp"), log_dir=str(d / "logs"),
              lr=5e-3, batch_size=16, max_tokens=100000, max_len=0, epochs=30, grad_clip=3.0, seed=seed,
              device="cpu", gid="", data_parallel=0, resume=0, **KEY_MODEL)
    training.train(hp)
    return load_checkpoint(d / "exp" / "keys4" / "last.pt")


def video_rows(n_bars: int, beats: dict[int, list[tuple[int, int]]]) -> np.ndarray:
    """Video rows ``[bar-beat, density, strength, i_beat, n_beat, p_beat]``: a Bar row per bar
    (density 4) and, per bar, visual beats ``(position, strength)``."""
    n_beat = D.TICKS_PER_BAR * n_bars
    rows = []
    for b in range(n_bars):
        t = D.TICKS_PER_BAR * b
        rows.append([D.BAR, 4, 0, t, n_beat, 100 * t // n_beat + 1])
        for pos, strength in beats.get(b, []):
            rows.append([pos + 1, 0, strength, t + pos, n_beat, 100 * (t + pos) // n_beat + 1])
    return np.array(rows, dtype=np.int64)


# four bars (the songs' length), a visual beat of strength 2-3 in each
KEY_ROWS = video_rows(4, {0: [(4, 2)], 1: [(8, 3)], 2: [(2, 2)], 3: [(12, 2)]})


def scale_mass(songs, key_id: int) -> float:
    """Share of the songs' duration-weighted pitch-class histogram on the key's scale."""
    hist = sum(pitch_class_histogram(tokens_to_notes(np.asarray(s.tokens))) for s in songs)
    return float(hist[sorted(scale(key_id))].sum() / hist.sum())
