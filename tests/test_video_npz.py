"""metadata.json -> inference npz rows (SPEC 6), the scripts, bad inputs, and the cache."""
import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

import video_fixtures as vf
from vidscore.cli import UserError
from vidscore.video import analysis, cache, features, metadata, metadata_to_rows, video_to_npz

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "src" / "video2npz"
PY = sys.executable


def run_script(name, *args, env=None):
    e = dict(os.environ, CMT_NO_PROGRESS="1", **(env or {}))
    return subprocess.run([PY, str(SCRIPTS / name), *map(str, args)], capture_output=True, text=True, env=e)


# ---------------------------------------------------------------- rows by hand

HAND_META = {
    "duration": 10.0,
    "tempo": 120.0,
    "vbeats": [
        {"start_time": 0.5, "bar": 0, "tick": 2, "weight": 0.5},
        {"start_time": 4.0, "bar": 2, "tick": 0, "weight": 0.95},
        {"start_time": 5.0, "bar": 2, "tick": 8, "weight": 1.0},
        {"start_time": 5.5, "bar": 2, "tick": 12, "weight": -0.1},
    ],
    "flow_magnitude_per_bar": [0.0, 0.05, 0.3, 1.0, 5.0],
}


def test_rows_by_hand():
    rows = metadata_to_rows(HAND_META)
    # n_beat = ceil(10 / 60 * 120 * 4) = 80; p = round(100 * i / 80) + 1
    # density class = first i with value < thr[i]: 0.0 -> 0, 0.05 -> 4 (< 0.0709),
    #   0.3 -> 8 (< 0.5155), 1.0 -> 11 (>= 0.99893, < 1.2068), 5.0 -> 16; the row holds class + 1
    # strength class: 0.5 -> 3 (< 0.7871), 0.95 -> 5 (< 0.9646), 1.0 -> 10, -0.1 -> 0 (< 0)
    # i = 2: 100 * 2 / 80 = 2.5 rounds half to even -> 2, p = 3
    expected = [
        [17, 1, 0, 0, 80, 1],
        [3, 0, 3, 2, 80, 3],
        [17, 5, 0, 16, 80, 21],
        [17, 9, 0, 32, 80, 41],
        [1, 0, 5, 32, 80, 41],
        [9, 0, 10, 40, 80, 51],
        [13, 0, 0, 44, 80, 56],
        [17, 12, 0, 48, 80, 61],
        [17, 17, 0, 64, 80, 81],
    ]
    assert rows.dtype.kind == "i" and rows.shape == (9, 6)
    assert rows.tolist() == expected


def test_rows_without_beats_are_all_bars():
    meta = dict(HAND_META, vbeats=[])
    rows = metadata_to_rows(meta)
    assert rows[:, 0].tolist() == [17] * 5
    assert rows[:, 3].tolist() == [0, 16, 32, 48, 64]


def test_classes_at_thresholds():
    assert metadata.density_class(metadata.DENSITY_THRESHOLDS[3]) == 4  # not < thr[3]
    assert metadata.strength_class(0.0) == 1 and metadata.strength_class(-1e-9) == 0
    assert len(metadata.DENSITY_THRESHOLDS) == 16 and len(metadata.STRENGTH_THRESHOLDS) == 10


def test_flow_per_bar_by_hand():
    # 30 fps, 120 bpm: a bar is 2 s = 60 frames; 150 entries -> bars of 60, 60, 30
    m = np.concatenate([np.full(60, 1.0), np.full(60, 2.0), np.full(30, 4.0)])
    assert metadata.flow_per_bar(m, 30.0, 120.0, 150 / 30) == [1.0, 2.0, 4.0]
    # a bar with no frame (ceil(5.01 * 120 / 240) = 3 bars, frames end in bar 2) repeats the previous
    assert metadata.flow_per_bar(m[:120], 30.0, 120.0, 5.01) == [1.0, 2.0, 2.0]


def test_bad_metadata_is_a_user_error():
    with pytest.raises(UserError):
        metadata_to_rows({"duration": 1.0})
    with pytest.raises(UserError):
        metadata_to_rows(dict(HAND_META, tempo=0))


# ---------------------------------------------------------------- scripts


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    return vf.write_jumping_square(d / "clip.mp4", fps=30, seconds=3, period=0.5).path


def test_scripts_end_to_end(tmp_path, clip):
    meta_path = tmp_path / "meta" / "clip.json"
    r = run_script("video2metadata.py", "--video", clip, "--meta_data", meta_path, "--cache_dir", tmp_path / "c",
                   "--visualize")
    assert r.returncode == 0, r.stderr
    meta = json.loads(meta_path.read_text())
    assert meta["tempo"] == pytest.approx(120.0) and len(meta["vbeats"]) == 5
    assert meta_path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = run_script("metadata2numpy_mix.py", "--video", clip, "--meta_data", meta_path, "--out_dir", tmp_path / "npz")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "npz" / "clip.npz") as z:
        assert set(z.files) == {"input", "tempo", "duration"}
        assert z["input"].tolist() == metadata_to_rows(meta).tolist()
        assert float(z["tempo"]) == meta["tempo"] and float(z["duration"]) == meta["duration"]
    # rows: ceil(89 / 30 s * 120 / 240) = 2 bars, 5 beats, in time order
    rows = metadata_to_rows(meta)
    assert (rows[:, 0] == 17).sum() == 2 and len(rows) == 7
    assert np.all(np.diff(rows[:, 3]) >= 0)


def test_user_tempo_flags(tmp_path, clip):
    out = tmp_path / "m.json"
    r = run_script("video2metadata.py", "--video", clip, "--meta_data", out, "--is_tempo", "1", "--my_tempo", "100",
                   "--no_cache")
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["tempo"] == 100.0
    r = run_script("video2metadata.py", "--video", clip, "--meta_data", tmp_path / "x.json", "--is_tempo", "1")
    assert r.returncode == 2 and "--my_tempo" in r.stderr and not (tmp_path / "x.json").exists()


def test_folder_of_videos(tmp_path, clip):
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(clip, folder / "a.mp4")
    vf.write_static(folder / "b.avi", fps=25, seconds=2, size=(160, 120))
    (folder / "notes.txt").write_text("not a video")
    out = tmp_path / "meta"
    r = run_script("video2metadata.py", "--video", folder, "--meta_data", out, "--is_path", "1", "--no_cache")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a_metadata.json", "b_metadata.json"]
    assert json.loads((out / "b_metadata.json").read_text())["vbeats"] == []


def test_video_to_npz(tmp_path, clip):
    npz = video_to_npz(clip, tmp_path / "out", cache_dir=tmp_path / "c", progress=False)
    assert npz == tmp_path / "out" / "clip.npz"
    meta = json.loads((tmp_path / "out" / "clip_metadata.json").read_text())
    with np.load(npz) as z:
        assert z["input"].tolist() == metadata_to_rows(meta).tolist()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_shell_wrapper(tmp_path, clip):
    r = subprocess.run(["bash", str(SCRIPTS / "video2npz.sh"), str(clip), "--no_cache"], capture_output=True,
                       text=True, env=dict(os.environ, CMT_NO_PROGRESS="1", OUT_DIR=str(tmp_path), PYTHON=PY))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "clip.npz").is_file() and (tmp_path / "clip_metadata.json").is_file()


# ---------------------------------------------------------------- bad inputs


def _wav(path):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    return path


def _zero_frames(path):
    import cv2

    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48)).release()
    return path


def _one_frame(path):
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    w.write(np.zeros((48, 64, 3), np.uint8))
    w.release()
    return path


def _truncated(path, clip):
    data = Path(clip).read_bytes()
    path.write_bytes(data[: len(data) // 2])  # OpenCV's mp4 keeps its index at the end
    return path


BAD = {
    "text": (lambda p, c: (p.write_text("hello, not a video\n"), p)[1], "a text file"),
    "empty": (lambda p, c: (p.write_bytes(b""), p)[1], "empty"),
    "truncated": (_truncated, "truncated"),
    "zero_frames": (lambda p, c: _zero_frames(p), "zero frames"),
    "one_frame": (lambda p, c: _one_frame(p), "at least 2 frames"),
    "audio_only_wav": (lambda p, c: _wav(p.with_suffix(".wav")), "no video stream"),
    "missing": (lambda p, c: p, "no such file"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_one_line_error(tmp_path, clip, kind):
    make, words = BAD[kind]
    src = make(tmp_path / f"{kind}.mp4", clip)
    out = tmp_path / "out.json"
    r = run_script("video2metadata.py", "--video", src, "--meta_data", out, "--no_cache")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("video2metadata.py: error: "), r.stderr
    assert words in lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not out.exists() and list(tmp_path.glob(".out*")) == []


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program")
def test_audio_only_mp4_and_cut_stream(tmp_path, clip):
    audio = tmp_path / "audio.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-c:a", "aac", str(audio)], check=True)
    with pytest.raises(UserError, match="no video track"):
        analysis.analyse_video(audio, use_cache=False, progress=False)
    # index first (faststart), then cut: OpenCV opens it and decoding stops early
    fs = tmp_path / "fs.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(clip), "-c", "copy", "-movflags", "+faststart",
                    str(fs)], check=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fs.read_bytes()[: fs.stat().st_size * 2 // 5])
    with pytest.raises(UserError, match="truncated"):
        analysis.analyse_video(cut, use_cache=False, progress=False)


def test_metadata2numpy_bad_input(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for meta in (bad, tmp_path / "missing.json"):
        r = run_script("metadata2numpy_mix.py", "--meta_data", meta, "--out_dir", tmp_path / "o")
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- cache


def test_cache_keyed_by_content_and_settings(tmp_path, clip):
    cdir = tmp_path / "cache"
    video = tmp_path / "v.mp4"
    shutil.copy(clip, video)
    first = analysis.analyse(video, cache_dir=cdir, progress=False)
    entries = list(cdir.glob("*.npz"))
    assert len(entries) == 1
    # prove the next call reads the entry: plant a recognisable change in it
    planted = features.FlowFeatures(first.features.fps, first.features.directogram, first.features.motion * 0 + 7.0,
                                    first.features.info)
    cache.save(entries[0], planted)
    renamed = tmp_path / "renamed.mp4"
    shutil.copy(video, renamed)
    again = analysis.analyse_video(renamed, cache_dir=cdir, progress=False)
    assert again["flow_magnitude_per_bar"] == [7.0] * len(again["flow_magnitude_per_bar"])
    assert again["vbeats"] == first.metadata["vbeats"]  # same directogram -> same beats
    # same name, new content: a miss, a new entry, the real values
    vf.write_static(video, fps=30, seconds=2, size=(160, 120))
    fresh = analysis.analyse_video(video, cache_dir=cdir, progress=False)
    assert fresh["vbeats"] == [] and max(fresh["flow_magnitude_per_bar"]) < 0.01
    assert len(list(cdir.glob("*.npz"))) == 2
    # other settings (exact mode): another entry
    analysis.analyse_video(video, exact=True, cache_dir=cdir, progress=False)
    assert len(list(cdir.glob("*.npz"))) == 3
    # a damaged entry is ignored and rewritten
    for e in cdir.glob("*.npz"):
        e.write_bytes(b"garbage")
    assert analysis.analyse_video(video, cache_dir=cdir, progress=False)["vbeats"] == []


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CMT_CACHE_DIR", str(tmp_path / "env_cache"))
    assert cache.default_dir() == tmp_path / "env_cache"
    monkeypatch.delenv("CMT_CACHE_DIR")
    assert cache.default_dir() == ROOT / ".cache" / "video2npz"
