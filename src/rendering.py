"""From MIDI to sound and back onto the video: FluidSynth and ffmpeg.

``render_wav`` plays a MIDI file through FluidSynth with a General MIDI soundfont (the MIDI
carries the video's tempo, so the audio has the video's pace).  ``mux`` copies the original
video stream unchanged and adds the new audio, padded or trimmed to the video's length with
a short fade-out.  Missing programs raise :class:`MissingProgram`, whose message names the
program and how to install it, so callers can keep the MIDI and carry on.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cli

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2",
              "/usr/share/sounds/sf2/default-GM.sf2", "/usr/share/soundfonts/default.sf2")
INSTALL = "apt-get install -y ffmpeg fluidsynth fluid-soundfont-gm"


class MissingProgram(Exception):
    """A system program (or the soundfont) the step needs is not installed."""


def find_soundfont() -> str:
    """The General MIDI soundfont: $CMT_SOUNDFONT, else Debian's fluid-soundfont-gm."""
    env = os.environ.get("CMT_SOUNDFONT")
    if env:
        if not Path(env).is_file():
            raise MissingProgram(f"CMT_SOUNDFONT={env} is not a file; point it at a .sf2 General MIDI soundfont")
        return env
    for sf in SOUNDFONTS:
        if Path(sf).is_file():
            return sf
    raise MissingProgram(f"no General MIDI soundfont found; install one with: {INSTALL}")


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise MissingProgram(f"{program} not found, so only the MIDI was written; install it with: {INSTALL}")
    return path


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{what} failed: {tail[0]}")


def render_wav(midi_path: str | os.PathLike, wav_path: str | os.PathLike, sample_rate: int = 44100,
               gain: float = 0.6) -> str:
    """Render ``midi_path`` to a 16-bit stereo WAV with FluidSynth."""
    fluidsynth = need("fluidsynth")
    soundfont = find_soundfont()
    with cli.atomic_path(wav_path) as tmp:
        _run([fluidsynth, "-ni", "-q", "-g", str(gain), "-r", str(sample_rate), "-T", "wav",
              "-F", tmp, soundfont, str(midi_path)], "fluidsynth")
    return str(wav_path)


def probe_duration(path: str | os.PathLike) -> float:
    """Duration of the file's first video stream (or of the container) in seconds."""
    ffprobe = need("ffprobe")
    res = subprocess.run([ffprobe, "-v", "error", "-print_format", "json", "-show_streams",
                          "-show_format", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"ffprobe cannot read {path}")
    info = json.loads(res.stdout)
    for s in info.get("streams", []):
        if s.get("codec_type") == "video" and s.get("duration"):
            return float(s["duration"])
    return float(info["format"]["duration"])


def mux(video_path: str | os.PathLike, wav_path: str | os.PathLike, out_path: str | os.PathLike,
        fade: float = 1.5) -> str:
    """Write ``out_path``: the video stream of ``video_path`` copied as is, plus ``wav_path``
    as AAC audio cut (or padded with silence) to the video's length, fading out at the end."""
    ffmpeg = need("ffmpeg")
    duration = probe_duration(video_path)
    fade = max(0.0, min(fade, duration / 4))
    afilter = f"apad,atrim=0:{duration:.3f},afade=t=out:st={max(0.0, duration - fade):.3f}:d={fade:.3f}"
    with cli.atomic_path(out_path) as tmp:
        _run([ffmpeg, "-v", "error", "-y", "-i", str(video_path), "-i", str(wav_path),
              "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-af", afilter,
              "-c:a", "aac", "-b:a", "192k", "-t", f"{duration:.3f}", "-movflags", "+faststart", tmp],
             "ffmpeg")
    return str(out_path)
