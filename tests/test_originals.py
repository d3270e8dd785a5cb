"""The originals' (CMT and BMT) commands and data, as their READMEs use them (issue 13).

Every command runs in a subprocess from the folder the original README runs it from, on
small data made here.  The original's processed npz is built in the original's layout (10 raw
columns, decoder_mask, a pickled metadata object array) from rows that CMT's own
midi2numpy_mix.py wrote (tests/fixtures/original_rows.npz, see tests/original_songs.py).
"""
from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vidscore.training import dataset
from vidscore import constants as D
from vidscore.training import original_npz
from vidscore import paths
from original_songs import SEEDS, write_songs
from vidscore.music.representation import midi_to_tokens
from video_fixtures import write_jumping_square

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
FIXTURE = ROOT / "tests" / "fixtures" / "original_rows.npz"


def run(args, cwd, timeout=600, **env):
    e = dict(os.environ, CMT_NO_PROGRESS="1", OMP_NUM_THREADS="1", **env)
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=e)


def one_line_error(r):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


def fixture_songs() -> dict[str, np.ndarray]:
    """id -> the raw rows (10 columns, EOS last) CMT's midi2numpy_mix.py wrote."""
    z = np.load(FIXTURE, allow_pickle=False)
    ends = np.cumsum(z["lengths"])
    return {str(i): z["rows"][e - n:e].astype(np.int64) for i, n, e in zip(z["ids"], z["lengths"], ends)}


def without_trailing_empty_bars(rows: np.ndarray) -> np.ndarray:
    """Our rows (EOS last) with the original's trailing empty bars removed (we do not write them)."""
    body = rows[:-1]
    while len(body) and body[-1, D.COL_BARBEAT] == D.BAR:
        body = body[:-1]
    return np.concatenate([body, rows[-1:]])


def write_original_npz(path, songs: dict[str, np.ndarray], instruments: dict[str, list] | None = None):
    """A training file in the original's layout: x / y (songs, L-1, 10), decoder_mask, pickled metadata."""
    L = max(len(r) for r in songs.values()) + 5
    dec = np.zeros((len(songs), L, 10), dtype=np.int64)
    mask = np.zeros((len(songs), L), dtype=np.int64)
    meta = []
    for i, (sid, rows) in enumerate(songs.items()):
        dec[i, :len(rows)] = rows
        mask[i, :len(rows)] = 1
        meta.append({"id": sid, "de_len": len(rows), "genre": "N/A",
                     "instruments": (instruments or {}).get(sid, ["Drums", "Piano", "Guitar", "Bass", "Strings"])})
    np.savez(path, x=dec[:, :-1], y=dec[:, 1:], decoder_mask=mask, metadata=meta)   # metadata: a pickled object array
    return path


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """The MIDI songs, their original rows and an original-format training npz."""
    d = tmp_path_factory.mktemp("originals")
    midis = write_songs(d / "midis")
    songs = fixture_songs()
    z = np.load(FIXTURE, allow_pickle=False)
    inst = {str(i): s.split(",") for i, s in zip(z["ids"], z["instruments"])}
    npz = write_original_npz(d / "lpd_5_prcem_mix_v8_10000.npz", songs, inst)
    return {"dir": d, "midis": midis, "songs": songs, "npz": npz, "instruments": inst}


# ----------------------------------------------------------------------------- the tokenizer

def test_the_tokenizer_equals_the_originals_rows_column_by_column(originals):
    songs = originals["songs"]
    assert sorted(songs) == [f"song{s}" for s in SEEDS]
    n_rows = n_zero = n_trailing = 0
    for path in originals["midis"]:
        theirs = original_npz.convert_rows(songs[path.stem])
        ours, info = midi_to_tokens(path, trim_leading=False)
        expected = without_trailing_empty_bars(theirs)
        n_trailing += len(theirs) - len(expected)
        assert ours.shape == expected.shape, path.stem
        for c, field in enumerate(D.FIELDS):
            np.testing.assert_array_equal(ours[:, c], expected[:, c], err_msg=f"{path.stem} column {field}")
        notes = ours[ours[:, D.COL_TYPE] == D.TYPE_NOTE]
        n_zero += int((notes[:, D.COL_DURATION] == 1).sum())      # duration 0 ticks, stored + 1
        n_rows += len(ours)
    assert n_rows > 1000
    assert n_zero >= 6            # every song has notes that round to 0 sixteenths (the original keeps 0)
    assert n_trailing >= 1        # the original's trailing empty bars, which we leave out


def test_the_fixture_covers_what_differed():
    songs = fixture_songs()
    raw = np.concatenate(list(songs.values()))
    # drums, every instrument, short notes, long notes capped at 16, songs with a leading empty bar
    assert set(np.unique(raw[:, 5])) == {0, 1, 2, 3, 4, 5}
    assert (raw[raw[:, 0] == 2][:, 4] == 1).any() and (raw[raw[:, 0] == 2][:, 4] == 17).any()
    first_bar_empty = [sid for sid, r in songs.items() if r[0, 1] == D.BAR and r[1, 1] == D.BAR]
    assert first_bar_empty == ["song1", "song3", "song5"]


# ----------------------------------------------------------------------------- the original's npz

def test_reading_the_original_npz_converts_columns_and_makes_a_deterministic_split(originals):
    from vidscore.training import loop as training
    data = training.load_data(originals["npz"])
    again = training.load_data(originals["npz"])
    ids = [m["id"] for m in data["metadata"]]
    assert ids == list(originals["songs"])
    assert data["x"].shape[2] == 9 and data["x"].dtype == np.int32
    for i, sid in enumerate(ids):
        ours, _ = midi_to_tokens(originals["dir"] / "midis" / f"{sid}.mid", trim_leading=False)
        k = len(ours) - 1                       # rows before EOS, without the original's trailing bars
        n = int(data["seq_len"][i])
        assert n == len(originals["songs"][sid]) - 1 and data["mask"][i].sum() == n
        np.testing.assert_array_equal(data["x"][i, :k], ours[:k])
        np.testing.assert_array_equal(data["y"][i, :k - 1], ours[1:k])
        assert not data["x"][i, n:].any()       # padding stays all zero
        present = [D.INSTRUMENTS.index(s) + 1 for s in originals["instruments"][sid]]
        assert sorted(data["init"][i, 2:, 2][data["init"][i, 2:, 2] > 0].tolist()) == sorted(present)
        assert data["init"][i, 0, 0] == 0 and data["init"][i, 1, 1] == 0     # no genre ("N/A"), no key
    split = dataset.assign_split(ids, 0.1)
    assert data["split"].tolist() == [split[s] for s in ids] == again["split"].tolist()
    assert 0 < data["split"].sum() < len(ids)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_crafted_npz(path, payload):
    """An npz in the original's layout whose metadata pickle runs ``payload``'s reduce when loaded."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    buf.write(pickle.dumps(np.array([payload], dtype=object), protocol=3))   # as np.save writes it
    with zipfile.ZipFile(path, "w") as z:
        for name, arr in (("x", np.zeros((1, 4, 10), np.int64)), ("y", np.zeros((1, 4, 10), np.int64)),
                          ("decoder_mask", np.ones((1, 5), np.int64))):
            b = io.BytesIO()
            np.save(b, arr)
            z.writestr(f"{name}.npy", b.getvalue())
        z.writestr("metadata.npy", buf.getvalue())
    return path


def test_a_crafted_pickle_is_refused_and_does_not_run(video_npz, tmp_path):
    marker = tmp_path / "ran"
    bad = write_crafted_npz(tmp_path / "evil.npz", _RunsCode(marker))
    assert b"system" in zipfile.ZipFile(bad).read("metadata.npy")          # the payload is there
    with pytest.raises(original_npz.OriginalNpzError, match="refusing to load .*system"):
        original_npz.read_metadata(bad)
    r = run([sys.executable, "src/match.py", video_npz["npz"], bad], cwd=ROOT)   # the library is the bad file
    assert "refusing to load" in one_line_error(r)
    r = run([sys.executable, "train.py", "--name", "evil", "-t", bad, "--exp_dir", tmp_path / "exp",
             "--log_dir", tmp_path / "logs"], cwd=SRC)
    assert "refusing to load" in one_line_error(r)
    assert not marker.exists()
    # other globals are refused too, whatever they are
    for payload in (eval, print, np.load):
        with pytest.raises(original_npz.OriginalNpzError, match="refusing to load"):
            original_npz.read_metadata(write_crafted_npz(tmp_path / "other.npz", payload))


def test_plain_metadata_of_numpy_scalars_and_lists_reads(tmp_path):
    meta = [{"id": "a", "de_len": np.int64(3), "instruments": ["Piano"], "genre": "N/A", "w": 1.5}]
    p = tmp_path / "m.npz"
    np.savez(p, metadata=np.array(meta, dtype=object), decoder_mask=np.ones((1, 3)))
    with pytest.raises(original_npz.OriginalNpzError, match="refusing"):   # an np.int64 is a numpy scalar global
        original_npz.read_metadata(p)
    meta[0]["de_len"] = 3
    np.savez(p, metadata=np.array(meta, dtype=object), decoder_mask=np.ones((1, 3)))
    assert original_npz.read_metadata(p) == [{"id": "a", "de_len": 3, "instruments": ["Piano"], "genre": "N/A",
                                              "w": 1.5}]


# ----------------------------------------------------------------------------- commands

def test_cmt_midi2numpy_mix_from_src_writes_dataset_and_no_cache_in_src(originals):
    name = f"test_originals_{uuid.uuid4().hex[:8]}"
    out = ROOT / "dataset" / f"{name}.npz"
    made = [out, out.with_name(f"{name}_vocab.json"), out.with_name(f"{name}_stats.json")]
    cache = ROOT / "dataset" / ".cache" / "tokens"
    cache_existed = cache.is_dir()
    before = set(cache.rglob("*")) if cache_existed else set()
    src_before = sorted(p.name for p in SRC.iterdir())
    try:
        r = run([sys.executable, "midi2numpy_mix.py", "--midi_dir", originals["dir"] / "midis",
                 "--out_name", f"{name}.npz"], cwd=SRC)
        assert r.returncode == 0, r.stderr
        assert out.is_file()
        assert sorted(p.name for p in SRC.iterdir()) == src_before and not (SRC / ".cache").exists()
        data = training_data(out)
        ids = [m["id"] for m in data["metadata"]]
        for sid in ("song0", "song2", "song4"):    # songs that start in bar 0 (we trim leading empty bars)
            ours = data["x"][ids.index(sid)]
            expected = without_trailing_empty_bars(original_npz.convert_rows(originals["songs"][sid]))
            np.testing.assert_array_equal(ours[:len(expected) - 1], expected[:-1])
    finally:
        for p in made:
            p.unlink(missing_ok=True)
        if cache.is_dir():      # what this run cached (files, then the folders it made)
            new = set(cache.rglob("*")) - before
            for p in sorted(new, key=lambda q: len(q.parts), reverse=True):
                p.rmdir() if p.is_dir() else p.unlink()
            if not cache_existed:
                cache.rmdir()
                if not any(cache.parent.iterdir()):
                    cache.parent.rmdir()


def training_data(path):
    from vidscore.music.representation import load_training_npz
    return load_training_npz(path)


@pytest.fixture(scope="module")
def video_npz(tmp_path_factory):
    """CMT's `cd src/video2npz && sh video2npz.sh ../../videos/test.mp4` (run by dash)."""
    d = tmp_path_factory.mktemp("video")
    video = write_jumping_square(d / "videos" / "test.mp4", seconds=4)
    rel = os.path.relpath(video, SRC / "video2npz")
    out = d / "inference"
    r = run(["sh", "video2npz.sh", rel, "--no_cache"], cwd=SRC / "video2npz", OUT_DIR=str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "test_metadata.json").is_file() and (out / "test.npz").is_file()
    return {"dir": d, "video": Path(video), "npz": out / "test.npz", "json": out / "test_metadata.json"}


def test_video2npz_sh_is_posix_sh():
    script = (SRC / "video2npz" / "video2npz.sh").read_text()
    assert script.startswith("#!/bin/sh") and "pipefail" not in script and "[[" not in script
    assert "BASH_SOURCE" not in script
    r = run(["sh", "-n", SRC / "video2npz" / "video2npz.sh"], cwd=ROOT)
    assert r.returncode == 0, r.stderr
    r = run(["sh", "video2npz.sh"], cwd=SRC / "video2npz")
    assert r.returncode == 2 and "usage" in r.stderr


def test_video2npz_sh_under_sh_writes_the_json_and_npz(video_npz):
    rows = np.load(video_npz["npz"], allow_pickle=False)["input"]
    assert rows.ndim == 2 and (rows[:, 0] == D.BAR).sum() >= 2


def test_bmt_metadata2numpy_mix_with_is_path(video_npz, tmp_path):
    meta_dir = tmp_path / "meta"
    meta_dir.mkdir()
    shutil.copy(video_npz["json"], meta_dir / "test.json")
    out = tmp_path / "npz"
    r = run([sys.executable, "src/video2npz/metadata2numpy_mix.py", "--video", video_npz["video"].parent,
             "--meta_data", meta_dir, "--is_path", "1", "--out_dir", out], cwd=ROOT)
    assert r.returncode == 0, r.stderr
    expected = np.load(video_npz["npz"], allow_pickle=False)["input"]
    np.testing.assert_array_equal(np.load(out / "test.npz", allow_pickle=False)["input"], expected)
    # a file with --is_path 0, and the originals' spelling --metadata
    r = run([sys.executable, "src/video2npz/metadata2numpy_mix.py", "--video", video_npz["video"],
             "--metadata", video_npz["json"], "--is_path", "0", "--out_dir", tmp_path / "one"], cwd=ROOT)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "one" / "test.npz")["input"], expected)
    r = run([sys.executable, "src/video2npz/metadata2numpy_mix.py", "--video", video_npz["video"],
             "--meta_data", video_npz["json"], "--is_path", "1", "--out_dir", tmp_path / "x"], cwd=ROOT)
    assert "must be a folder" in one_line_error(r)


def test_cmt_match_on_the_original_npz(video_npz, originals):
    from vidscore.generation import retrieval
    r = run([sys.executable, "src/match.py", video_npz["npz"], originals["npz"]], cwd=ROOT)
    assert r.returncode == 0, r.stderr
    printed = [line.split()[2] for line in r.stdout.strip().splitlines()[1:]]
    assert len(printed) == 5
    # the same ranking from our own tokens of the same MIDI files
    ours = [midi_to_tokens(p, trim_leading=False)[0] for p in originals["midis"]]
    video_rows = np.load(video_npz["npz"])["input"]
    ranked = retrieval.rank(video_rows, [t[:-1] for t in ours], 5)
    assert printed == [originals["midis"][i].stem for i, _ in ranked]


def test_cmt_gen_midi_conditional_from_src(video_npz, tiny_ckpt, tmp_path):
    rel = os.path.relpath(video_npz["npz"], SRC)
    r = run([sys.executable, "gen_midi_conditional.py", "-f", rel, "-c", tiny_ckpt, "-n", "2",
             "--out_dir", tmp_path / "gen", "--seed", "1"], cwd=SRC)
    assert r.returncode == 0, r.stderr
    mids = sorted(p.name for p in (tmp_path / "gen").glob("*.mid"))
    assert mids == ["test_0.mid", "test_1.mid"]
    assert not list((tmp_path / "gen").glob("*.wav"))             # MIDI only, as the original
    # a glob pattern, as the original's -f
    r = run([sys.executable, "gen_midi_conditional.py", "-f", str(video_npz["npz"].parent / "*.npz"),
             "-c", tiny_ckpt, "--out_dir", tmp_path / "glob"], cwd=SRC)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in (tmp_path / "glob").glob("*.mid")] == ["test_0.mid"]
    r = run([sys.executable, "gen_midi_conditional.py", "-f", "x.npz", "-g", "0,1"], cwd=SRC)
    assert "one GPU" in one_line_error(r)
    # a glob is one batch: a bad file is reported and the others are still done
    mix = tmp_path / "mix"
    mix.mkdir()
    shutil.copy(video_npz["npz"], mix / "b_good.npz")
    (mix / "a_bad.npz").write_text("not an npz")
    r = run([sys.executable, "gen_midi_conditional.py", "-f", str(mix / "*.npz"), "-c", tiny_ckpt,
             "--out_dir", tmp_path / "batch"], cwd=SRC)
    assert r.returncode == 2 and "1 of 2 inputs failed (a_bad" in r.stderr and "Traceback" not in r.stderr
    assert [p.name for p in (tmp_path / "batch").glob("*.mid")] == ["b_good_0.mid"]


def test_cmt_train_py_fine_tunes_and_resumes_with_two_processes(originals, tiny_ckpt, tmp_path):
    exp, logs = tmp_path / "exp", tmp_path / "logs"
    common = ["--exp_dir", exp, "--log_dir", logs]
    r = run([sys.executable, "train.py", "--name", "ft", "--train_data", originals["npz"], "-b", "2", "-e", "1",
             "-p", tiny_ckpt, "--gpus", "0", "1", *common], cwd=SRC)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (logs / "ft.log").read_text()
    assert f"fine-tuning {tiny_ckpt}" in log and "2 process(es)" in log
    n_val = sum(dataset.assign_split(list(originals["songs"]), 0.1).values())
    assert f"{len(originals['songs']) - n_val} train / {n_val} validation" in log
    r = run([sys.executable, "train.py", "-n", "ft", "-t", originals["npz"], "-b", "2", "-e", "2",
             "-p", exp / "ft" / "last.pt", *common], cwd=SRC)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming" in (logs / "ft.log").read_text()
    from vidscore.model.cmt import load_checkpoint
    assert load_checkpoint(exp / "ft" / "last.pt").checkpoint_info["epoch"] == 1


def test_bmt_main_cp_takes_mode_from_the_block(originals, tiny_ckpt, tmp_path):
    import main_cp
    assert main_cp.HP["mode"] == "inference"
    assert main_cp.parse_args([])["mode"] == "inference"
    assert main_cp.parse_args(["--mode", "train"])["mode"] == "train"
    # edit the block, then `python main_cp.py` (in a copy of the repository's src/)
    copy = tmp_path / "repo" / "src"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__", ".cache"))
    text = (copy / "main_cp.py").read_text()
    assert text.count('mode="inference",') == 1
    (copy / "main_cp.py").write_text(text.replace('mode="inference",', 'mode="train",'))
    r = run([sys.executable, "main_cp.py", "--train_data", originals["npz"], "--init_ckpt", tiny_ckpt,
             "--epochs", "1", "--batch_size", "2", "--name", "bmt", "--exp_dir", tmp_path / "exp",
             "--log_dir", tmp_path / "logs"], cwd=copy)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "exp" / "bmt" / "last.pt").is_file()


def test_repository_folders_from_any_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.repo_path("inference/a.npz") == ROOT / "inference" / "a.npz"
    assert paths.repo_path("dataset") == ROOT / "dataset"
    assert paths.repo_path("mine/a.npz") == Path("mine/a.npz")
    assert paths.repo_path("../dataset/a.npz") == Path("../dataset/a.npz")
    assert paths.repo_path(tmp_path / "x") == tmp_path / "x"
    assert paths.in_folder("data.npz", "dataset") == ROOT / "dataset" / "data.npz"
    assert paths.in_folder("sub/data.npz", "dataset") == Path("sub/data.npz")
    import main_cp
    hp = main_cp.parse_args(["--mode", "train"])
    assert (hp["exp_dir"], hp["log_dir"], hp["data_root"], hp["out_dir"]) == tuple(
        str(ROOT / f) for f in ("exp", "logs", "dataset", "inference"))
    assert "/src/.cache/" in (ROOT / ".gitignore").read_text()
