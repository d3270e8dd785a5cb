"""The main job end to end: a synthetic video in, MIDI, WAV and the video with music out.

Real OpenCV video, real FluidSynth and ffmpeg, a tiny random model, all on CPU.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import miditoolkit
import pytest

from make_demo_video import render_demo


ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "src" / "main_cp.py"
needs_av = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("fluidsynth")),
                              reason="ffmpeg and fluidsynth are installed by `make test` (scripts/system_deps.sh)")


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-count_frames",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return Path(render_demo(str(tmp_path_factory.mktemp("video") / "clip.mp4"), seconds=6.0, fps=25,
                            width=320, height=180))


def run_main(*args, env=None):
    return subprocess.run([sys.executable, str(MAIN), "--mode", "inference", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


@needs_av
def test_video_in_video_with_music_out(tiny_ckpt, video, tmp_path):
    before = sha(video)
    out = tmp_path / "out"
    res = run_main("--videos", video, "--ckpt", tiny_ckpt, "--out_dir", out, "--num_songs", 2, "--seed", 3)
    assert res.returncode == 0, res.stderr[-3000:]
    assert sha(video) == before                                    # the input is untouched
    meta = json.loads((out / "clip_metadata.json").read_text())
    src_streams = ffprobe(video)
    src_v = [s for s in src_streams if s["codec_type"] == "video"][0]
    for k in range(2):
        for ext in ("mid", "wav", "mp4", "json"):
            assert (out / f"clip_{k}.{ext}").is_file(), f"clip_{k}.{ext}"
            assert f"clip_{k}.{ext}" in res.stdout                 # listed in the final summary
        streams = ffprobe(out / f"clip_{k}.mp4")
        vs = [s for s in streams if s["codec_type"] == "video"]
        aus = [s for s in streams if s["codec_type"] == "audio"]
        assert len(vs) == 1 and len(aus) == 1
        # the original video stream, copied: same codec, size and frames
        assert (vs[0]["codec_name"], vs[0]["width"], vs[0]["height"], vs[0]["nb_read_frames"]) == \
            (src_v["codec_name"], src_v["width"], src_v["height"], src_v["nb_read_frames"])
        assert abs(float(aus[0]["duration"]) - float(src_v["duration"])) <= 0.1
        midi = miditoolkit.MidiFile(str(out / f"clip_{k}.mid"))
        assert abs(midi.tempo_changes[0].tempo - meta["tempo"]) < 1e-3
        seconds_per_tick = 60.0 / (meta["tempo"] * midi.ticks_per_beat)
        end = max(n.end for inst in midi.instruments for n in inst.notes) * seconds_per_tick
        bar = 240.0 / meta["tempo"]
        assert end >= meta["duration"] - bar                       # the music reaches the last bar
        first = min(n.start for inst in midi.instruments for n in inst.notes) * seconds_per_tick
        assert first < bar
    assert (out / "clip_0.mid").read_bytes() != (out / "clip_1.mid").read_bytes()


@needs_av
def test_same_seed_same_music(tiny_ckpt, video, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        assert run_main("--videos", video, "--ckpt", tiny_ckpt, "--out_dir", d, "--render", 0).returncode == 0
    assert (a / "clip_0.mid").read_bytes() == (b / "clip_0.mid").read_bytes()


def test_missing_fluidsynth_still_writes_midi(tiny_ckpt, video, tmp_path):
    # a PATH with python's folder and ffmpeg but no fluidsynth
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for prog in ("ffmpeg", "ffprobe"):
        if shutil.which(prog):
            os.symlink(shutil.which(prog), bin_dir / prog)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{bin_dir}")
    out = tmp_path / "out"
    res = run_main("--videos", video, "--ckpt", tiny_ckpt, "--out_dir", out, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (out / "clip_0.mid").is_file()
    assert not (out / "clip_0.wav").exists() and not (out / "clip_0.mp4").exists()
    lines = [ln for ln in res.stderr.splitlines() if "fluidsynth not found" in ln]
    assert len(lines) == 1 and "apt-get install" in lines[0]


def test_output_never_overwrites_input(tiny_ckpt, video, tmp_path):
    # an input named like an output of another input in the same folder
    folder = tmp_path / "vids"
    folder.mkdir()
    shutil.copy(video, folder / "clip.mp4")
    shutil.copy(video, folder / "clip_0.mp4")
    before = sha(folder / "clip_0.mp4")
    res = run_main("--videos", folder, "--ckpt", tiny_ckpt, "--out_dir", folder)
    assert res.returncode != 0
    assert "overwrite an input" in res.stderr and "Traceback" not in res.stderr
    assert sha(folder / "clip_0.mp4") == before


def test_bad_inputs_give_one_line_errors(tiny_ckpt, tmp_path):
    txt = tmp_path / "notes.mp4"
    txt.write_text("not a video")
    for args in (["--videos", tmp_path / "missing.mp4", "--ckpt", tiny_ckpt],
                 ["--videos", txt, "--ckpt", tiny_ckpt, "--out_dir", tmp_path / "o"],
                 ["--videos", txt, "--ckpt", tmp_path / "no.pt"]):
        res = run_main(*args)
        assert res.returncode == 2
        assert "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "o" / "notes_0.mid").exists()


def test_the_same_seed_gives_the_same_midi_whatever_precision_the_cache_remembers(tiny_ckpt, video, tmp_path):
    """--dtype auto never reads the timing cache: a fresh cache and caches that remember each
    precision `--dtype fastest` could have chosen give byte-identical songs (issue 25)."""
    meta_dir = tmp_path / "meta"
    first = run_main("--videos", video, "--ckpt", tiny_ckpt, "--out_dir", meta_dir, "--render", 0, "--seed", 4)
    assert first.returncode == 0, first.stderr[-3000:]
    npz = meta_dir / "clip.npz"
    from vidscore import compute
    from vidscore.model.cmt import load_checkpoint
    key = compute.dtype_key(load_checkpoint(tiny_ckpt), 1, __import__("torch").device("cpu")) \
        + " | float32,bfloat16,int8"
    songs = {}
    for remembered in (None, "float32", "bfloat16", "int8"):
        cache = tmp_path / f"cache_{remembered}"
        cache.mkdir()
        if remembered:
            (cache / "dtype.json").write_text(json.dumps({key: remembered}))
        res = run_main("--videos", npz, "--ckpt", tiny_ckpt, "--out_dir", tmp_path / f"out_{remembered}",
                       "--render", 0, "--seed", 4, "--num_songs", 2,
                       env=dict(os.environ, CMT_CACHE_DIR=str(cache)))
        assert res.returncode == 0, res.stderr[-3000:]
        songs[remembered] = [sha(tmp_path / f"out_{remembered}" / f"clip_{k}.mid") for k in range(2)]
        assert not remembered or json.loads((cache / "dtype.json").read_text()) == {key: remembered}
    assert len({tuple(v) for v in songs.values()}) == 1, songs
    assert songs[None][0] != songs[None][1]          # two songs, not one copied
    assert (meta_dir / "clip_0.mid").read_bytes() != b""
