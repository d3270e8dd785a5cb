"""The music on the video: kept original sound, ducking, music level and loudness, with real
FluidSynth and ffmpeg.  The tests make a video whose own sound is a 1 kHz sine, render a MIDI
chord pattern (C3 E3 G3: all energy well below 1 kHz) and measure the decoded result: the
energy in a narrow band at 1 kHz (the original sound) and in 80-900 Hz (the music), and the
integrated loudness of the decoded stereo audio with pyloudnorm, an implementation of ITU-R
BS.1770 independent of the ffmpeg filter that measures the mix for the gain.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import miditoolkit
import numpy as np
import pytest

from vidscore import rendering
from make_demo_video import render_demo

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "src" / "main_cp.py"
SR = 44100
needs_av = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("fluidsynth")),
                              reason="ffmpeg and fluidsynth are installed by `make test` (scripts/system_deps.sh)")
pytestmark = needs_av


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    silent = Path(render_demo(str(d / "silent.mp4"), seconds=6.0, fps=25, width=160, height=96))
    # the whole video with a 1 kHz tone; and one whose tone stops at 3 s (silence after)
    ffmpeg("-i", silent, "-f", "lavfi", "-i", f"sine=frequency=1000:duration=6:sample_rate={SR}",
           "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-shortest", d / "tone.mp4")
    ffmpeg("-i", silent, "-f", "lavfi", "-i", f"sine=frequency=1000:duration=3:sample_rate={SR}",
           "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", d / "half.mp4")
    midi = miditoolkit.MidiFile()
    midi.ticks_per_beat = 480
    piano = miditoolkit.Instrument(program=0)
    for beat in range(14):                                      # 7 s of chords at 120 bpm
        for pitch in (48, 52, 55):
            piano.notes.append(miditoolkit.Note(velocity=90, pitch=pitch, start=beat * 480, end=beat * 480 + 400))
    midi.instruments.append(piano)
    midi.dump(str(d / "music.mid"))
    rendering.render_wav(d / "music.mid", d / "music.wav")
    return {"dir": d, "silent": silent, "tone": d / "tone.mp4", "half": d / "half.mp4", "music": d / "music.wav"}


def decoded(path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(SR),
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32)


def bands(x: np.ndarray, t0: float, t1: float) -> tuple[float, float]:
    """(energy at 1 kHz +-20 Hz, energy at 80-900 Hz) of ``x`` between t0 and t1 seconds."""
    seg = x[int(t0 * SR):int(t1 * SR)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
    f = np.fft.rfftfreq(len(seg), 1 / SR)
    return float(spec[(f > 980) & (f < 1020)].sum()), float(spec[(f > 80) & (f < 900)].sum())


def narrow_tone(x: np.ndarray, t0: float, t1: float) -> float:
    """Energy of ``x`` at 1000 +- 2 Hz between t0 and t1 seconds (0.25 Hz bins over 4 s)."""
    seg = x[int(t0 * SR):int(t1 * SR)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
    f = np.fft.rfftfreq(len(seg), 1 / SR)
    return float(spec[(f > 998) & (f < 1002)].sum())


def db(a, b):
    return 10 * np.log10(a / b)


def integrated_loudness(path) -> float:
    import pyloudnorm
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "2", "-ar", str(SR),
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    x = np.frombuffer(raw, np.float32).reshape(-1, 2).astype(np.float64)
    return float(pyloudnorm.Meter(SR).integrated_loudness(x))


def test_kept_sound_and_music_both_audible(media):
    d = media["dir"]
    keep = rendering.mux(media["tone"], media["music"], d / "keep.mp4", keep_audio=True)
    alone = rendering.mux(media["tone"], media["music"], d / "alone.mp4")           # as before: music only
    tone_k, music_k = bands(decoded(keep), 1.0, 5.0)
    tone_a, music_a = bands(decoded(alone), 1.0, 5.0)
    tone_o, music_o = bands(decoded(media["tone"]), 1.0, 5.0)                       # the original sound alone
    assert db(tone_k, tone_a) > 20          # the tone is there with keep_audio, and not without it
    assert db(music_k, music_o) > 20        # the music is there, far above what the tone leaks into its band
    assert db(tone_k, music_k) > 6          # and it lies under the tone
    assert abs(integrated_loudness(keep) - (-16.0)) < 1.0
    assert abs(integrated_loudness(alone) - (-16.0)) < 1.0


def test_music_is_ducked_while_the_original_is_loud(media):
    out = decoded(rendering.mux(media["half"], media["music"], media["dir"] / "half_keep.mp4", keep_audio=True,
                                loudness=None))
    music = decoded(media["music"])
    _, during = bands(out, 1.0, 2.8)        # the tone plays (0-3 s)
    _, after = bands(out, 3.6, 5.4)         # silence in the original
    _, during_m = bands(music, 1.0, 2.8)
    _, after_m = bands(music, 3.6, 5.4)
    # relative to the music's own level in the same windows, it is at least 6 dB lower under the tone
    assert db(after, during) - db(after_m, during_m) > 6


def test_music_gain_sets_the_music_level(media):
    d = media["dir"]
    levels = {}
    for gain in (0.0, -10.0):
        x = decoded(rendering.mux(media["tone"], media["music"], d / f"gain{gain:g}.mp4", keep_audio=True,
                                  music_gain_db=gain, loudness=None))
        tone, music = bands(x, 1.0, 5.0)
        levels[gain] = (tone, music)
    assert db(levels[0.0][1], levels[-10.0][1]) == pytest.approx(10.0, abs=1.0)     # the music: 10 dB
    assert db(levels[0.0][0], levels[-10.0][0]) == pytest.approx(0.0, abs=0.5)      # the tone: unchanged


def test_loudness_target_and_silent_video(media):
    d = media["dir"]
    out = rendering.mux(media["tone"], media["music"], d / "l23.mp4", keep_audio=True, loudness=-23.0)
    assert abs(integrated_loudness(out) - (-23.0)) < 1.0
    # a video without sound: keep_audio just gives the music, as without it
    a = rendering.mux(media["silent"], media["music"], d / "s_keep.mp4", keep_audio=True)
    b = rendering.mux(media["silent"], media["music"], d / "s_plain.mp4")
    assert np.allclose(decoded(a), decoded(b))
    assert abs(integrated_loudness(a) - (-16.0)) < 1.0
    for bad in (-80.0, 3.0, float("nan")):
        with pytest.raises(ValueError, match="LUFS"):
            rendering.check_loudness(bad)
    assert rendering.check_loudness(0) is None and rendering.check_loudness(-14) == -14.0


def test_cli_keep_audio(tiny_ckpt, media, tmp_path):
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, str(MAIN), "--mode", "inference", "--videos", str(media["tone"]),
                          "--ckpt", str(tiny_ckpt), "--out_dir", str(out), "--keep_audio", "1", "--loudness", "-20"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    x = decoded(out / "tone_0.mp4")
    # the video's own sound is kept: its 1000 Hz sine, measured within +-2 Hz, where no note of
    # any song can put energy (the nearest partial of an equal-tempered note is 4 Hz away, the
    # 23rd of A#1), so this holds whatever song the model writes
    tone = narrow_tone(x, 1.0, 5.0)
    tone_music = narrow_tone(decoded(out / "tone_0.wav"), 1.0, 5.0)
    assert db(tone, tone_music) > 20
    assert abs(integrated_loudness(out / "tone_0.mp4") - (-20.0)) < 1.0
    res = subprocess.run([sys.executable, str(MAIN), "--mode", "inference", "--videos", str(media["tone"]),
                          "--ckpt", str(tiny_ckpt), "--out_dir", str(tmp_path / "o2"), "--loudness", "-99"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "--loudness" in res.stderr and "Traceback" not in res.stderr


def _streams(path) -> list[dict]:
    res = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-count_frames",
                          str(path)], capture_output=True, text=True, check=True)
    return json.loads(res.stdout)["streams"]


def test_codecs_an_mp4_cannot_carry_are_re_encoded_and_the_others_copied(media):
    d = media["dir"]
    gif, ffv1 = d / "anim.gif", d / "lossless.mkv"
    ffmpeg("-i", media["silent"], "-t", "2", "-vf", "fps=10,scale=81:47", gif)          # odd size, 20 frames
    ffmpeg("-i", media["silent"], "-t", "2", "-c:v", "ffv1", ffv1)
    for src, frames, size in ((gif, 20, (80, 46)), (ffv1, 50, (160, 96))):
        out = rendering.mux(src, media["music"], d / f"{src.stem}.mp4")
        video, audio = [s for s in _streams(out) if s["codec_type"] == "video"], \
            [s for s in _streams(out) if s["codec_type"] == "audio"]
        assert video[0]["codec_name"] == "h264" and (video[0]["width"], video[0]["height"]) == size
        assert int(video[0]["nb_read_frames"]) == frames and audio[0]["codec_name"] == "aac"
    # H.264 is copied bit for bit: the same packets as the source
    out = rendering.mux(media["silent"], media["music"], d / "copied.mp4")
    packets = [subprocess.run(["ffmpeg", "-v", "error", "-i", str(p), "-map", "0:v", "-c", "copy", "-f", "md5", "-"],
                              capture_output=True, text=True, check=True).stdout for p in (media["silent"], out)]
    assert packets[0] == packets[1]


def test_a_failing_program_is_reported_by_its_reason_line():
    ffmpeg_output = ("[mp4 @ 0x5] Could not find tag for codec gif in stream #0, codec not currently supported "
                     "in container\n[out#0/mp4 @ 0x6] Could not write header (incorrect codec parameters ?)\n"
                     "Error initializing output stream 0:1 --\nConversion failed!\n")
    assert rendering.reason(ffmpeg_output).startswith("[mp4 @ 0x5] Could not find tag for codec gif")
    assert rendering.reason("  \n") == "(no output)" and rendering.reason("a\nb\n") == "b"
    with pytest.raises(rendering.RenderError, match="ffprobe cannot read .*No such file"):
        rendering.mux(Path("/nonexistent/clip.mp4"), Path("/nonexistent/music.wav"), Path("/tmp/never.mp4"))
