"""What users and packagers look for (issue 25): the licence, pyproject.toml in step with
py3_requirements.txt, the citation, the model cards, and checkpoints without absolute paths."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(lines) -> dict[str, str]:
    """``{normalised name: version}`` of ``name==version`` requirement lines (comments dropped)."""
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if m := re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line):
            out[re.sub(r"[-_.]+", "-", m.group(1).lower())] = m.group(2)
    return out


def test_pins_parses_requirement_lines():
    assert pins(["torch==2.13.0  # cpu", "# x==1", "Pretty_MIDI==0.2.11.post0", "flask>=3"]) == \
        {"torch": "2.13.0", "pretty-midi": "0.2.11.post0"}


def test_pyproject_and_py3_requirements_pin_the_same_versions():
    req = pins((ROOT / "py3_requirements.txt").read_text().splitlines())
    proj = PYPROJECT["project"]
    declared = pins(proj["dependencies"])
    for extra in proj["optional-dependencies"].values():
        declared.update(pins(extra))
    # the compiled kernel is built by scripts/install_fast_transformers.sh, not from the requirements
    declared.pop("pytorch-fast-transformers")
    assert declared == req


def test_project_metadata_names_the_licence_and_the_commands():
    proj = PYPROJECT["project"]
    assert proj["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert {"kernels", "web", "dev"} <= set(proj["optional-dependencies"])
    from vidscore import commands
    for name, target in proj["scripts"].items():
        module, func = target.split(":")
        assert module == "vidscore.commands" and callable(getattr(commands, func)), name
    scripts = {re.search(r'_run\("([^"]+)"\)', line).group(1)
               for line in Path(commands.__file__).read_text().splitlines() if '_run("' in line}
    assert all((ROOT / "src" / s).is_file() for s in scripts)
    assert "pytest" in PYPROJECT["tool"] and "slow" in PYPROJECT["tool"]["pytest"]["ini_options"]["markers"][0]
    assert PYPROJECT["tool"]["ruff"]["lint"]["select"] == ["F"]


def test_a_console_command_runs_its_script(tmp_path):
    """``vidscore-numpy2midi`` is ``python src/numpy2midi_mix.py``: same help, same one-line errors."""
    code = "import sys; sys.argv = ['vidscore-numpy2midi', '--in', 'missing.npy', '--out', %r]; " \
           "from vidscore import commands; commands.numpy2midi_mix()" % str(tmp_path / "x.mid")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 2
    assert res.stderr.strip().endswith("does not exist; give a .npy of token rows or a training/generation .npz")
    assert len(res.stderr.strip().splitlines()) == 1


def test_citation_names_this_project_and_the_cmt_paper():
    text = (ROOT / "CITATION.cff").read_text()
    assert text.startswith("cff-version: 1.2.0")
    assert "Video Background Music Generation with Controllable Music Transformer" in text
    assert "10.1145/3474085.3475195" in text and "year: 2021" in text
    assert "@inproceedings" in (ROOT / "README.md").read_text()
    assert (ROOT / "CHANGELOG.md").read_text().startswith("# Changelog")


SHIPPED = sorted(p.relative_to(ROOT) for p in (ROOT / "exp").glob("*/model.pt"))


@pytest.mark.parametrize("ckpt", SHIPPED, ids=str)
def test_every_shipped_checkpoint_has_a_model_card(ckpt):
    card = (ROOT / ckpt).with_name("MODEL_CARD.md")
    assert card.is_file(), f"{ckpt} has no model card"
    text = card.read_text()
    for heading in ("## Training data", "## How to retrain it", "## Figures", "## Known limits", "## Provenance"):
        assert heading in text, f"{card.relative_to(ROOT)} lacks {heading!r}"
    from vidscore.model.cmt import read_checkpoint
    from vidscore.training import provenance
    prov = read_checkpoint(ROOT / ckpt)["vocab"]["provenance"]
    assert provenance.markdown(prov) in text, "the card's provenance is the checkpoint's"


@pytest.mark.parametrize("ckpt", SHIPPED, ids=str)
def test_no_shipped_checkpoint_holds_an_absolute_path(ckpt):
    import zipfile
    with zipfile.ZipFile(ROOT / ckpt) as z:
        blob = b"".join(z.read(n) for n in z.namelist() if n.endswith(".pkl"))
    found = re.findall(rb"(?:/work|/home|/root|/tmp|/usr|/Users|[A-Z]:\\\\)[^\s\x00-\x1f]*", blob)
    assert not found, found[:5]


@pytest.mark.parametrize("ckpt", SHIPPED, ids=str)
def test_every_shipped_checkpoint_records_its_provenance(ckpt):
    from vidscore.model.cmt import read_checkpoint
    prov = (read_checkpoint(ROOT / ckpt).get("vocab") or {}).get("provenance")
    assert prov, f"{ckpt} records no provenance"
    assert re.fullmatch(r"[0-9a-f]{64}", prov["corpus_sha256"])
    assert prov["sources"] and prov["command"] and "code_commit" in prov
    assert not any(str(v).startswith("/") for v in prov.values())
