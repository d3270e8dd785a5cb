"""evaluate.py end to end on a small folder: real MIDI files, a video npz, a metadata.json and a
training npz, all written here; values checked against hand-worked numbers."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from miditoolkit import Instrument, MidiFile, Note, TempoChange

from vidscore.evaluation import report as evaluate
from vidscore.evaluation import metrics as M

ROOT = Path(__file__).resolve().parents[1]
TPB = 480
STEP = TPB // 4  # MIDI ticks per 16th


def write_midi(path, tracks, tempo=120.0):
    """tracks: {(name, program, is_drum): [(onset_16th, pitch, dur_16ths), ...]}"""
    midi = MidiFile(ticks_per_beat=TPB)
    midi.tempo_changes = [TempoChange(tempo, 0)]
    for (name, program, is_drum), notes in tracks.items():
        inst = Instrument(program=program, is_drum=is_drum, name=name)
        inst.notes = [Note(velocity=80, pitch=p, start=o * STEP, end=(o + d) * STEP) for o, p, d in notes]
        midi.instruments.append(inst)
    midi.dump(str(path))


def scale_rows(bar=0):
    """Training-npz rows of one bar holding the C major scale (Bar, then Beat + Note per note)."""
    rows = [[17, 1, 8, 0, 0, 0, 0, 1, 16 * bar]]
    for i, p in enumerate([60, 62, 64, 65, 67, 69, 71]):
        t = 16 * bar + 2 * i
        rows.append([2 * i + 1, 1, 8 - i, 0, 0, 2, 1, 1, t])
        rows.append([0, 2, 0, p + 1, 3, 2, 0, 1, t])
    return rows


@pytest.fixture()
def workdir(tmp_path):
    gen, vids, other = tmp_path / "gen", tmp_path / "vids", tmp_path / "other"
    for d in (gen, vids, other):
        d.mkdir()
    # clip_0: notes on every visual beat; at the kept beats (ticks 0, 4, 16; strength 2) each
    # forced track plays 2 notes; bar densities 4 and 2 as the video asks; ends at 4.0 s.
    kept = [0, 4, 16]
    tracks = {
        ("Drums", 0, True): [(t, p, 1) for t in kept for p in (36, 42)] + [(8, 38, 1)],
        ("Piano", 0, False): [(t, p, 2) for t in kept for p in (60, 64)],
        ("Guitar", 24, False): [(t, p, 2) for t in kept for p in (55, 67)],
        ("Bass", 33, False): [(16, 36, 16)],
    }
    write_midi(gen / "clip_0.mid", tracks)
    rows = [[17, 4, 0, 0, 32, 1], [1, 0, 2, 0, 32, 1], [5, 0, 2, 4, 32, 14], [9, 0, 1, 8, 32, 26],
            [17, 2, 0, 16, 32, 51], [1, 0, 2, 16, 32, 51]]
    np.savez(vids / "clip.npz", input=np.array(rows), tempo=np.array(120.0), duration=np.array(4.0))
    # clip_1: its sidecar points at a metadata.json elsewhere (no npz): beats at 0 s (weight 0.5 ->
    # strength 3, kept) and 1 s (weight 0.1 -> strength 1, dropped); bar flows 0.05 -> density 5, 0 -> 1
    write_midi(gen / "clip_1.mid", {("Piano", 0, False): [(0, 60, 4), (8, 62, 4)]})
    meta = {"duration": 4.0, "tempo": 120.0, "flow_magnitude_per_bar": [0.05, 0.0],
            "vbeats": [{"start_time": 0.0, "bar": 0, "tick": 0, "weight": 0.5},
                       {"start_time": 1.0, "bar": 0, "tick": 8, "weight": 0.1}]}
    (other / "other_metadata.json").write_text(json.dumps(meta))
    (gen / "clip_1.json").write_text(json.dumps({"metadata": "../other/other_metadata.json",
                                                 "control_errors": {"density": 0.25}}))
    # reference: two songs of one bar of the C major scale each
    x = np.zeros((2, 20, 9), np.int64)
    for i in range(2):
        r = np.array(scale_rows(0))
        x[i, : len(r)] = r
    seq_len = np.array([15, 15])
    mask = (np.arange(20)[None, :] < seq_len[:, None]).astype(np.float32)
    meta = json.dumps({"songs": [{"id": "a"}, {"id": "b"}]})
    np.savez(tmp_path / "train.npz", x=x, mask=mask, seq_len=seq_len, metadata=np.array(meta))
    return tmp_path


def run_cli(*args):
    env = dict(os.environ, CMT_NO_PROGRESS="1", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, str(ROOT / "src" / "evaluate.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_cli_writes_report_with_hand_worked_values(workdir):
    out = workdir / "report"
    res = run_cli("--generated", workdir / "gen", "--reference", workdir / "train.npz",
                  "--videos", workdir / "vids", "--out", out)
    assert res.returncode == 0, res.stderr
    assert (out / "report.json").is_file() and (out / "report.md").is_file()
    rep = json.loads((out / "report.json").read_text())
    songs = {s["name"]: s for s in rep["generated"]["songs"]}

    a = songs["clip_0"]
    assert a["video"] == "clip"
    assert a["ba_v2m"] == 1.0 and a["ba_m2v"] == 1.0 and a["hit_rate"] == 1.0
    assert a["n_visual_beats"] == 4 and a["n_kept_beats"] == 3
    assert a["tempo_diff_bpm"] == 0.0 and a["duration_diff_s"] == pytest.approx(0.0)
    assert a["density_error"] == 0.0 and a["strength_error"] == 0.0

    b = songs["clip_1"]
    assert b["video"] == "other"
    assert b["ba_v2m"] == 1.0 and b["hit_rate"] == 1.0
    # forced tracks "auto": of Drums, Piano, Guitar only Piano plays here: 1 note against strength 3
    assert b["forced_tracks"] == ["Piano"] and b["strength_error"] == pytest.approx(2 / 3)
    assert b["density_error"] == pytest.approx(1 / 16)                 # bar 0: 3 vs 5; bar 1: 1 vs 1
    assert b["inference_control_errors"] == {"density": 0.25}
    assert b["duration_diff_s"] == pytest.approx(1.5 - 4.0)

    ref = rep["reference"]
    assert ref["source"]["used"] == 2
    assert {s["name"] for s in ref["songs"]} == {"train:a", "train:b"}
    agg = ref["aggregate"]["pche_1bar"]
    assert agg["mean"] == pytest.approx(math.log2(7)) and agg["std"] == pytest.approx(0.0) and agg["n"] == 2
    assert rep["generated"]["aggregate"]["hit_rate"] == {"mean": 1.0, "std": 0.0, "n": 2}

    md = (out / "report.md").read_text()
    assert "| PCHE 1-bar (bits) |" in md and "clip_0" in md
    for rel in ["plots/distributions.png", "plots/pianoroll_clip_0.png", "plots/pianoroll_clip_1.png"]:
        assert f"]({rel})" in md
        assert (out / rel).stat().st_size > 1000
    assert not list(out.rglob(".*part*"))  # nothing half-written left behind


def test_cli_user_errors_are_one_line(workdir):
    res = run_cli("--generated", workdir / "missing")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr and "--generated" in res.stderr
    res = run_cli("--generated", workdir / "gen", "--reference", workdir / "nothing.npz", "--no_plots")
    assert res.returncode == 2 and "--reference" in res.stderr and "Traceback" not in res.stderr


def test_unreadable_and_oddly_named_songs_are_skipped_or_kept_and_listed(workdir):
    gen = workdir / "gen"
    (gen / "broken_0.mid").write_bytes((gen / "clip_0.mid").read_bytes()[:40])    # cut short
    (gen / "empty_0.mid").write_bytes(b"")
    odd = os.fsdecode(bytes(gen) + b"/caf\xe9_0.mid")                             # a name that is not UTF-8
    Path(odd).write_bytes((gen / "clip_1.mid").read_bytes())
    res = run_cli("--generated", gen, "--out", workdir / "r", "--no_si")
    assert res.returncode == 0, res.stderr
    assert "skipped 2 of 5 generated files" in res.stderr and "Traceback" not in res.stderr
    rep = json.loads((workdir / "r" / "report.json").read_text())
    assert sorted(s["name"] for s in rep["generated"]["songs"]) == ["caf\\xe9_0", "clip_0", "clip_1"]
    reasons = {f["file"]: f["reason"] for f in rep["generated"]["skipped"]}
    assert sorted(reasons) == ["broken_0.mid", "empty_0.mid"] and "empty file" in reasons["empty_0.mid"]
    md = (workdir / "r" / "report.md").read_text(encoding="utf-8")
    assert "## Files skipped" in md and "| broken_0.mid |" in md and "caf\\xe9_0" in md
    assert (workdir / "r" / "plots" / "pianoroll_caf_xe9_0.png").stat().st_size > 1000
    # nothing readable left: one line
    for f in ("clip_0.mid", "clip_1.mid", odd):
        os.remove(gen / f)
    res = run_cli("--generated", gen, "--out", workdir / "r2")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "none of the 2 .mid files" in res.stderr
    # an --out that cannot be a folder: one line, before any work
    blocker = workdir / "afile"
    blocker.write_text("x")
    res = run_cli("--generated", workdir / "gen", "--out", blocker / "sub")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "afile is a file" in res.stderr


def test_reference_npz_loads_the_same_compressed_or_not(workdir):
    z = np.load(workdir / "train.npz")
    np.savez_compressed(workdir / "train_c.npz", **{k: z[k] for k in z.files})
    plain, src = evaluate.load_reference(workdir / "train.npz", 5, 0, None)
    packed, _ = evaluate.load_reference(workdir / "train_c.npz", 5, 0, None)
    assert src["available"] == 2 and len(plain) == 2
    for p, q in zip(plain, packed):
        assert np.array_equal(p.notes, q.notes) and p.tempo == q.tempo == 120.0
    assert list(plain[0].notes["pitch"]) == [60, 62, 64, 65, 67, 69, 71]
    assert list(plain[0].notes["onset"]) == [0, 2, 4, 6, 8, 10, 12]
    assert list(plain[0].notes["duration"]) == [2] * 7


def test_midi_loading_maps_tracks_to_classes(tmp_path):
    write_midi(tmp_path / "a.mid", {("Drums", 0, True): [(0, 36, 1)], ("lead", 30, False): [(3, 60, 5)],
                                   ("", 41, False): [(4, 50, 2)], ("Bass", 0, False): [(6, 40, 1)]}, tempo=90.0)
    notes, tempo = evaluate.load_midi(tmp_path / "a.mid")
    assert tempo == pytest.approx(90.0)
    got = sorted(zip(notes["onset"].tolist(), notes["instrument"].tolist(), notes["duration"].tolist()))
    assert got == [(0, M.DRUMS, 1), (3, M.GUITAR, 5), (4, M.STRINGS, 2), (6, M.BASS, 1)]


def test_inference_layout_finds_video_beside_the_songs(tmp_path):
    # inference writes NAME.npz, NAME_metadata.json, NAME_K.mid and NAME_K.json into one folder
    write_midi(tmp_path / "vid_0.mid", {("Drums", 0, True): [(0, 36, 1), (0, 42, 1)],
                                        ("Piano", 0, False): [(0, 60, 4), (0, 64, 4)],
                                        ("Guitar", 24, False): [(12, 60, 4)]})
    (tmp_path / "vid_0.json").write_text(json.dumps({
        "video": "/elsewhere/vid.mp4", "tempo": 120.0, "duration": 2.0,
        "forced_beats": [[0, 1, 2, 1], [0, 1, 2, 2]]}))   # Drums and Piano were forced
    np.savez(tmp_path / "vid.npz", input=np.array([[17, 3, 0, 0, 16, 1], [1, 0, 2, 0, 16, 1], [13, 0, 1, 12, 16, 76]]),
             tempo=np.array(120.0), duration=np.array(2.0))
    # exact beat times differ from the grid: 0.02 s and 1.5 s
    (tmp_path / "vid_metadata.json").write_text(json.dumps({
        "duration": 2.0, "tempo": 120.0, "flow_magnitude_per_bar": [0.03],
        "vbeats": [{"start_time": 0.02, "bar": 0, "tick": 0, "weight": 0.3},
                   {"start_time": 1.5, "bar": 0, "tick": 12, "weight": 0.1}]}))
    song = evaluate.load_generated(tmp_path)[0][0]
    video = evaluate.find_video(song, None)
    assert video.name == "vid" and len(video.sources) == 2
    row = evaluate.song_metrics(song, video, evaluate.Settings(si=None))
    assert row["forced_tracks"] == ["Drums", "Piano"]
    assert row["strength_error"] == 0.0 and row["hit_rate"] == 1.0 and row["density_error"] == 0.0
    # BA uses the metadata's exact times: 0.02 s from the onset at 0, 0 s from the one at 1.5 s
    assert row["ba_v2m"] == pytest.approx((math.exp(-0.02 ** 2 / (2 * 0.05 ** 2)) + 1) / 2)
    assert row["n_visual_beats"] == 2 and row["n_kept_beats"] == 1


def test_reference_rows_are_streamed_sampled_and_split(tmp_path):
    # 5 rows; row i holds one note of pitch 60 + i; rows 1 and 3 are validation; row 4 is window 1 of 2
    x = np.zeros((5, 4, 9), np.int32)
    for i in range(5):
        x[i, 0] = [17, 1, 2, 0, 0, 0, 0, 1, 0]
        x[i, 1] = [1, 1, 1, 0, 0, 2, 1, 1, 0]
        x[i, 2] = [0, 2, 0, 61 + i, 5, 2, 0, 1, 0]
    meta = [{"id": f"s{i}", "split": "validation" if i in (1, 3) else "train", "window": 0, "n_windows": 1}
            for i in range(4)] + [{"id": "s3", "split": "train", "window": 1, "n_windows": 2}]
    meta[3]["n_windows"] = 2
    np.savez_compressed(tmp_path / "t.npz", x=x, seq_len=np.full(5, 3, np.int32),
                        split=np.array([0, 1, 0, 1, 0], np.uint8), metadata=np.array(json.dumps(meta)))
    songs, src = evaluate.load_reference(tmp_path / "t.npz", 3, 7, None)
    assert src["available"] == 5 and len(songs) == 3
    by_row = {int(s.path.rsplit("#", 1)[1]): s for s in songs}
    for row, s in by_row.items():
        assert s.notes.tolist() == [(0, 60 + row, 4, M.PIANO)]
    names = {s.name for s in evaluate.load_reference(tmp_path / "t.npz", 10, 0, None)[0]}
    assert names == {"t:s0", "t:s1", "t:s2", "t:s3#0", "t:s3#1"}
    val, src = evaluate.load_reference(tmp_path / "t.npz", 10, 0, None, split="validation")
    assert src["available"] == 2 and sorted(s.notes["pitch"][0] for s in val) == [61, 63]
