"""A corpus of bad and odd inputs, made here, fed to the tools as users run them (subprocesses).

Every bad input must give exit status 2, exactly one line on stderr, no traceback, no output
file, and leave every input byte for byte as it was: each case runs in a folder of its own,
and the whole folder (files and sub-folders, with their hashes) must be the same afterwards.
One kind per heading of issue 14: data loss, batches, tracebacks, nonsense with exit 0,
unbounded work, leftovers, wording, data (the split).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
BAR = 17


# ------------------------------------------------------------------------------ helpers
def snapshot(folder: Path) -> dict:
    """Every file (with its hash) and folder under ``folder``."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")   # the video feature cache lives outside the case folders
    return dict(os.environ, CMT_NO_PROGRESS="1", CMT_CACHE_DIR=str(cache), OMP_NUM_THREADS="1",
                PYTHONWARNINGS="ignore")


def run(env, script, *args, cwd=None):
    return subprocess.run([sys.executable, str(SRC / script), *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd)


def assert_refused(res, before: dict, folder: Path, *, says: str | None = None):
    """Exit 2, one line on stderr, no traceback, and the folder exactly as before."""
    assert "Traceback" not in res.stderr + res.stdout, res.stderr[-3000:]
    assert res.returncode == 2, (res.returncode, res.stderr[-3000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert snapshot(folder) == before, "an input changed or an output was written"
    if says:
        assert says.lower() in lines[0].lower(), lines[0]
    return lines[0]


def good_rows() -> np.ndarray:
    """Rows of a 4-bar video at 120 bpm with a visual beat in each bar (metadata_to_rows)."""
    from vidscore.video.metadata import metadata_to_rows
    meta = {"duration": 8.0, "tempo": 120.0, "flow_magnitude_per_bar": [0.1, 0.5, 1.0, 2.0],
            "vbeats": [{"bar": b, "tick": 4 * b, "weight": 0.95} for b in range(4)]}
    return metadata_to_rows(meta)


def save_video_npz(path: Path, rows, tempo=120.0, duration=8.0, **extra) -> Path:
    arrays = {"input": rows, **extra}
    if tempo is not None:
        arrays["tempo"] = np.asarray(tempo) if isinstance(tempo, str) else np.float64(tempo)
    if duration is not None:
        arrays["duration"] = np.float64(duration)
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from make_demo_video import render_demo
    return Path(render_demo(str(tmp_path_factory.mktemp("video") / "clip.mp4"), seconds=3.0, fps=25,
                            width=160, height=90))


def tiny_training_npz(path: Path) -> Path:
    from vidscore.music.representation import notes_to_tokens
    from test_training import song, write_npz
    return write_npz(path, [notes_to_tokens(song(s)) for s in (0, 2, 5)], [0, 0, 1])


def infer(env, case: Path, ckpt, videos, *more):
    return run(env, "main_cp.py", "--mode", "inference", "--videos", videos, "--ckpt", ckpt,
               "--out_dir", case / "out", "--render", 0, *more)


# ------------------------------------------------------------------------------ data loss
def test_video2metadata_never_replaces_the_video_with_json(env, video, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(Path(video).read_bytes())
    before = snapshot(tmp_path)
    for out in (clip, tmp_path / "sub" / ".." / "clip.mp4"):
        assert_refused(run(env, "video2npz/video2metadata.py", "--video", clip, "--meta_data", out),
                       before, tmp_path, says="overwrite")
    # "--meta_data new/" names a folder to make, not a file called "new"
    res = run(env, "video2npz/video2metadata.py", "--video", clip, "--meta_data", f"{tmp_path / 'new'}/")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "new" / "clip_metadata.json").is_file()


def test_numpy2midi_never_replaces_its_input(env, tmp_path):
    d = tiny_training_npz(tmp_path / "d.npz")
    before = snapshot(tmp_path)
    assert_refused(run(env, "numpy2midi_mix.py", "--in", d, "--out", d, "--index", 0), before, tmp_path,
                   says="overwrite")


def test_metadata2numpy_and_export_never_replace_their_input(env, ckpt, tmp_path):
    meta = tmp_path / "clip.npz"     # a metadata JSON that happens to be called .npz
    meta.write_text(json.dumps({"duration": 4.0, "tempo": 120.0, "vbeats": [], "flow_magnitude_per_bar": [0.1]}))
    pt = tmp_path / "model.pt"
    pt.write_bytes(Path(ckpt).read_bytes())
    before = snapshot(tmp_path)
    assert_refused(run(env, "video2npz/metadata2numpy_mix.py", "--meta_data", meta, "--out_dir", tmp_path),
                   before, tmp_path, says="overwrite")
    assert_refused(run(env, "export_checkpoint.py", "--ckpt", pt, "--out", tmp_path / "." / "model.pt"),
                   before, tmp_path)


def test_main_refuses_inputs_whose_outputs_collide_before_any_work(env, ckpt, video, tmp_path):
    folder = tmp_path / "vids"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(Path(video).read_bytes())
    save_video_npz(folder / "clip.npz", good_rows())     # clip.mp4's analysis would write clip.npz here
    before = snapshot(tmp_path)
    res = run(env, "main_cp.py", "--mode", "inference", "--videos", folder, "--ckpt", ckpt, "--out_dir", folder,
              "--render", 0)
    assert_refused(res, before, tmp_path)


# ------------------------------------------------------------------------------ batches
def test_a_bad_input_does_not_stop_the_batch(env, ckpt, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    save_video_npz(folder / "a_bad.npz", np.array([["x"] * 6] * 3))      # first in the folder
    save_video_npz(folder / "b_good.npz", good_rows())
    (folder / "c_bad.npz").write_text("not an npz")
    before = snapshot(folder)
    res = infer(env, tmp_path, ckpt, folder)
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 3, res.stderr                                 # one per bad input, one summary
    assert lines[0].startswith("a_bad.npz: error:") and lines[1].startswith("c_bad.npz: error:")
    assert "2 of 3 inputs failed" in lines[2]
    assert snapshot(folder) == before
    out = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert out == ["b_good_0.json", "b_good_0.mid"]
    # the report is strict JSON (no NaN / Infinity)
    json.loads((tmp_path / "out" / "b_good_0.json").read_text(),
               parse_constant=lambda c: pytest.fail(f"{c} in the report"))


def test_hidden_files_are_not_inputs_and_an_overlong_name_fails_alone(env, ckpt, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    save_video_npz(folder / "b_good.npz", good_rows())
    (folder / "._b_good.mp4").write_bytes(os.urandom(4096))               # a Mac resource fork
    (folder / ".b_good.99999-x1.part.mp4").write_bytes(b"")               # a dead run's leftover
    long_name = "a" * 250 + ".npz"                                          # fits; its outputs' names do not
    save_video_npz(folder / long_name, good_rows())
    before = snapshot(folder)
    res = infer(env, tmp_path, ckpt, folder)
    assert "Traceback" not in res.stderr and res.returncode == 2, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2 and "1 of 2 inputs failed" in lines[1], res.stderr
    assert lines[0].startswith(long_name + ": error:") and "rename it shorter" in lines[0]
    assert snapshot(folder) == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b_good_0.json", "b_good_0.mid"]


# ------------------------------------------------------------------------------ video npz rows
def _rows_case(kind: str):
    r = good_rows()
    beat = int(np.flatnonzero(r[:, 0] != BAR)[0])
    neg = r.copy()
    cases = {
        "strings": lambda: r.astype(str),
        "nan": lambda: np.where(np.arange(r.size).reshape(r.shape) == 7, np.nan, r.astype(float)),
        "inf": lambda: np.where(np.arange(r.size).reshape(r.shape) == 7, np.inf, r.astype(float)),
        "bool": lambda: r > 1,
        "five_columns": lambda: r[:, :5],
        "starts_with_a_beat": lambda: r[beat:],
        "reversed": lambda: r[::-1],
        "one_dimensional": lambda: r[0],
        "empty": lambda: r[:0],
        "negative_barbeat": lambda: _set(neg, beat, 0, -3),
        "negative_density": lambda: _set(neg, 0, 1, -1),
        "negative_strength": lambda: _set(neg, beat, 2, -2),
        "barbeat_18": lambda: _set(neg, beat, 0, 18),
        "fractional": lambda: r + 0.5,
        "100000_bars": lambda: np.tile(np.array([[BAR, 1, 0, 0, 16, 1]]), (100000, 1)),
    }
    return cases[kind]()


def _set(a, i, j, v):
    a = a.copy()
    a[i, j] = v
    return a


ROW_KINDS = ["strings", "nan", "inf", "bool", "five_columns", "starts_with_a_beat", "reversed",
             "negative_barbeat", "negative_density", "negative_strength", "100000_bars"]
#: more kinds, fed to match.py, which reads video npz files with the same reader (and starts faster)
MATCH_ROW_KINDS = ["one_dimensional", "empty", "barbeat_18", "fractional"]
TEMPO_KINDS = {"tempo_nan": np.nan, "tempo_negative": -90.0, "tempo_zero": 0.0, "tempo_1e9": 1e9,
               "tempo_inf": np.inf, "tempo_string": "fast"}


@pytest.mark.parametrize("kind", ROW_KINDS + MATCH_ROW_KINDS + list(TEMPO_KINDS) + ["no_input_array", "not_an_npz"])
def test_bad_video_npz(env, ckpt, tmp_path, kind):
    bad = tmp_path / f"{kind}.npz"
    if kind in TEMPO_KINDS:
        save_video_npz(bad, good_rows(), tempo=TEMPO_KINDS[kind])
    elif kind == "no_input_array":
        np.savez(bad, x=np.zeros(3))
    elif kind == "not_an_npz":
        bad.write_text("hello")
    else:
        save_video_npz(bad, _rows_case(kind))
    if kind in MATCH_ROW_KINDS or kind == "tempo_string":
        music = tiny_training_npz(tmp_path / "music.npz")
        before = snapshot(tmp_path)
        line = assert_refused(run(env, "match.py", bad, music), before, tmp_path)
    else:
        before = snapshot(tmp_path)
        line = assert_refused(infer(env, tmp_path, ckpt, bad), before, tmp_path)
    assert str(bad) in line


def test_match_still_ranks_a_good_video(env, tmp_path):
    music = tiny_training_npz(tmp_path / "music.npz")
    ok = run(env, "match.py", save_video_npz(tmp_path / "good.npz", good_rows()), music, "--top", 2)
    assert ok.returncode == 0, ok.stderr
    assert len(ok.stdout.strip().splitlines()) == 3          # a header and two songs


# ------------------------------------------------------------------------------ metadata JSON
GOOD_META = {"duration": 8.0, "tempo": 120.0, "flow_magnitude_per_bar": [0.1, 0.5, 1.0, 2.0],
             "vbeats": [{"start_time": 0.5, "bar": 0, "tick": 4, "weight": 0.9}]}


def _meta(**change):
    m = json.loads(json.dumps(GOOD_META))
    vb = change.pop("vbeat", None)
    if vb:
        m["vbeats"][0].update(vb)
    m.update(change)
    return m


META_CASES = {
    "vbeats_not_a_list": _meta(vbeats={"bar": 0, "tick": 1, "weight": 1}),
    "tick_x": _meta(vbeat={"tick": "x"}),
    "tick_null": _meta(vbeat={"tick": None}),
    "tick_fraction": _meta(vbeat={"tick": 1.5}),
    "bar_bool": _meta(vbeat={"bar": True}),
    "weight_string": _meta(vbeat={"weight": "heavy"}),
    "flow_strings": _meta(flow_magnitude_per_bar=["a", "b"]),
    "flow_negative": _meta(flow_magnitude_per_bar=[-1.0]),
    "bar_ten_million": {"duration": 1, "tempo": 120, "flow_magnitude_per_bar": [],
                        "vbeats": [{"bar": 10 ** 7, "tick": 0, "weight": 1}]},      # the 139-byte JSON
    "beats_out_of_order": _meta(vbeats=[{"bar": 2, "tick": 0, "weight": 1}, {"bar": 0, "tick": 0, "weight": 1}]),
    "tempo_negative": _meta(tempo=-5),
    "tempo_huge": _meta(tempo=1e9),
    "duration_days": _meta(duration=10 ** 6),
    "not_an_object": [1, 2, 3],
    "start_time_negative": _meta(vbeat={"start_time": -1.0}),
    "start_time_after_the_video": _meta(vbeat={"start_time": 10 ** 4}),
    "start_time_string": _meta(vbeat={"start_time": "0:01"}),
}


@pytest.mark.parametrize("kind", list(META_CASES))
def test_bad_metadata(env, tmp_path, kind):
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps(META_CASES[kind]))
    if kind == "bar_ten_million":
        assert len(meta.read_bytes()) < 140          # a small file that asked for a 480 MB npz
    before = snapshot(tmp_path)
    assert_refused(run(env, "video2npz/metadata2numpy_mix.py", "--meta_data", meta, "--out_dir", tmp_path / "o"),
                   before, tmp_path)


def test_good_metadata_still_converts(env, tmp_path):
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps(GOOD_META))
    res = run(env, "video2npz/metadata2numpy_mix.py", "--meta_data", meta, "--out_dir", tmp_path / "o")
    assert res.returncode == 0, res.stderr
    rows = np.load(tmp_path / "o" / "m.npz")["input"]
    assert rows[:, 0].tolist() == [BAR, 5, BAR, BAR, BAR]    # the beat at tick 4 of bar 0 is bar-beat 5


# ------------------------------------------------------------------------------ flags
FLAG_CASES = {
    "my_tempo_nan": ["--is_tempo", 1, "--my_tempo", "nan"],
    "my_tempo_inf": ["--is_tempo", 1, "--my_tempo", "inf"],
    "my_tempo_1e9": ["--is_tempo", 1, "--my_tempo", "1e9"],
    "my_tempo_zero": ["--is_tempo", 1, "--my_tempo", 0],
    "seed_negative": ["--seed", -1],
    "num_songs_10000": ["--num_songs", 10000],
}


@pytest.mark.parametrize("kind", list(FLAG_CASES))
def test_bad_inference_flags(env, ckpt, tmp_path, kind):
    npz = save_video_npz(tmp_path / "v.npz", good_rows())
    before = snapshot(tmp_path)
    assert_refused(infer(env, tmp_path, ckpt, npz, *FLAG_CASES[kind]), before, tmp_path)


def test_out_dir_that_is_a_file_or_read_only_is_refused_before_generating(env, ckpt, tmp_path):
    npz = save_video_npz(tmp_path / "v.npz", good_rows())
    (tmp_path / "file").write_text("I am a file")
    before = snapshot(tmp_path)
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        res = run(env, "main_cp.py", "--mode", "inference", "--videos", npz, "--ckpt", ckpt, "--out_dir", out)
        assert_refused(res, before, tmp_path, says="file")
        assert "composing" not in res.stdout and "bars" not in res.stdout    # nothing was generated
    if os.geteuid() == 0:
        read_only = Path("/sys/cmt_out")          # root writes anywhere except a read-only mount
    else:
        read_only = tmp_path / "ro"
        read_only.mkdir(mode=0o555)
        before = snapshot(tmp_path)
    res = run(env, "main_cp.py", "--mode", "inference", "--videos", npz, "--ckpt", ckpt, "--out_dir", read_only)
    assert_refused(res, before, tmp_path, says="cannot be written")


def test_numpy2midi_bad_index_tempo_and_tokens(env, tmp_path):
    d = tiny_training_npz(tmp_path / "d.npz")
    strings = tmp_path / "s.npy"
    np.save(strings, np.array([["a"] * 9] * 4))
    negative = tmp_path / "neg.npy"
    np.save(negative, -np.ones((4, 9), np.int64))
    before = snapshot(tmp_path)
    out = tmp_path / "o.mid"
    for args in (["--in", d, "--index", 99], ["--in", d, "--index", -1], ["--in", d, "--index", 0, "--tempo", "nan"],
                 ["--in", d, "--index", 0, "--tempo", "1e9"], ["--in", d, "--index", 0, "--tempo", 0],
                 ["--in", strings], ["--in", negative]):
        assert_refused(run(env, "numpy2midi_mix.py", *args, "--out", out), before, tmp_path)
    ok = run(env, "numpy2midi_mix.py", "--in", d, "--index", 0, "--out", out, "--tempo", 90)
    assert ok.returncode == 0, ok.stderr
    import miditoolkit
    assert abs(miditoolkit.MidiFile(str(out)).tempo_changes[0].tempo - 90) < 1e-3


# ------------------------------------------------------------------------------ checkpoints
def _bad_checkpoints(folder: Path, good: Path) -> dict[str, Path]:
    obj = torch.load(good, weights_only=True)
    raw = good.read_bytes()
    out = {}

    def save(name, **change):
        out[name] = folder / f"{name}.pt"
        torch.save({**obj, **change}, out[name])

    save("model_is_a_list", model=[1, 2, 3])
    save("vocab_is_a_string", vocab="piano")
    save("config_is_a_list", config=[1, 2])
    nan = {k: v.clone() for k, v in obj["model"].items()}
    nan["encoder_in_linear.weight"][:] = float("nan")
    save("nan_weights", model=nan)
    # a small file whose config asks for a model of hundreds of GB
    save("huge_config", config={**obj["config"], "n_layer": 200, "d_model": 8192, "d_ff": 65536})
    save("config_not_matching_weights", config={**obj["config"], "d_model": 64})
    save("config_sizes_strings", config={**obj["config"], "n_layer": "12"})
    out["truncated"] = folder / "truncated.pt"
    out["truncated"].write_bytes(raw[: len(raw) // 2])
    out["corrupt"] = folder / "corrupt.pt"
    b = bytearray(raw)
    i = raw.index(b"data.pkl") + 200      # inside the pickled structure
    b[i:i + 64] = bytes(range(64))
    out["corrupt"].write_bytes(bytes(b))
    out["garbage"] = folder / "garbage.pt"
    out["garbage"].write_bytes(bytes(range(256)) * 40)
    out["empty"] = folder / "empty.pt"
    out["empty"].write_bytes(b"")
    out["runs_code"] = folder / "runs_code.pt"
    torch.save({**obj, "extra": torch.nn.Linear(2, 2)}, out["runs_code"])
    out["an_npz"] = save_video_npz(folder / "an_npz.npz", good_rows()).rename(folder / "an_npz.pt")  # data as ckpt
    return out


CKPT_KINDS = ["model_is_a_list", "vocab_is_a_string", "config_is_a_list", "nan_weights", "huge_config",
              "config_not_matching_weights", "config_sizes_strings", "truncated", "corrupt", "garbage", "empty",
              "runs_code", "an_npz"]


@pytest.mark.parametrize("kind", CKPT_KINDS)
def test_bad_checkpoint(env, ckpt, tmp_path, kind):
    bad = _bad_checkpoints(tmp_path, Path(ckpt))[kind]
    npz = save_video_npz(tmp_path / "v.npz", good_rows())
    before = snapshot(tmp_path)
    line = assert_refused(infer(env, tmp_path, ckpt=bad, videos=npz), before, tmp_path)
    assert "weights_only" not in line and "Errno" not in line     # says what is wrong with the file
    expected = {"truncated": "truncated", "corrupt": "damaged", "nan_weights": "nan", "huge_config": "billion",
                "runs_code": "run code", "empty": "empty", "garbage": "not a pytorch checkpoint",
                "an_npz": "is a numpy .npz"}.get(kind)
    if expected:
        assert expected in line.lower(), line


# ------------------------------------------------------------------------------ training
TRAIN_TINY = ["--n_layer", 1, "--d_model", 16, "--n_head", 2, "--d_ff", 32, "--emb_sizes", "4,4,4,4,4,4,4",
              "--time_emb_size", 4, "--init_emb_size", 4, "--device", "cpu", "--attention", "torch"]


def train(env, case: Path, data: Path, *more):
    return run(env, "main_cp.py", "--mode", "train", "--train_data", data, "--name", "t", "--exp_dir", case / "exp",
               "--log_dir", case / "logs", *TRAIN_TINY, *more)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_diverging_training_stops_without_saving_and_cleans_stale_parts(env, tmp_path):
    data = tiny_training_npz(tmp_path / "tiny.npz")
    run_dir = tmp_path / "exp" / "t"
    run_dir.mkdir(parents=True)
    dead = run_dir / f".last.{_dead_pid()}-abcd1234.part.pt"       # a run killed with kill -9
    live = run_dir / f".last.{os.getpid()}-efgh5678.part.pt"       # a run still going (this process)
    dead.write_bytes(b"x" * 1000)
    live.write_bytes(b"y")
    res = train(env, tmp_path, data, "--lr", "1e30", "--epochs", 3)
    assert "Traceback" not in res.stderr and res.returncode == 2, res.stderr[-3000:]
    assert len(res.stderr.strip().splitlines()) == 1 and "diverged" in res.stderr
    assert not dead.exists() and live.exists()
    assert sorted(p.name for p in run_dir.iterdir()) == [live.name]     # no NaN last.pt


def test_bad_training_flags(env, tmp_path):
    data = tiny_training_npz(tmp_path / "tiny.npz")
    before = snapshot(tmp_path)
    for flags in (["--lr", "nan"], ["--lr", 0], ["--batch_size", 0], ["--seed", -1], ["--grad_clip", "inf"],
                  ["--n_layer", 100000, "--d_model", 65536]):
        res = train(env, tmp_path, data, *flags)
        # the log folder may be made; nothing else
        assert_refused(res, before, tmp_path)


def test_resume_checks_the_checkpoint_against_the_data(env, tmp_path):
    data = tiny_training_npz(tmp_path / "tiny.npz")
    run_dir = tmp_path / "exp" / "t"
    run_dir.mkdir(parents=True)
    save_tiny_checkpoint(run_dir / "last.pt", preset="bmt")           # a bmt run, resumed on cmt data
    before = snapshot(tmp_path)
    line = assert_refused(train(env, tmp_path, data, "--resume", 1, "--epochs", 2), before, tmp_path)
    assert "bmt" in line and "cmt" in line
    # a checkpoint without `extra` (nor optimizer state) resumes
    save_tiny_checkpoint(run_dir / "last.pt")
    res = train(env, tmp_path, data, "--resume", 1, "--epochs", 2)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming" in res.stdout


def test_a_new_run_never_replaces_another_and_names_stay_in_their_folders(env, tmp_path):
    data = tiny_training_npz(tmp_path / "tiny.npz")
    assert train(env, tmp_path, data, "--epochs", 1).returncode == 0
    run_dir = tmp_path / "exp" / "t"
    (run_dir / "loss_999_params.pt").write_bytes((run_dir / "last.pt").read_bytes())   # an earlier run's best
    before = snapshot(tmp_path)
    line = assert_refused(train(env, tmp_path, data, "--epochs", 1), before, tmp_path)
    assert "already holds a run" in line and "--resume 1" in line and "--overwrite 1" in line
    res = train(env, tmp_path, data, "--epochs", 1, "--overwrite", 1)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not (run_dir / "loss_999_params.pt").exists() and (run_dir / "last.pt").is_file()   # no stale best
    before = snapshot(tmp_path)
    for name in ("../escape", "/abs/name", ".", "..", "", ".hidden", "a/b", "a\\b"):
        res = run(env, "main_cp.py", "--mode", "train", "--train_data", data, "--name", name,
                  "--exp_dir", tmp_path / "exp", "--log_dir", tmp_path / "logs", *TRAIN_TINY)
        assert "--name" in assert_refused(res, before, tmp_path), name
    for flags in (["--amp", 2], ["--compile", 7], ["--threads", -3]):
        assert_refused(train(env, tmp_path, data, *flags), before, tmp_path)


def test_init_ckpt_of_another_representation_is_refused(env, tmp_path):
    data = tiny_training_npz(tmp_path / "tiny.npz")
    bmt = save_tiny_checkpoint(tmp_path / "bmt.pt", preset="bmt")
    before = snapshot(tmp_path)
    line = assert_refused(train(env, tmp_path, data, "--init_ckpt", bmt), before, tmp_path)
    assert "--init_ckpt" in line and "bmt model" in line and "cmt" in line
    # exporting it with labels of data of the other representation: the same check
    line = assert_refused(run(env, "export_checkpoint.py", "--ckpt", bmt, "--out", tmp_path / "x.pt", "--data", data),
                          before, tmp_path)
    assert "bmt model" in line and "cmt" in line


def _broken_npz(folder: Path, good: Path) -> dict[str, Path]:
    z = dict(np.load(good))
    cases = {}

    def save(kind, **change):
        cases[kind] = folder / f"{kind}.npz"
        np.savez(cases[kind], **{**z, **change})
    save("float_nan_tokens", x=np.where(z["x"] == 0, np.nan, z["x"]).astype(np.float32))
    save("negative_token", x=np.where(z["x"] == 0, -1, z["x"]))
    mask = z["mask"].copy()
    mask[0, 0] = np.nan
    save("nan_mask", mask=mask)
    save("x_y_columns_differ", x=np.concatenate([z["x"], z["x"][..., :1]], -1))
    save("eight_columns", x=z["x"][..., :8], y=z["y"][..., :8])
    save("metadata_not_json", metadata=np.array("{not json"))
    save("seq_len_too_long", seq_len=z["seq_len"] * 100)
    save("split_is_2", split=np.full_like(z["split"], 2))
    x = z["x"].copy()
    x[0, 1, 3] = 99999                                    # the pitch column
    save("pitch_99999", x=x)
    cases["text_file"] = folder / "text_file.npz"
    cases["text_file"].write_text("x,y\n1,2\n")
    return cases


@pytest.mark.parametrize("kind", ["float_nan_tokens", "negative_token", "nan_mask", "x_y_columns_differ",
                                  "eight_columns", "metadata_not_json", "seq_len_too_long", "split_is_2",
                                  "pitch_99999", "text_file"])
def test_broken_training_npz(env, tmp_path, kind):
    data = tiny_training_npz(tmp_path / "tiny.npz")
    case = _broken_npz(tmp_path, data)[kind]
    before = snapshot(tmp_path)
    line = assert_refused(train(env, tmp_path, case, "--epochs", 1), before, tmp_path)
    assert case.name in line and ("midi2numpy_mix.py" in line), line


# ------------------------------------------------------------------------------ unbounded work
def test_long_video_is_refused_before_analysis(env, ckpt, video, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(Path(video).read_bytes())
    before = snapshot(tmp_path)
    res = infer(env, tmp_path, ckpt, clip, "--max_video_s", 1)
    assert_refused(res, before, tmp_path, says="max_video_s")


# ------------------------------------------------------------------------------ stopped from outside
@pytest.mark.parametrize("sig, line, rc", [("SIGTERM", "terminated", 143), ("SIGINT", "interrupted", 130)])
def test_a_stopped_script_leaves_no_part_file_and_says_so_in_one_line(tmp_path, sig, line, rc):
    """``timeout``, ``docker stop`` or a cluster's pre-emption send SIGTERM: the script stops as on
    Ctrl-C, inside a write and inside a running program, and removes what it was writing."""
    import signal
    import time
    script = tmp_path / "writer.py"
    script.write_text(f"""
import subprocess, sys
sys.path.insert(0, {str(SRC)!r})
from vidscore import cli
def main():
    with cli.atomic_path({str(tmp_path / 'out.bin')!r}) as tmp:
        open(tmp, "wb").write(b"half")
        print("writing", flush=True)
        subprocess.run(["sleep", "30"])
cli.run(main)
""")
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    assert len(list(tmp_path.glob(".out.*.part.bin"))) == 1
    time.sleep(0.2)
    p.send_signal(getattr(signal, sig))
    out, err = p.communicate(timeout=20)
    assert p.returncode == rc and err.strip() == line, err
    assert sorted(f.name for f in tmp_path.iterdir()) == ["writer.py"]


# ------------------------------------------------------------------------------ web app
def test_web_app_ratings_and_stale_parts(ckpt, tmp_path):
    from vidscore.model.cmt import load_checkpoint
    from vidscore.webui.server import AppConfig, create_app
    data = tmp_path / "data"
    (data / "jobs" / "abc").mkdir(parents=True)
    dead = data / "jobs" / "abc" / f".clip_0.{_dead_pid()}-abcd1234.part.mp4"
    live = data / "jobs" / "abc" / f".clip_1.{os.getpid()}-abcd1234.part.mp4"
    old_style = data / "uploads" / ".x.abcd1234.part.mp4"
    old_style.parent.mkdir()
    for p in (dead, live, old_style):
        p.write_bytes(b"part")
    os.utime(old_style, (0, 0))                     # from 1970: stale by age
    app = create_app(AppConfig(data_dir=data, model=load_checkpoint(ckpt), model_name="tiny", start_worker=False))
    assert not dead.exists() and not old_style.exists() and live.exists()
    client = app.test_client()
    hdr = {"X-Requested-With": "cmt"}
    for body in ([1, 2], "text", {"role": "listener", "item": "x", "scores": [1, 2]}):
        r = client.post("/api/ratings", json=body, headers=hdr)
        assert r.status_code == 400, (body, r.status_code, r.get_data(as_text=True))
        assert "error" in r.get_json()


# ------------------------------------------------------------------------------ data: the split under --cap
def test_capped_corpus_keeps_about_ten_percent_validation_in_every_collection():
    from types import SimpleNamespace

    from vidscore.training import corpus
    from vidscore.training import dataset
    units = [SimpleNamespace(uid=f"coll{c}/piece{i}", collection=f"coll{c}") for c in range(8) for i in range(400)]
    for cap in (10, 20, 100, 400):
        kept, skipped = corpus.cap_per_collection(list(units), cap)
        assert len(kept) == 8 * cap and len(skipped) == 8 * (400 - cap)
        split = dataset.assign_split([u.uid for u in kept])
        share = sum(split.values()) / len(kept)
        assert 0.05 <= share <= 0.15, (cap, share)
        for c in range(8):
            n_val = sum(split[u.uid] for u in kept if u.collection == f"coll{c}")
            assert 1 <= n_val <= max(3, 0.25 * cap), (cap, c, n_val)    # never a whole collection


# ------------------------------------------------------------------------------ library-level promises
def test_report_json_and_midi_tempo_promises(tmp_path):
    from vidscore import cli
    from vidscore.music.midi_write import notes_to_midi
    cli.write_json_atomic(tmp_path / "r.json", {"a": float("nan"), "b": [np.float32("inf"), 1.5]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": None, "b": [None, 1.5]}
    notes = np.array([[0, 60, 4, 2]])
    for bad in (0, float("inf"), float("nan"), 1e9, -120):
        with pytest.raises(ValueError):
            notes_to_midi(notes, bad)
    assert notes_to_midi(notes, 4.0).tempo_changes[0].tempo == pytest.approx(4.0)
