"""Video analysis (SPEC 6): beats, tempo, motion, on videos made here with OpenCV.

Expected values are worked out by hand (in the comments) or by an independent route
(numpy's histogram and correlate, scipy's medfilt), not read back from the code.
"""
import math
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from scipy import signal

import video_fixtures as vf
from vidscore.cli import UserError
from vidscore.video import analysis, beats, envelope, flow, tempo, timeline

FPS = 30
# The envelope keeps *decelerations* of the smoothed directogram.  A jump is one frame
# of motion (directogram row k); smoothed by a Gaussian of sigma 3 frames it falls
# fastest between k + 3 and k + 4: G(2) - G(3) = e^(-4/18) - e^(-9/18) = 0.1942 and
# G(3) - G(4) = e^(-9/18) - e^(-16/18) = 0.1954, G(4) - G(5) = 0.1617.  So the
# original's beats come 3.5 +- 0.5 frames after the jump.
SMOOTHING_LAG = 3.5


@pytest.fixture(scope="module")
def jumping(tmp_path_factory):
    truth = vf.write_jumping_square(tmp_path_factory.mktemp("jump") / "jump.mp4", fps=FPS, seconds=6, period=0.5)
    return truth, analysis.analyse(truth.path, use_cache=False, progress=False)


def test_jumping_square_beats_at_the_jumps(jumping):
    truth, a = jumping
    # 6 s at 30 fps, a new place every 15 frames
    assert truth.jump_frames == list(range(15, 180, 15))
    got = [b["start_time"] * FPS for b in a.metadata["vbeats"]]
    assert len(got) == len(truth.jump_frames)
    for frame, jump in zip(got, truth.jump_frames):
        assert abs(frame - (jump + SMOOTHING_LAG)) <= 1.0, (got, truth.jump_frames)


def test_jumping_square_tempo_is_120(jumping):
    _, a = jumping
    # period 0.5 s = lag 15 frames at 30 fps: 60 * 30 / 15 = 120 bpm
    assert a.metadata["tempo"] == pytest.approx(120.0)
    assert a.metadata["tempo_source"] == "estimated"


def test_jumping_square_metadata_fields(jumping):
    truth, a = jumping
    m = a.metadata
    assert m["n_frames"] == 180 and m["fps"] == 30.0
    assert m["duration"] == pytest.approx(179 / 30)  # (frames - 1) / fps, as the original
    assert m["flow_resolution"] == [320, 180] and m["mode"] == "fast"
    for b in m["vbeats"]:
        i = round(b["start_time"] / 60 * 120 * 4)  # 120 bpm: 8 ticks per second
        assert (b["bar"], b["tick"]) == (i // 16, i % 16)
        assert 0.0 < b["weight"] <= 1.0
    # ceil((179/30) s * 120 / 240) = ceil(2.983) = 3 bars
    assert len(m["flow_magnitude_per_bar"]) == 3


def test_user_tempo_overrides_estimate(jumping):
    _, a = jumping
    m = analysis.analyse_features(a.features, tempo=90).metadata
    assert m["tempo"] == 90.0 and m["tempo_source"] == "user"
    # the same beats, placed on the 90 bpm grid: 6 ticks per second
    assert [b["start_time"] for b in m["vbeats"]] == [b["start_time"] for b in a.metadata["vbeats"]]
    for b in m["vbeats"]:
        i = round(b["start_time"] * 6)
        assert (b["bar"], b["tick"]) == (i // 16, i % 16)
    assert len(m["flow_magnitude_per_bar"]) == math.ceil((179 / 30) * 90 / 240)  # 3


@pytest.mark.parametrize("bad", [0, -5, "fast", float("nan"), 5000])
def test_bad_user_tempo(bad):
    with pytest.raises(UserError):
        analysis.check_tempo(bad)


def test_portrait_video(tmp_path):
    truth = vf.write_jumping_square(tmp_path / "portrait.mp4", fps=FPS, seconds=3, size=(360, 640), square=50)
    m = analysis.analyse_video(truth.path, use_cache=False, progress=False)
    # height 640 -> 360 -> fast 180; width 360 * 180 / 640 = 101.25 -> 101
    assert m["flow_resolution"] == [101, 180] and (m["width"], m["height"]) == (360, 640)
    got = [b["start_time"] * FPS for b in m["vbeats"]]
    assert got, "no beats found in the portrait video"
    for frame in got:
        assert min(abs(frame - (j + SMOOTHING_LAG)) for j in truth.jump_frames) <= 1.0


def test_static_video_has_no_beats(tmp_path):
    path = vf.write_static(tmp_path / "still.mp4", fps=FPS, seconds=4.1)  # 123 frames
    m = analysis.analyse_video(path, use_cache=False, progress=False)
    assert m["vbeats"] == [] and m["still"] is True
    assert m["duration"] == pytest.approx(122 / 30)
    assert m["tempo"] == 120.0  # nothing to measure: the prior's centre
    # bars = ceil(duration * tempo / 240) = ceil(4.0667 * 120 / 240) = ceil(2.033) = 3
    assert len(m["flow_magnitude_per_bar"]) == 3
    assert max(m["flow_magnitude_per_bar"]) < 0.008  # density class 0


def test_accelerating_motion_per_bar(tmp_path):
    truth = vf.write_accelerating(tmp_path / "acc.mp4", fps=FPS, seconds=8, v0=0.25, v1=6.0)
    m = analysis.analyse_video(truth.path, tempo=90, use_cache=False, progress=False)
    fmpb = m["flow_magnitude_per_bar"]
    # 90 bpm: a bar is 240 / 90 s = 80 frames; duration 239 / 30 s -> ceil(2.9875) = 3 bars
    assert len(fmpb) == 3
    assert fmpb[0] < fmpb[1] < fmpb[2]
    # A horizontal pan of v px/frame has mean(|dx|, |dy|) = v / 2.  Entry j of the motion
    # list is the flow from frame j to j + 1, i.e. speeds[j + 1]; bar b holds j in [80b, 80b + 80).
    motion = truth.speeds[1:] / 2
    expected = [motion[80 * b: min(80 * b + 80, 239)].mean() for b in range(3)]
    assert fmpb == pytest.approx(expected, rel=0.08)


def test_4k_is_downscaled_and_speed_in_360p_pixels(tmp_path):
    path = vf.write_moving(tmp_path / "uhd.mp4", fps=FPS, seconds=0.5, size=(3840, 2160), speed=12.0)
    a = analysis.analyse(path, use_cache=False, progress=False)
    assert a.metadata["flow_resolution"] == [320, 180] and a.metadata["width"] == 3840
    # 12 px/frame at 2160p = 2 px/frame at 360p: mean(|dx|, |dy|) = 1.0
    assert np.median(a.features.motion) == pytest.approx(1.0, rel=0.1)


def test_exact_mode_matches_fast_mode_beats(tmp_path):
    truth = vf.write_jumping_square(tmp_path / "small.mp4", fps=FPS, seconds=3, size=(320, 180), square=30)
    fast = analysis.analyse(truth.path, use_cache=False, progress=False)
    exact = analysis.analyse(truth.path, exact=True, use_cache=False, progress=False)
    assert exact.metadata["flow_resolution"] == [320, 180] and exact.metadata["mode"] == "exact"
    assert fast.metadata["flow_resolution"] == [160, 90]
    assert len(exact.beats) == len(fast.beats) > 0
    assert np.all(np.abs(exact.beats - fast.beats) <= 1)


def test_short_video_is_valid(tmp_path):
    path = vf.write_moving(tmp_path / "short.mp4", fps=FPS, seconds=0.2)  # 6 frames
    m = analysis.analyse_video(path, use_cache=False, progress=False)
    assert m["n_frames"] == 6 and m["duration"] == pytest.approx(5 / 30)
    assert m["tempo"] > 0 and len(m["flow_magnitude_per_bar"]) == 1


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program to make a VFR file")
def test_variable_frame_rate_uses_timestamps(tmp_path, jumping):
    truth, cfr = jumping
    vfr = tmp_path / "vfr.mp4"
    # drop every other frame of frames 40..100: those frames last 2/30 s
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(truth.path), "-vf",
                    r"select='not(between(n\,40\,100)*mod(n\,2))'", "-fps_mode", "vfr",
                    "-c:v", "libx264", "-crf", "10", str(vfr)], check=True)
    m = analysis.analyse_video(vfr, use_cache=False, progress=False)
    assert m["vfr"] is True and m["n_frames"] == 180 - 30
    assert m["fps"] == 30.0 and m["duration"] == pytest.approx(179 / 30)
    assert m["tempo"] == pytest.approx(120.0)
    got = [b["start_time"] * FPS for b in m["vbeats"]]
    assert len(got) == len(truth.jump_frames)
    for frame, jump in zip(got, truth.jump_frames):
        assert abs(frame - (jump + SMOOTHING_LAG)) <= 1.0


# ---------------------------------------------------------------- the pieces


def test_motion_speed_and_directogram_against_numpy():
    rng = np.random.default_rng(0)
    f = rng.normal(0, 2, size=(60, 80, 2)).astype(np.float32)
    assert flow.motion_speed(f) == pytest.approx(float(np.mean(np.abs(f))), rel=1e-6)
    # independent route: np.histogram over the 5%-cropped angles (3 rows, 4 columns each side)
    c = f[3:57, 4:76]
    ang = np.arctan2(c[..., 1], c[..., 0]) + np.float32(np.pi)
    mag = np.sqrt(c[..., 0] ** 2 + c[..., 1] ** 2)
    ref, _ = np.histogram(ang, bins=128, range=(0, 2 * np.pi), weights=mag)
    assert np.array_equal(flow.directogram_row(f, exact=True), ref)
    fast = flow.directogram_row(f, exact=False)
    assert fast.sum() == pytest.approx(ref.sum(), rel=1e-5)
    assert np.abs(fast - ref).sum() < 0.01 * ref.sum()  # a few boundary pixels change bin


def test_directogram_direction_bins():
    # everything moving right (dx > 0, dy = 0): atan2 = 0, +pi -> bin 64
    f = np.zeros((20, 20, 2), np.float32)
    f[..., 0] = 2.0
    for exact in (True, False):
        row = flow.directogram_row(f, exact=exact)
        assert np.flatnonzero(row).tolist() == [64] and row[64] == pytest.approx(2.0 * 18 * 18)
    # moving down (dy > 0): atan2 = pi/2, +pi = 3pi/2 -> bin 96
    f[..., 0], f[..., 1] = 0.0, 1.0
    assert np.flatnonzero(flow.directogram_row(f)).tolist() == [96]


def test_farneback_levels():
    assert flow.FarnebackParams.for_size(640, 360).levels == 4  # floor(log2 360) = 8
    assert flow.FarnebackParams.for_size(320, 180).levels == 3  # floor(log2 180) = 7
    assert flow.FarnebackParams.for_size(101, 180).levels == 2  # floor(log2 101) = 6


def test_median_filter_is_scipy_medfilt():
    x = np.random.default_rng(1).random((40, 16))
    im = envelope.ndimage.median_filter(x, size=3, mode="constant", cval=0.0)
    assert np.array_equal(im, signal.medfilt(x, 3))


def test_deceleration_flux_of_one_jump():
    d = np.zeros((100, 128))
    d[50] = 7.0  # one frame of uniform motion in every direction
    flux = envelope.deceleration_flux(d)
    # Gaussian (sigma 3, truncated at 4 sigma = 12 frames, normalised) of the spike.  The
    # 3x3 median keeps the middle of three falling values in the 126 inner bins; in the
    # 2 edge bins three of the nine values are zero padding, so it keeps the smallest:
    # those bins run one frame ahead.  At frame 54 the inner bins drop w(3) - w(4), the
    # edge bins w(4) - w(5).
    w = np.exp(-np.arange(-12, 13) ** 2 / 18.0)
    w /= w.sum()
    assert int(np.argmax(flux)) == 54
    inner, edge = w[12 + 3] - w[12 + 4], w[12 + 4] - w[12 + 5]
    assert flux[54] == pytest.approx(7.0 * (126 * inner + 2 * edge) / 128, rel=1e-9)
    assert np.all(flux[:51] == 0)  # rising part: no deceleration


def test_normalise_clips_and_scales():
    x = np.concatenate([np.arange(1.0, 101.0), [-1000.0]])  # 101 values
    out = envelope.normalise(x)
    ax = np.abs(x)
    p99, p98 = np.percentile(ax, 99), np.percentile(ax, 98)  # 100.0 and 99.0
    assert (p99, p98) == (100.0, 99.0)
    assert out[-1] == pytest.approx(p98 / p99)  # |-1000| > p99 -> +p98
    assert out[99] == pytest.approx(1.0) and out[0] == pytest.approx(0.01)
    assert np.all(envelope.normalise(np.zeros(10)) == 0)


def test_highpass_removes_slow_drift():
    t = np.arange(600) / 30.0
    slow = 5.0 * t / t[-1]  # a ramp: far below the 1.25 Hz cutoff
    fast = np.sin(2 * np.pi * 6.0 * t)  # 6 Hz: passes
    y = envelope.highpass(slow + fast, 30.0)
    mid = slice(100, 500)
    assert np.abs(y[mid] - fast[mid]).max() < 0.05


def test_pick_peaks_by_hand():
    x = np.zeros(40)
    x[[5, 6, 20, 22, 30]] = [1.0, 0.5, 0.8, 0.9, 0.01]
    # 5: max of x[3..6], >= mean(x[0..9]) + 0.015 = 0.165 -> peak; 6: not the max of x[4..7]
    # 20: max of x[18..21], mean(x[15..24]) = 0.17 -> peak
    # 22: max of x[20..23] and above the mean, but not more than 2 frames after 20
    # 30: 0.01 < mean(x[25..34]) + 0.015 = 0.016 -> not a peak
    assert beats.pick_peaks(x).tolist() == [5, 20]
    x[22] = 0.0
    x[23] = 0.9
    assert beats.pick_peaks(x).tolist() == [5, 20, 23]


def test_beat_chain_by_hand():
    t = np.array([0.0, 0.5, 1.0, 1.1, 1.5, 2.0, 2.5])
    w = np.array([0.5, 0.9, 0.8, 0.3, 0.9, 0.7, -0.2])
    # scores: s0 = .5; s1 = .5 + 0 + .9 = 1.4; s2 = 1.4 + .8 = 2.2;
    # s3 (1.1): from 2 (gap .1 -> -1): 1.2, from 1 (gap .6): 1.4 -> 1.4 + .3 = 1.7;
    # s4 (1.5): from 3 (gap .4) 1.7, from 2 (gap .5) 2.2 -> 2.2 + .9 = 3.1 via 2;
    # s5 = 3.1 + .7 = 3.8 via 4; s6 = 3.8 - .2 = 3.6.  Best: 5.  Chain 5 <- 4 <- 2 <- 1 <- 0,
    # and the root (0) is left out.
    assert beats.beat_chain(t, w).tolist() == [1, 2, 4, 5]
    # a chain of 2 after dropping the root is not kept
    assert beats.beat_chain(np.array([0.0, 0.5, 1.0]), np.ones(3)).tolist() == []


def test_beat_chain_segments_break_after_200_s():
    t = np.array([0.0, 1.0, 2.0, 3.0, 300.0, 301.0, 302.0, 303.0, 304.0])
    w = np.ones(9)
    # segment 1 = nodes 1..4 (node 4 has no peak within 200 s: it closes segment 1 and
    # roots segment 2); chain 1: 3 <- 2 <- 1 <- 0 -> [1, 2, 3]; chain 2: 8 <- ... <- 4 -> [5..8]
    assert beats.beat_chain(t, w).tolist() == [5, 6, 7, 8]


def test_tempogram_against_direct_autocorrelation():
    rng = np.random.default_rng(3)
    x = rng.normal(size=50)
    win = 16
    got = tempo.mean_tempogram(x, win)
    # direct: ramp padding, Hann windows, np.correlate, max-normalise, average
    pad = np.concatenate([np.linspace(0, x[0], 9)[:-1], x, np.linspace(x[-1], 0, 9)[1:]])
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    acc = np.zeros(win)
    for c in range(len(x)):
        seg = pad[c: c + win] * hann
        ac = np.correlate(seg, seg, mode="full")[win - 1:]
        acc += ac / np.abs(ac).max()
    assert got == pytest.approx(acc / len(x), abs=1e-12)


@pytest.mark.parametrize("period,bpm", [(15, 120.0), (20, 90.0), (10, 90.0), (45, 40.0)])
def test_tempo_of_impulse_trains(period, bpm):
    # Impulses every `period` frames at 30 fps correlate at lags period, 2 period, ...
    # (60 * 30 / lag bpm), a little less at each longer lag (the Hann windows overlap
    # less).  The prior exp(-0.5 log2(bpm / 120)^2) decides: 120 bpm weighs 1;
    # 180 bpm (period 10) weighs 0.843 against 0.918 for its half, 90 bpm, which wins;
    # 40 bpm (period 45) has no faster multiple in the tempogram and stays.
    x = np.zeros(900)
    x[::period] = 1.0
    assert tempo.estimate_tempo(x, 30.0) == pytest.approx(bpm)


def test_tempo_of_silence_is_the_prior_centre():
    assert tempo.estimate_tempo(np.zeros(300), 30.0) == 120.0


def test_timeline_spreads_long_frames():
    # frames at 0, 1, 2, 4, 5 (x 1/30 s): frame 3 dropped; the motion into frame "4" (2 units)
    # covered two grid steps, 1 unit each
    t = np.array([0, 1, 2, 4, 5]) / 30.0
    tl = timeline.build_timeline(t, nominal_fps=24.0)  # nominal is an average: ignored
    assert tl.fps == 30.0 and not tl.uniform and tl.n_grid == 6
    assert timeline.to_grid(np.array([0.0, 1, 1, 2, 1]), tl) == pytest.approx([0, 1, 1, 1, 1, 1])
    uni = timeline.build_timeline(np.arange(5) / 25.0, 25.0)
    assert uni.uniform and uni.n_grid == 5 and uni.duration == pytest.approx(4 / 25)


def test_opencv_writes_what_the_fixtures_claim(tmp_path):
    truth = vf.write_jumping_square(tmp_path / "j.mp4", fps=FPS, seconds=1, period=0.5)
    cap = cv2.VideoCapture(str(truth.path))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 30 and cap.get(cv2.CAP_PROP_FPS) == 30


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is installed by `make test`")
def test_a_video_opencv_cannot_decode_names_its_codec_and_the_conversion(tmp_path):
    from vidscore.video.decode import undecodable_hint
    clip = tmp_path / "clip.mkv"                              # FFV1: ffprobe names it whatever OpenCV can do
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "1",
                    "-c:v", "ffv1", str(clip)], check=True)
    hint = undecodable_hint(clip)
    assert "its video codec is ffv1" in hint and "ffmpeg -i IN -c:v libx264" in hint
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    assert undecodable_hint(junk) == ""                       # nothing to name: the plain message stays
    with pytest.raises(UserError, match="implausible frame rate 0.25 fps .* ffmpeg -i IN -r 25 OUT.mp4"):
        timeline.build_timeline(np.arange(5) * 4.0, 0.25, "slides.mp4")


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is installed by `make test`")
def test_a_codec_opencv_cannot_decode_is_read_through_ffmpeg(tmp_path):
    """AV1 (no software decoder in most OpenCV builds): the analysis reads an ffmpeg copy, and the
    beats are those of the same motion in H.264, which OpenCV reads itself."""
    raw = vf.write_jumping_square(tmp_path / "raw.mp4", fps=25, seconds=4, size=(320, 180), square=30).path
    src = tmp_path / "jump.mp4"                          # the same frames in H.264, near lossless
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(raw), "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p",
                    str(src)], check=True)
    av1 = tmp_path / "clip.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-c:v", "libaom-av1", "-cpu-used", "8", "-crf", "10",
                    "-pix_fmt", "yuv420p", str(av1)], check=True)
    cap = cv2.VideoCapture(str(av1))
    opencv_reads_it = cap.read()[0]
    cap.release()
    got = analysis.analyse(av1, use_cache=False)
    ref = analysis.analyse(src, use_cache=False)
    assert got.metadata.get("decoded_by", "").startswith("ffmpeg") == (not opencv_reads_it)
    assert (got.metadata["width"], got.metadata["height"]) == (ref.metadata["width"], ref.metadata["height"])
    assert got.metadata["duration"] == pytest.approx(ref.metadata["duration"], abs=0.05)
    times = lambda a: [round(b["start_time"], 2) for b in a.metadata["vbeats"]]   # noqa: E731
    assert times(got) == times(ref)
