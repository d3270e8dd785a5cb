"""Scene cuts (issue 28): shot boundaries found in videos made here, with known cut times.

Each video is written by the test (OpenCV, mp4v) from textured pictures, so the frame of every
cut, dissolve, flash and pan is known by construction; the analysis decodes and measures it as
it would any file.  Cuts must be found within 0.25 s, and none where there is none.
"""
import json

import cv2
import numpy as np
import pytest

import video_fixtures as vf
from vidscore.cli import UserError
from vidscore.video import analysis, cache, features, metadata, scenes

FPS, W, H = 30, 640, 360
TOL = 0.25


def tinted(seed, tint, w=W, h=H, blur=4.0):
    t = vf.texture(w, h, seed, blur).astype(np.float32)
    return np.clip(t * np.array(tint, np.float32), 0, 255).astype(np.uint8)


def view(big, k, vx, vy=0.0):
    """Frame k of a camera moving (vx, vy) pixels per frame over the picture ``big``."""
    m = np.float32([[1, 0, -vx * k], [0, 1, -vy * k]])
    return cv2.warpAffine(big, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def write(path, frames):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    for f in frames:
        vw.write(f)
    vw.release()
    return path


def cuts_of(path):
    return analysis.analyse(path, use_cache=False, progress=False).metadata


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("scenes")


def test_three_shots_and_a_dissolve(folder):
    """Shot A pans right, B pans down, C pans left and dissolves (30 frames) into D: cuts at
    frames 75 and 160 (2.5 s, 5.333 s), the dissolve's middle at frame 245 (8.167 s)."""
    a, b = tinted(11, (1.0, 0.8, 0.6), W + 400, H + 200), tinted(12, (0.5, 0.9, 1.1), W + 400, H + 200, 6.0)
    c, d = tinted(13, (0.9, 1.0, 0.9), W + 400, H + 200, 2.0), tinted(14, (1.0, 0.6, 1.0), W + 400, H + 200)
    frames = []
    for k in range(320):
        if k < 75:
            frames.append(view(a, k, 1.5))
        elif k < 160:
            frames.append(view(b, k - 75, 0.0, 1.2))
        else:
            mix = float(np.clip((k - 230) / 30, 0, 1))
            frames.append(cv2.addWeighted(view(c, k - 160, -1.0, 0.5), 1 - mix, view(d, k - 160, 1.0), mix, 0))
    meta = cuts_of(write(folder / "shots.mp4", frames))
    assert len(meta["scene_cuts"]) == 3, meta["scene_cuts"]
    assert np.allclose(meta["scene_cuts"], [75 / FPS, 160 / FPS, 245 / FPS], atol=TOL)
    assert meta["scene_cut_kinds"] == ["cut", "cut", "dissolve"]


def test_fade_through_black_is_one_boundary(folder):
    """A fades out over frames 100-114, 10 black frames, B fades in over 125-139: one boundary,
    in the middle of the black (frame 120, 4.0 s)."""
    a, b = tinted(51, (1, .9, .8), W + 300), tinted(52, (.6, .9, 1.1), W + 300)
    frames = []
    for k in range(240):
        if k < 100:
            f = view(a, k, 1.0)
        elif k < 115:
            f = cv2.convertScaleAbs(view(a, k, 1.0), alpha=(115 - k) / 15)
        elif k < 125:
            f = np.zeros((H, W, 3), np.uint8)
        else:
            f = cv2.convertScaleAbs(view(b, k, 0.5), alpha=min(1.0, (k - 125) / 15))
        frames.append(f)
    meta = cuts_of(write(folder / "fade.mp4", frames))
    assert len(meta["scene_cuts"]) == 1 and abs(meta["scene_cuts"][0] - 4.0) <= TOL, meta["scene_cuts"]


def test_white_flashes_are_not_cuts(folder):
    """A panning shot with a full white flash (frames 60-61, then 60 % white) and a half-white
    one (frames 120-122): the picture comes back, so no cut."""
    a = tinted(21, (1, 1, 1), W + 300)
    white = np.full((H, W, 3), 255, np.uint8)
    frames = []
    for k in range(180):
        f = view(a, k, 1.0)
        if k in (60, 61):
            f = white
        elif k == 62:
            f = cv2.addWeighted(f, 0.4, white, 0.6, 0)
        elif k in (120, 121, 122):
            f = cv2.addWeighted(f, 0.5, white, 0.5, 0)
        frames.append(f)
    assert cuts_of(write(folder / "flash.mp4", frames))["scene_cuts"] == []


def test_fast_pan_is_not_a_cut(folder):
    """One scene crossed at up to 24 pixels a frame (a whip pan: most of a frame width per second)."""
    a = tinted(31, (1, 0.9, 0.8), W + 24 * 190)
    offsets = np.cumsum([24.0 * min(1.0, k / 30) for k in range(180)])
    frames = [view(a, 1, off) for off in offsets]
    assert cuts_of(write(folder / "pan.mp4", frames))["scene_cuts"] == []


def test_static_camera_with_a_moving_object_is_not_a_cut(folder):
    """A still background; a large textured object (a quarter of the frame) walks in, across and back."""
    bg, obj = tinted(91, (.8, .9, 1.0)), tinted(92, (1.1, .7, .5), 260, 330, 3.0)
    frames = []
    for k in range(180):
        f = bg.copy()
        x = int(-260 + (W + 260) * k / 120) if k < 120 else int(W - (W + 260) * (k - 120) / 60)
        x0, x1 = max(0, x), min(W, x + 260)
        if x1 > x0:
            f[20:350, x0:x1] = obj[:, x0 - x:x1 - x]
        frames.append(f)
    meta = cuts_of(write(folder / "walker.mp4", frames))
    assert meta["scene_cuts"] == []


# ------------------------------------------------------------------ the detector on hand-made signals

def signals(n, change, jumps=(), sig_of=None):
    """Per-frame signals: ``change`` per frame, and signatures: frame k has picture sig_of(k)
    (one-hot gray and colour histograms of a picture id)."""
    sig = np.zeros((n, scenes.N_SIG), np.float32)
    for k in range(n):
        p = sig_of(k) if sig_of else 0
        sig[k, p % scenes.GRAY_BINS] = 1.0
        sig[k, scenes.GRAY_BINS + p % (scenes.HUE_BINS * scenes.SAT_BINS)] = 1.0
    stats = np.zeros((n, len(scenes.STATS)), np.float32)
    stats[:, 0] = [255.0 if sig_of and sig_of(k) == 31 else 100.0 for k in range(n)]
    change = np.asarray(change, np.float64)
    return np.arange(n) / 25.0, sig, stats, change, change * 1.5


def test_detect_hand_made_cut_and_flash():
    n = 100
    ch = np.full(n, 2.0)
    ch[0] = 0
    ch[40] = 30.0                      # picture 3 -> 5 at frame 40: a cut at 40 / 25 = 1.6 s
    ch[70], ch[72] = 30.0, 30.0        # picture 5 -> white (31) at 70, back to 5 at 72: a flash
    pic = lambda k: 3 if k < 40 else (31 if k in (70, 71) else 5)   # noqa: E731
    found = scenes.detect(*signals(n, ch, sig_of=pic))
    assert [(b.frame, b.kind) for b in found] == [(40, "cut")]
    assert found[0].time == pytest.approx(1.6)
    # the change spike alone, 30 / 2 = 15 x its baseline, finds a cut even where the histograms
    # stay the same (two shots with the same statistics)
    same = scenes.detect(*signals(n, ch, sig_of=lambda k: 3))
    assert [b.frame for b in same][:1] == [40]
    # a spike of 5 gray levels (2.5 x, but under abs_min above the baseline) is no cut
    low = ch.copy()
    low[40], low[70], low[72] = 5.0, 2.0, 2.0
    assert scenes.detect(*signals(n, low, sig_of=lambda k: 3)) == []


# ------------------------------------------------------------------ metadata, cache, picture

def test_metadata_without_scene_cuts_is_accepted_and_bad_cuts_are_refused():
    old = {"duration": 4.0, "tempo": 120.0, "vbeats": [], "flow_magnitude_per_bar": [0.1, 0.2]}
    metadata.check_metadata(old)                                # written before scene cuts existed
    metadata.check_metadata({**old, "scene_cuts": [1.0, 2.5]})
    for bad in ([2.5, 1.0], [9.0], "1.0", [float("nan")]):
        with pytest.raises(UserError):
            metadata.check_metadata({**old, "scene_cuts": bad})


def test_cache_keeps_the_scene_signals_and_its_key_follows_their_settings(folder, tmp_path, monkeypatch):
    a, b = tinted(61, (1, .8, .6), W + 200), tinted(62, (.5, .9, 1.1), W + 200)
    path = write(folder / "cached.mp4", [view(a, k, 1.0) if k < 45 else view(b, k, 1.0) for k in range(90)])
    fresh = analysis.analyse(path, cache_dir=tmp_path, progress=False).metadata
    again = analysis.analyse(path, cache_dir=tmp_path, progress=False).metadata   # from the cache
    assert len(list(tmp_path.glob("*.npz"))) == 1
    assert fresh["scene_cuts"] == again["scene_cuts"] and abs(fresh["scene_cuts"][0] - 1.5) <= TOL
    assert json.dumps(fresh["mood"]) == json.dumps(again["mood"])
    key = cache.entry_path(tmp_path, "0" * 64, features.flow_settings(False))
    monkeypatch.setattr(scenes, "THUMB", (64, 36))
    assert cache.entry_path(tmp_path, "0" * 64, features.flow_settings(False)) != key


def test_the_beats_picture_marks_the_cuts(folder, tmp_path):
    pytest.importorskip("matplotlib")
    from vidscore.video import visualize
    a, b = tinted(71, (1, 1, 1), W + 200), tinted(72, (.4, .8, 1.2), W + 200, blur=6.0)
    path = write(folder / "pic.mp4", [view(a, k, 2.0) if k < 45 else view(b, k, 2.0) for k in range(90)])
    an = analysis.analyse(path, use_cache=False, progress=False)
    visualize.plot_analysis(an, tmp_path / "beats.png")
    img = cv2.imread(str(tmp_path / "beats.png"))
    # the dashed cut line is drawn in matplotlib's tab:cyan (23, 190, 207): find its pixels
    cyan = np.all(np.abs(img.astype(int) - [207, 190, 23]) < 30, axis=2)
    assert an.metadata["scene_cuts"] and cyan.sum() > 50
