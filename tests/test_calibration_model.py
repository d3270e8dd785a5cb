"""Calibrated control keeps a model's music its own (issue 19), shown with a tiny model trained here.

The corpus has one texture: a single Piano voice, four quarter-note onsets per bar (strength 1
everywhere).  The video asks for far more: fast motion in every bar (the original's density
class 16, i.e. 16 onsets) and two very strong visual beats per bar (the original's strength 9).
Under the calibration that ``stat_mix.py`` fits to the model's data, the control keeps notes
per bar and PCHE within 15 % of uncontrolled generation and still lands every forced beat; the
original's thresholds, which ask for LPD's dense drum-and-chord textures, do not.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidscore.generation import calibration
from vidscore import constants as D
from vidscore.generation import generate as generation
from vidscore.evaluation import metrics
from vidscore.generation import job as pipeline
from vidscore.training import loop as training
from vidscore.model.cmt import load_checkpoint
from vidscore.music.representation import init_tokens, notes_to_tokens

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(n_layer=2, d_model=48, n_head=2, d_ff=96, emb_sizes="8,4,8,24,8,4,8", time_emb_size=8,
             init_emb_size=8, dropout=0.0, attention="torch")
C_MAJOR = [0, 2, 4, 5, 7, 9, 11]
BARS = 8
N_SONGS, EPOCHS, LR = 48, 40, 1e-2


def melody(rng, bars: int = BARS) -> np.ndarray:
    """One Piano voice, a note on every quarter (positions 0, 4, 8, 12), a walk on C major."""
    deg = int(rng.integers(0, 7))
    notes = []
    for b in range(bars):
        for q in range(4):
            deg = int(np.clip(deg + rng.integers(-2, 3), 0, 13))
            notes.append([16 * b + 4 * q, 60 + 12 * (deg // 7) + C_MAJOR[deg % 7], 4, D.PIANO])
    return np.array(notes, np.int64)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    seqs = [notes_to_tokens(melody(rng)) for _ in range(N_SONGS)]
    n, L = len(seqs), max(len(s) for s in seqs) - 1
    x, y = np.zeros((n, L, 9), np.int32), np.zeros((n, L, 9), np.int32)
    mask = np.zeros((n, L), np.float32)
    for i, s in enumerate(seqs):
        x[i, :len(s) - 1], y[i, :len(s) - 1], mask[i, :len(s) - 1] = s[:-1], s[1:], 1
    init = np.stack([init_tokens([D.PIANO], 1, 0) for _ in seqs])
    split = np.zeros(n, np.uint8)
    split[-1] = 1
    np.savez(d / "mono.npz", x=x, y=y, mask=mask, init=init, seq_len=mask.sum(1).astype(np.int32), split=split,
             metadata=np.array("[]"), vocab=np.array("{}"))
    hp = dict(name="mono", data_root=str(d), train_data="mono.npz", exp_dir=str(d / "exp"), log_dir=str(d / "logs"),
              lr=LR, batch_size=16, max_tokens=100000, max_len=0, epochs=EPOCHS, grad_clip=3.0, seed=0,
              device="cpu", gid="", data_parallel=0, resume=0, **SMALL)
    training.train(hp)
    src = d / "exp" / "mono" / "last.pt"
    out = d / "mono_calibrated.pt"
    res = subprocess.run([sys.executable, str(ROOT / "src" / "stat_mix.py"), "--ckpt", str(src), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert src.stat().st_size > 0 and "calibration" not in (load_checkpoint(src).vocab or {})   # input untouched
    return load_checkpoint(out)


# a video far busier than the music: 8 bars at 120 bpm, fast motion, two very strong beats per bar
META = {"duration": BARS * 2.0, "tempo": 120.0, "flow_magnitude_per_bar": [3.0] * BARS,
        "vbeats": [{"bar": b, "tick": t, "weight": w, "start_time": (16 * b + t) / 8.0}
                   for b in range(BARS) for t, w in ((4, 0.9995), (12, 0.9993))]}


def measure(model, mapping, opts, n=10):
    rows = mapping.rows(META)
    controls = pipeline.make_controls(model, opts, mapping)
    songs = generation.generate(model, rows, pipeline.init_block(model, opts), n, controls=controls, seed=5)
    kept = metrics.video_controls(rows, mapping.min_strength)["kept_ticks"]
    npb, pche, hits = [], [], []
    for s in songs:
        notes = metrics.notes_from_tokens(np.asarray(s.tokens))
        npb.append(len(notes) / BARS)
        pche.append(metrics.pitch_class_entropy(notes, 1))
        hits.append(metrics.hit_rate(kept, notes) if len(kept) else float("nan"))
    return float(np.mean(npb)), float(np.mean(pche)), float(np.mean(hits)), len(kept)


def test_calibrated_control_keeps_the_texture_and_the_original_thresholds_do_not(calibrated):
    cal = calibrated.vocab["calibration"]
    assert cal["forced_tracks"] == [D.PIANO] and cal["strength_max"] == {str(D.PIANO): 1}
    # bar density fitted by notes: the single-voice model plays about one note per onset position
    resp = cal["density_response"]
    assert cal["density_fit"] == "notes" and len(resp) == calibration.N_DENSITY
    assert resp[0] < 0.5 and all(0.8 * c <= resp[c] <= 1.3 * c for c in (1, 2, 3, 4, 8)), resp
    mapping = calibration.mapping_for(calibrated, "calibrated")
    rows = mapping.rows(META)
    assert set(rows[rows[:, 0] == D.BAR, 1]) == {5}              # 4 onsets per bar, as the data
    assert set(rows[rows[:, 0] != D.BAR, 2]) == {1}              # strength 1, as the data
    off = calibration.original()
    free = pipeline.Options(C=0.0, min_strength=99)              # no control: the model's own music
    npb0, pche0, _, n_free = measure(calibrated, calibration.mapping_for(calibrated, "calibrated", 99), free)
    assert n_free == 0
    assert 3.0 <= npb0 <= 5.0                                    # it learned its texture

    npb, pche, hit, n_kept = measure(calibrated, mapping, pipeline.Options())
    assert n_kept == 2 * BARS and hit == 1.0                     # every forced beat has its onset
    assert abs(npb / npb0 - 1) <= 0.15, (npb, npb0)
    assert abs(pche / pche0 - 1) <= 0.15, (pche, pche0)

    npb_o, pche_o, hit_o, _ = measure(calibrated, off, pipeline.Options())
    assert hit_o == 1.0
    assert abs(npb_o / npb0 - 1) > 0.15 or abs(pche_o / pche0 - 1) > 0.15, (npb_o, pche_o)
    assert npb_o > 2 * npb0                                      # the original's classes ask for far more
