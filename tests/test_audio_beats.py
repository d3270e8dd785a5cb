"""Beat coverage and beat hit on the rendered audio (vidscore.evaluation.audio_beats).

Clicks synthesised at known times against hand-made beat lists give hand-worked scores; a song
made by the test and rendered by the real FluidSynth gives onsets at its notes; evaluate.py
reports the scores of the WAV inference writes beside the MIDI.
"""
from __future__ import annotations

import json
import shutil
import wave

import miditoolkit
import numpy as np
import pytest

from vidscore import rendering
from vidscore.evaluation import audio_beats as A
from vidscore.evaluation import report

SR = 44100
needs_fluidsynth = pytest.mark.skipif(not shutil.which("fluidsynth"),
                                      reason="fluidsynth is installed by `make test` (scripts/system_deps.sh)")


def clicks(times, seconds, rate=SR, seed=0):
    """Noise bursts of 2 ms (decaying over 0.7 ms) at ``times`` in silence."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * rate))
    for t in times:
        i = int(round(t * rate))
        x[i:i + 100] += 0.5 * rng.standard_normal(100) * np.exp(-np.arange(100) / 30)[:len(x[i:i + 100])]
    return x


def write_wav(path, x, rate=SR):
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def test_clicks_are_found_within_one_frame(tmp_path):
    times = [0.0, 0.25, 0.5, 1.0, 1.13, 2.0, 2.5, 3.7]       # 0.13 s apart at the closest
    write_wav(tmp_path / "c.wav", clicks(times, 4.5))
    onsets, length = A.wav_onsets(tmp_path / "c.wav")
    assert length == pytest.approx(4.5, abs=1 / SR)
    assert len(onsets) == len(times)
    assert np.abs(onsets - times).max() <= A.HOP_S + 1e-9      # the frames are 10 ms apart
    stereo = np.stack([clicks(times, 4.5), 0.5 * clicks(times, 4.5)], axis=1)
    assert len(A.detect_onsets(stereo, SR)) == len(times)       # channels are averaged
    assert len(A.detect_onsets(np.zeros(SR), SR)) == 0           # silence has none


def test_hand_worked_coverage_and_hit(tmp_path):
    """Clicks at 0.5, 1.0, 1.5, 2.0 and 3.0 s; visual beats at 0.52 (20 ms from a click), 1.04
    (40 ms), 1.61 (110 ms: off), 2.5 (500 ms: off), 3.0 and 3.03 (0 and 30 ms).  Coverage: 4 of
    the 6 beats have a click within 70 ms = 2/3.  Hit: the clicks at 0.5, 1.0 and 3.0 are near a
    beat, 1.5 and 2.0 are not = 3/5.  (The detector's 10 ms frames move no distance across 70 ms.)"""
    beats = [0.52, 1.04, 1.61, 2.5, 3.0, 3.03]
    write_wav(tmp_path / "c.wav", clicks([0.5, 1.0, 1.5, 2.0, 3.0], 4.0))
    s = A.audio_beat_scores(tmp_path / "c.wav", beats)
    assert s["n_audio_onsets"] == 5
    assert s["beat_coverage"] == pytest.approx(4 / 6) and s["beat_hit"] == pytest.approx(3 / 5)
    # chance: the windows +-70 ms around the 6 beats over 4 s; 3.0 and 3.03 overlap into 2.93..3.10
    assert s["beat_hit_chance"] == pytest.approx((4 * 0.14 + 0.17) / 4.0, abs=1e-9)
    # the video is 2.2 s long: the click at 3.0 s is not heard, nor are the beats after it counted
    s = A.audio_beat_scores(tmp_path / "c.wav", [b for b in beats if b <= 2.2], duration=2.2)
    assert s["n_audio_onsets"] == 4 and s["beat_hit"] == pytest.approx(2 / 4)
    assert s["beat_coverage"] == pytest.approx(2 / 3)


def test_the_scores_as_functions():
    assert A.beat_coverage([1.0], [1.07]) == 1.0 and A.beat_coverage([1.0], [1.0701]) == 0.0   # 70 ms inclusive
    assert A.beat_coverage([1.0, 2.0, 3.0, 4.0], [0.95, 3.96]) == 0.5
    assert A.beat_hit([1.0, 2.0], [0.95, 1.5, 2.06, 2.2]) == 0.5
    assert A.beat_hit([2.0], [1.9, 2.1], tol=0.1) == 1.0
    assert np.isnan(A.beat_coverage([], [1.0])) and np.isnan(A.beat_hit([1.0], []))
    assert A.beat_coverage([1.0], []) == 0.0 and A.beat_hit([], [1.0]) == 0.0
    assert A.chance([1.0, 1.1], 4.0) == pytest.approx((1.17 - 0.93) / 4)     # overlapping windows count once
    assert A.chance([0.0], 1.0) == pytest.approx(0.07)                         # clipped at the start
    assert A.chance([0.0, 0.5, 1.0], 1.0) == pytest.approx(0.07 + 0.14 + 0.07)


def song_midi(path, tempo=100.0, seed=1):
    """16 beats at ``tempo``: a piano note on each, and strings, bass, guitar and drums on a random
    half; returns the beat times (seconds) at which notes start."""
    rng = np.random.default_rng(seed)
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    midi.tempo_changes = [miditoolkit.TempoChange(tempo, 0)]
    starts = set()
    for name, program, drum, pitch in [("Piano", 0, False, 60), ("Strings", 48, False, 67), ("Bass", 33, False, 40),
                                       ("Guitar", 25, False, 64), ("Drums", 0, True, 36)]:
        inst = miditoolkit.Instrument(program=program, is_drum=drum, name=name)
        for b in range(16):
            if name == "Piano" or rng.random() < 0.5:
                inst.notes.append(miditoolkit.Note(90, pitch + b % 3, b * 480, b * 480 + 400))
                starts.add(b)
        midi.instruments.append(inst)
    midi.dump(str(path))
    return np.array(sorted(starts)) * 60.0 / tempo


@needs_fluidsynth
def test_a_rendered_song_covers_the_beats_at_its_notes(tmp_path):
    beats = song_midi(tmp_path / "song.mid")
    rendering.render_wav(tmp_path / "song.mid", tmp_path / "song.wav")
    s = A.audio_beat_scores(tmp_path / "song.wav", beats)
    assert s["beat_coverage"] >= 0.95 and s["beat_hit"] >= 0.9, s
    onsets, _ = A.wav_onsets(tmp_path / "song.wav")
    near = onsets[np.abs(onsets[:, None] - beats[None]).min(axis=1) <= A.TOLERANCE_S]
    assert np.abs(near[:, None] - beats[None]).min(axis=1).max() <= 0.03    # FluidSynth's onsets: ~10 ms late
    # beats half-way between the notes (0.3 s off) are not covered
    off = A.audio_beat_scores(tmp_path / "song.wav", beats[:-1] + 0.3)
    assert off["beat_coverage"] <= 0.1 and off["beat_hit"] <= 0.1, off


@needs_fluidsynth
def test_evaluate_reports_the_wav_scores(tmp_path):
    gen = tmp_path / "gen"
    gen.mkdir()
    beats = song_midi(gen / "clip_0.mid")
    rendering.render_wav(gen / "clip_0.mid", gen / "clip_0.wav")
    song_midi(gen / "clip_1.mid", seed=2)                        # no WAV: no audio scores
    meta = {"duration": 9.6, "tempo": 100.0, "flow_magnitude_per_bar": [1.0] * 4,
            "vbeats": [{"start_time": float(t), "weight": 1.0} for t in beats]}
    (tmp_path / "clip_metadata.json").write_text(json.dumps(meta))
    out = report.evaluate(str(gen), videos=str(tmp_path), plots=False, settings=report.Settings(si=None))
    rows = {r["name"]: r for r in out["generated"]["songs"]}
    expect = A.audio_beat_scores(gen / "clip_0.wav", beats, 9.6)
    for key in ("beat_coverage", "beat_hit", "beat_coverage_chance", "beat_hit_chance", "n_audio_onsets"):
        assert rows["clip_0"][key] == pytest.approx(expect[key]), key
    assert rows["clip_0"]["beat_coverage"] >= 0.95
    assert "beat_coverage" not in rows["clip_1"]
    assert out["generated"]["aggregate"]["beat_coverage"]["n"] == 1
    assert "beat coverage (audio)" in (gen / "evaluation" / "report.md").read_text()
