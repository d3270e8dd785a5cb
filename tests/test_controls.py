"""User controls: names -> ids, and refusals instead of controls that silently do nothing."""
import subprocess
import sys
from pathlib import Path

import miditoolkit
import numpy as np
import pytest
import torch

from vidscore import cli
from vidscore import controls
from vidscore import constants as D
from vidscore.model.cmt import CMT, ModelConfig, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_key_names():
    assert D.KEY_NAMES[controls.parse_key("C major", 25)] == "C major"
    assert D.KEY_NAMES[controls.parse_key("a minor", 25)] == "A minor"
    assert D.KEY_NAMES[controls.parse_key("Bb", 25)] == "A# major"      # flats as their sharp twins
    assert D.KEY_NAMES[controls.parse_key("Ebm", 25)] == "D# minor"
    with pytest.raises(cli.UserError):
        controls.parse_key("H major", 25)
    with pytest.raises(cli.UserError, match="no key control"):
        controls.parse_key("C", 1)                                     # the released checkpoint
    # a key or genre the model never saw has an untrained embedding: refused, not silently noise
    assert controls.parse_key("G", 25, known=[1, 8, 13]) == 8
    with pytest.raises(cli.UserError, match="never saw F# major.*C major, G major, C minor"):
        controls.parse_key("F# major", 25, known=[1, 8, 13])
    assert controls.parse_genre("folk", 9, known=[7, 8]) == 8
    with pytest.raises(cli.UserError, match="not trained with Rock songs; it knows Classical, Folk"):
        controls.parse_genre("Rock", 9, known=[7, 8])


def test_instruments_and_programs():
    assert controls.parse_instruments("piano, Bass") == (2, 4)
    assert controls.parse_instruments("5,2,5") == (5, 2)
    with pytest.raises(cli.UserError, match="not trained with Drums"):
        controls.parse_instruments("Drums", known=[2, 3, 4, 5])
    assert controls.parse_programs("Strings=48")["Strings"] == 48
    assert controls.parse_programs("Strings=48")["Bass"] == D.PROGRAMS["Bass"]
    with pytest.raises(cli.UserError):
        controls.parse_programs("Strings=200")


@pytest.fixture(scope="module")
def tiny_npz_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=1, d_model=32, n_head=2, d_ff=64, emb_sizes=[8, 4, 8, 16, 8, 4, 8],
                      time_emb_size=8, init_emb_size=8, init_n_class=[9, 25, 6])
    d = tmp_path_factory.mktemp("c")
    save_checkpoint(d / "tiny.pt", CMT(cfg), vocab={"instruments": [2, 3, 4, 5], "default_key": 8})
    rows = np.array([[17, 5, 0, 0, 64, 1], [5, 0, 4, 4, 64, 7], [17, 3, 0, 16, 64, 26],
                     [17, 2, 0, 32, 64, 51], [17, 9, 0, 48, 64, 76]])
    np.savez(d / "v.npz", input=rows, tempo=np.float64(90.0), duration=np.float64(64 * 60 / (4 * 90)))
    return d


def run(d, *args):
    return subprocess.run([sys.executable, str(ROOT / "src" / "main_cp.py"), "--mode", "inference",
                           "--videos", str(d / "v.npz"), "--ckpt", str(d / "tiny.pt"), "--render", "0",
                           *map(str, args)], capture_output=True, text=True, timeout=120)


def test_instrument_and_program_flags_act(tiny_npz_ckpt, tmp_path):
    res = run(tiny_npz_ckpt, "--out_dir", tmp_path, "--instruments", "Bass,Strings", "--program", "Strings=48",
              "--num_songs", 2)
    assert res.returncode == 0, res.stderr
    for k in range(2):
        midi = miditoolkit.MidiFile(str(tmp_path / f"v_{k}.mid"))
        names = {i.name for i in midi.instruments if i.notes}
        assert names <= {"Bass", "Strings"} and names
        assert all(i.program == 48 for i in midi.instruments if i.name == "Strings")


def test_refused_controls_are_one_line(tiny_npz_ckpt, tmp_path):
    for args in (["--instruments", "Drums"], ["--key", "X minor"], ["--genre", "Polka-core"], ["--C", 2]):
        res = run(tiny_npz_ckpt, "--out_dir", tmp_path, *args)
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
