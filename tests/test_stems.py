"""Stems: one WAV per instrument class beside the mix, as long as the mix and summing to it
(vidscore.stems), with the real FluidSynth; and ``--stems 1`` through main_cp.py.

The tolerance of the sum is zero: each stem is rounded to 16 bits first and the mix is the sum
of those 16-bit samples (the rounding is in the stems, so it cannot show in the sum).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import wave
from pathlib import Path

import miditoolkit
import numpy as np
import pytest

from vidscore import rendering, stems
from vidscore.music import representation as R
from make_demo_video import render_demo

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "src" / "main_cp.py"
pytestmark = pytest.mark.skipif(not shutil.which("fluidsynth"),
                                reason="fluidsynth is installed by `make test` (scripts/system_deps.sh)")

TRACKS = {"Drums": (0, True, 36), "Piano": (0, False, 60), "Bass": (33, False, 40), "Strings": (48, False, 67)}


def make_midi(path, tracks=("Drums", "Piano", "Bass", "Strings"), velocity=90, tempo=120.0):
    """Two bars: each track plays on other beats, and the strings hold a long last note, so the
    stems end at different times (the strings' release rings longest)."""
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    midi.tempo_changes = [miditoolkit.TempoChange(tempo, 0)]
    for j, name in enumerate(tracks):
        program, drum, pitch = TRACKS[name]
        inst = miditoolkit.Instrument(program=program, is_drum=drum, name=name)
        for b in range(j % 2, 8, 1 + j % 2):
            inst.notes.append(miditoolkit.Note(velocity, pitch + b % 4, b * 480, b * 480 + 300))
        if name == "Strings":
            inst.notes.append(miditoolkit.Note(velocity, pitch, 8 * 480, 10 * 480))
        midi.instruments.append(inst)
    midi.dump(str(path))
    return path


def samples(path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, rendering.SAMPLE_RATE)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2).astype(np.int64)


def check_stems(mix_path, paths, names):
    """Each stem as long as the mix, named by its class, and their sum the mix exactly."""
    assert [Path(p).name for p in paths] == [f"{Path(mix_path).stem}_{n}.wav" for n in names]
    assert all(Path(p).parent == stems.stems_folder(mix_path) for p in paths)
    mix = samples(mix_path)
    parts = [samples(p) for p in paths]
    assert all(len(p) == len(mix) for p in parts)
    assert all(np.abs(p).max() > 1000 for p in parts)              # each stem holds its sound
    assert np.abs(sum(parts) - mix).max() == 0
    return mix, parts


def test_stems_sum_to_the_mix_and_last_as_long(tmp_path):
    midi = make_midi(tmp_path / "song.mid")
    paths = stems.render_with_stems(midi, tmp_path / "song.wav")
    mix, parts = check_stems(tmp_path / "song.wav", paths, ["Drums", "Piano", "Bass", "Strings"])
    assert not list(tmp_path.glob(".stems-*")) and not list(tmp_path.rglob("*.part*"))   # no leftovers
    # the mix is FluidSynth's own render of the whole song, to within its non-additivity: same length (to
    # one 64-sample block), and the difference is below 1 % of the mix's RMS
    rendering.render_wav(midi, tmp_path / "direct.wav")
    direct = samples(tmp_path / "direct.wav")
    assert abs(len(direct) - len(mix)) <= 64
    n = min(len(direct), len(mix))
    rms = lambda x: np.sqrt(np.mean(np.asarray(x, float) ** 2))   # noqa: E731
    assert rms(direct[:n] - mix[:n]) < 0.01 * rms(mix)
    # every stem plays to the song's end: the strings' last note starts at 4 s, after the others end
    tail = [np.flatnonzero(np.abs(p).max(axis=1) > 30)[-1] / rendering.SAMPLE_RATE for p in parts]
    assert tail[3] > 5.0 and max(tail[:3]) < tail[3]


def test_one_gain_keeps_a_loud_mix_from_clipping(tmp_path):
    midi = make_midi(tmp_path / "loud.mid", velocity=127)
    paths = stems.render_with_stems(midi, tmp_path / "loud.wav", gain=6.0)
    mix, parts = check_stems(tmp_path / "loud.wav", paths, ["Drums", "Piano", "Bass", "Strings"])
    # lowered, not clipped: the float peak goes to 32767 - 4 (room for the 4 stems' rounding), the
    # rounded sum is within 4 * 0.5 of that
    assert np.abs(mix).max() <= 32767 - 4 + 2
    assert np.abs(mix).max() >= 32767 * 0.98                       # by one gain to just below full scale
    assert stems.shared_gain(0.5, 4) == 1.0 and stems.shared_gain(2.0, 1) == pytest.approx(32766 / 32767 / 2)


def test_a_stem_of_a_class_the_song_no_longer_has_goes(tmp_path):
    wav = tmp_path / "song.wav"
    stems.render_with_stems(make_midi(tmp_path / "a.mid"), wav)
    (stems.stems_folder(wav) / "notes.txt").write_text("mine")     # not ours: kept
    paths = stems.render_with_stems(make_midi(tmp_path / "b.mid", tracks=("Piano", "Bass")), wav)
    check_stems(wav, paths, ["Piano", "Bass"])
    assert sorted(p.name for p in stems.stems_folder(wav).iterdir()) == ["notes.txt", "song_Bass.wav", "song_Piano.wav"]


def test_tracks_are_grouped_by_class(tmp_path):
    """Two piano tracks make one Piano stem; an effects track (GM 120-127: no class) is Other."""
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    for program, pitch in ((0, 60), (1, 64), (122, 60)):
        inst = miditoolkit.Instrument(program=program, name="")
        inst.notes.append(miditoolkit.Note(90, pitch, 0, 960))
        midi.instruments.append(inst)
    midi.dump(str(tmp_path / "m.mid"))
    groups = stems.split_by_class(tmp_path / "m.mid")
    assert list(groups) == ["Piano", stems.OTHER] and len(groups["Piano"].instruments) == 2
    # each ends where the whole file does: its end of track, one tick after the last note-off (960)
    assert all(g.markers[-1].time == 961 for g in groups.values())
    paths = stems.render_with_stems(tmp_path / "m.mid", tmp_path / "m.wav")
    check_stems(tmp_path / "m.wav", paths, ["Piano", "Other"])


def run_main(*args):
    return subprocess.run([sys.executable, str(MAIN), "--mode", "inference", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_the_flag_reaches_the_options_and_the_output_checks(tiny, tmp_path):
    from vidscore import cli
    from vidscore.generation import job
    assert job.options_from_hp({}, tiny).stems is False
    opts = job.options_from_hp({"stems": 1, "out_dir": str(tmp_path), "num_songs": 2}, tiny)
    assert opts.stems is True
    planned = job.planned_outputs(tmp_path / "clip.mp4", opts)
    assert tmp_path / "clip_1_stems" / "clip_1_Strings.wav" in planned
    assert len(planned) == 2 * 4 + 2 + 2 * 6                          # mid wav mp4 json, metadata npz, 6 stems
    assert not any("_stems" in str(p) for p in job.planned_outputs(tmp_path / "clip.mp4",
                                                                   job.options_from_hp({}, tiny)))
    for bad in (2, "yes", -1):
        with pytest.raises(cli.UserError, match="--stems takes 0 or 1"):
            job.options_from_hp({"stems": bad}, tiny)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is installed by `make test`")
def test_main_writes_stems_only_when_asked(tiny_ckpt, tmp_path):
    video = render_demo(str(tmp_path / "clip.mp4"), seconds=4.0, fps=25, width=160, height=96)
    res = run_main("--videos", video, "--ckpt", tiny_ckpt, "--out_dir", tmp_path / "plain", "--seed", 1)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "plain" / "clip_0.wav").is_file()
    assert not list((tmp_path / "plain").glob("*_stems"))          # --stems 0, the default, writes none
    out = tmp_path / "stems"
    res = run_main("--videos", video, "--ckpt", tiny_ckpt, "--out_dir", out, "--seed", 1, "--stems", 1)
    assert res.returncode == 0, res.stderr[-2000:]
    midi = R.load_midi(out / "clip_0.mid")
    classes = sorted({R.instrument_class(i.name, i.program, i.is_drum) for i in midi.instruments if i.notes})
    names = [R.D.INSTRUMENTS[c - 1] for c in classes]
    paths = sorted(stems.stems_folder(out / "clip_0.wav").glob("*.wav"),
                   key=lambda p: R.D.INSTRUMENTS.index(p.stem.split("_")[-1]))
    check_stems(out / "clip_0.wav", paths, names)
    assert len(paths) >= 2
    assert all(p.name in res.stdout for p in paths)                # listed with the song's files
    assert (out / "clip_0.mid").read_bytes() == (tmp_path / "plain" / "clip_0.mid").read_bytes()
    bad = run_main("--videos", video, "--ckpt", tiny_ckpt, "--out_dir", tmp_path / "bad", "--stems", 2)
    assert bad.returncode == 2 and "--stems takes 0 or 1" in bad.stderr and "Traceback" not in bad.stderr
