"""Console commands of ``pip install -e .`` (pyproject.toml ``[project.scripts]``): each runs its
script in ``src/`` as ``python src/<script>.py`` would, so the script (and main_cp.py's HP block)
stays the one definition of its command."""
from __future__ import annotations

import runpy
import sys

from vidscore import paths


def _run(script: str) -> None:
    path = paths.REPO / "src" / script
    if not path.is_file():
        print(f"{script}: error: {path} is missing: these commands run from a clone of the repository "
              "installed with `pip install -e .`", file=sys.stderr)
        sys.exit(2)
    sys.argv[0] = str(path)
    sys.path.insert(0, str(path.parent.parent if path.parent.name == "video2npz" else path.parent))
    runpy.run_path(str(path), run_name="__main__")


def main_cp() -> None: _run("main_cp.py")                          # noqa: E704
def train() -> None: _run("train.py")                              # noqa: E704
def gen_midi_conditional() -> None: _run("gen_midi_conditional.py")  # noqa: E704
def video2metadata() -> None: _run("video2npz/video2metadata.py")  # noqa: E704
def prepare_corpus() -> None: _run("prepare_corpus.py")            # noqa: E704
def midi2numpy_mix() -> None: _run("midi2numpy_mix.py")            # noqa: E704
def numpy2midi_mix() -> None: _run("numpy2midi_mix.py")            # noqa: E704
def evaluate() -> None: _run("evaluate.py")                        # noqa: E704
def stat_mix() -> None: _run("stat_mix.py")                        # noqa: E704
def webapp() -> None: _run("webapp.py")                            # noqa: E704
