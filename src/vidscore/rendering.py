"""From MIDI to sound and back onto the video: FluidSynth and ffmpeg.

``render_wav`` plays a MIDI file through FluidSynth with a General MIDI soundfont (the MIDI
carries the video's tempo, so the audio has the video's pace).  ``mux`` copies the original
video stream unchanged and adds the new audio, padded or trimmed to the video's length with
a short fade-out.  With ``keep_audio`` the video's own sound stays and the music goes under
it: the music is turned down by ``music_gain_db`` and ducked (ffmpeg's ``sidechaincompress``,
keyed by the original sound) while the original is loud.  The final mix is normalised to
``loudness`` LUFS (EBU R128) in two passes: ffmpeg's ``ebur128`` measures the mix's integrated
loudness and true peak, then one linear gain brings it to the target, lowered where the true
peak would pass ``TRUE_PEAK``.  Missing programs raise :class:`MissingProgram`, whose message
names the program and how to install it, so callers can keep the MIDI and carry on.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from vidscore import cli

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2",
              "/usr/share/sounds/sf2/default-GM.sf2", "/usr/share/soundfonts/default.sf2")
INSTALL = "apt-get install -y ffmpeg fluidsynth fluid-soundfont-gm"
SAMPLE_RATE = 44100
LOUDNESS_RANGE = (-70.0, -5.0)      # the loudness targets accepted (LUFS)
TRUE_PEAK = -1.5                    # dBTP ceiling of the normalised mix
# the ducking: the music is compressed by RATIO while the original sound's RMS is above
# THRESHOLD (linear, full scale 1), reacting in ATTACK ms and letting go over RELEASE ms
DUCK = dict(threshold=0.03, ratio=8, attack=20, release=400)


# video codecs an .mp4 can carry as they are: these are copied, others re-encoded as H.264
MP4_VIDEO_CODECS = ("h264", "hevc", "mpeg4", "mpeg1video", "mpeg2video", "mjpeg", "vp9", "av1")
H264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]   # + "-crf"; sizes must be even
EVEN_SIZE = "scale=trunc(iw/2)*2:trunc(ih/2)*2"


class MissingProgram(Exception):
    """A system program (or the soundfont) the step needs is not installed."""


class RenderError(cli.UserError):
    """FluidSynth or ffmpeg refused a file; the message is ffmpeg's own reason, in one line."""


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


_REASON = re.compile(r"error|could not|cannot|invalid|not supported|unsupported|no such|denied|failed",
                     re.IGNORECASE)


def reason(output: str) -> str:
    """The line of a program's output that says why it failed: the first that names an error
    (ffmpeg's last line is often only "Conversion failed!"), else the last; "(no output)"."""
    lines = [" ".join(line.split()) for line in output.strip().splitlines() if line.strip()]
    if not lines:
        return "(no output)"
    return next((line for line in lines if _REASON.search(line)), lines[-1])[:300]


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
    if res.returncode != 0:
        raise RenderError(f"{what} failed: {reason(res.stderr or res.stdout)}")


def render_wav(midi_path: str | os.PathLike, wav_path: str | os.PathLike, sample_rate: int = 44100,
               gain: float = 0.6, sample_format: str = "s16", load_used_samples: bool = False) -> str:
    """Render ``midi_path`` to a stereo WAV with FluidSynth: 16-bit (``s16``, dithered and
    clipped by FluidSynth) or ``float`` (32-bit, FluidSynth's own samples: the stems use it).
    ``load_used_samples``: load only the soundfont's samples the song plays (FluidSynth's
    dynamic sample loading: the same sound, about half the start-up time)."""
    fluidsynth = need("fluidsynth")
    soundfont = find_soundfont()
    dynamic = ["-o", "synth.dynamic-sample-loading=1"] if load_used_samples else []
    with cli.atomic_path(wav_path) as tmp:
        _run([fluidsynth, "-ni", "-q", *dynamic, "-g", str(gain), "-r", str(sample_rate), "-T", "wav",
              "-O", sample_format, "-F", tmp, soundfont, str(midi_path)], "fluidsynth")
    return str(wav_path)


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(samples, rate) of a WAV file, the channels as stored (memory-mapped, not copied);
    UserError when it is not a WAV file scipy can read."""
    import warnings

    from scipy.io import wavfile
    try:
        with warnings.catch_warnings():      # FluidSynth adds a LIST chunk scipy only skips
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(str(path), mmap=True)
    except (ValueError, EOFError) as e:
        raise cli.UserError(f"{cli.printable(path)} is not a readable WAV file ({e})") from None
    return data, int(rate)


def _probe(path: str | os.PathLike) -> dict:
    ffprobe = need("ffprobe")
    res = subprocess.run([ffprobe, "-v", "error", "-print_format", "json", "-show_streams",
                          "-show_format", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RenderError(f"ffprobe cannot read {path}: {reason(res.stderr)}")
    return json.loads(res.stdout)


def probe_duration(path: str | os.PathLike) -> float:
    """Duration of the file's first video stream (or of the container) in seconds."""
    return _duration(_probe(path))


def _duration(info: dict) -> float:
    for s in info.get("streams", []):
        if s.get("codec_type") == "video" and s.get("duration"):
            return float(s["duration"])
    return float(info["format"]["duration"])


def video_codec(path: str | os.PathLike) -> str | None:
    """The codec of the file's first video stream as ffprobe names it (h264, av1, ...), or None."""
    return _video_codec(_probe(path))


def _video_codec(info: dict) -> str | None:
    return next((s.get("codec_name") for s in info.get("streams", []) if s.get("codec_type") == "video"), None)


def check_loudness(loudness: float | None) -> float | None:
    """A loudness target in LUFS (None or 0: no normalisation); ValueError when out of range."""
    if loudness is None or loudness == 0:
        return None
    lo, hi = LOUDNESS_RANGE
    if not (math.isfinite(loudness) and lo <= loudness <= hi):
        raise ValueError(f"the loudness target must be from {lo:g} to {hi:g} LUFS (0: off), got {loudness:g}")
    return float(loudness)


def mix_graph(duration: float, fade: float, keep_audio: bool, music_gain_db: float) -> str:
    """The ffmpeg filter graph from input 0 (the video) and 1 (the music) to ``[mix]``: the
    music cut or padded to ``duration`` and faded out; with ``keep_audio`` the music at
    ``music_gain_db``, ducked under the original sound, and the two summed."""
    fmt = f"aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"
    cut = f"apad,atrim=0:{duration:.3f}"
    music = f"[1:a:0]{fmt},{cut},afade=t=out:st={max(0.0, duration - fade):.3f}:d={fade:.3f}"
    if not keep_audio:
        return f"{music}[mix]"
    duck = ":".join(f"{k}={v}" for k, v in DUCK.items())
    return (f"{music},volume={music_gain_db:.2f}dB[music];"
            f"[0:a:0]{fmt},{cut},asplit=2[orig][key];"
            f"[music][key]sidechaincompress={duck}[ducked];"
            f"[orig][ducked]amix=inputs=2:duration=first:normalize=0[mix]")


def measure_loudness(inputs: list[str], graph: str) -> dict:
    """The first pass over ``graph``'s ``[mix]``, by ffmpeg's ``ebur128`` (EBU R128, true peak
    by 4x oversampling): {"input_i": integrated loudness in LUFS, "input_tp": true peak in dBTP}
    (floats; -inf for silence).  ``ebur128`` instead of ``loudnorm``'s measuring pass: the same
    R128 figures, but loudnorm works at 192 kHz and took 1.0 s of the 60 s demo's 1.2 s."""
    ffmpeg = need("ffmpeg")
    res = subprocess.run([ffmpeg, "-hide_banner", "-nostats", *inputs, "-filter_complex",
                          f"{graph};[mix]ebur128=peak=true[out]", "-map", "[out]", "-f", "null", "-"],
                         capture_output=True, text=True)
    at = res.stderr.rfind("Summary:")
    level = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", res.stderr[at:]) if at >= 0 else None
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", res.stderr[at:]) if at >= 0 else None
    if res.returncode != 0 or level is None:
        raise RenderError(f"ffmpeg could not measure the loudness: {reason(res.stderr)}")
    return {"input_i": float(level.group(1)), "input_tp": float(peak.group(1)) if peak else float("-inf")}


def loudness_gain(measured: dict, target: float) -> float | None:
    """The second pass's gain in dB: from the measured loudness to ``target``, lowered so that
    the true peak stays at or below ``TRUE_PEAK`` (the gain stays linear: no limiter touches the
    music); None for silence or near-silence, which has no loudness to normalise."""
    level, peak = float(measured["input_i"]), float(measured.get("input_tp", float("-inf")))
    if not math.isfinite(level) or level < LOUDNESS_RANGE[0]:
        return None
    gain = target - level
    if math.isfinite(peak):
        gain = min(gain, TRUE_PEAK - peak)
    return gain


def mux(video_path: str | os.PathLike, wav_path: str | os.PathLike, out_path: str | os.PathLike,
        fade: float = 1.5, keep_audio: bool = False, music_gain_db: float = -6.0,
        loudness: float | None = -16.0) -> str:
    """Write ``out_path``: the video stream of ``video_path`` copied as is, plus ``wav_path``
    as AAC audio cut (or padded with silence) to the video's length, fading out at the end.
    A video codec an .mp4 cannot carry (GIF, VP8, ProRes, FFV1, ...: not in
    ``MP4_VIDEO_CODECS``) is re-encoded as H.264 at visually lossless quality instead.

    ``keep_audio``: keep the video's own sound and lay the music under it (ducked, at
    ``music_gain_db``); a video without sound gets the music alone.  ``loudness``: the mix's
    integrated loudness in LUFS (None or 0: left as rendered)."""
    ffmpeg = need("ffmpeg")
    target = check_loudness(loudness)
    info = _probe(video_path)
    duration = _duration(info)
    fade = max(0.0, min(fade, duration / 4))
    keep = bool(keep_audio) and any(s.get("codec_type") == "audio" for s in info.get("streams", []))
    inputs = ["-i", str(video_path), "-i", str(wav_path)]
    graph = mix_graph(duration, fade, keep, music_gain_db)
    gain = loudness_gain(measure_loudness(inputs, graph), target) if target is not None else None
    if gain is not None:
        graph = graph[:-len("[mix]")] + f"[pre];[pre]volume={gain:.2f}dB[mix]"
    if _video_codec(info) in MP4_VIDEO_CODECS:
        video = ["-map", "0:v:0", "-c:v", "copy"]
    else:
        graph += f";[0:v:0]{EVEN_SIZE}[video]"
        video = ["-map", "[video]", *H264, "-crf", "18"]
    with cli.atomic_path(out_path) as tmp:
        _run([ffmpeg, "-v", "error", "-y", *inputs, "-filter_complex", graph, *video, "-map", "[mix]",
              "-c:a", "aac", "-b:a", "192k", "-ar", str(SAMPLE_RATE), "-t", f"{duration:.3f}",
              "-movflags", "+faststart", tmp],
             "ffmpeg")
    return str(out_path)
