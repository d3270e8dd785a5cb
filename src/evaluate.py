"""Objective evaluation of generated songs against a reference corpus (see docs/evaluation.md).

    python src/evaluate.py --generated inference/ --reference dataset/music21.npz

The work is :mod:`vidscore.evaluation.report`; this script only runs it.
"""
from vidscore import cli
from vidscore.evaluation.report import main

if __name__ == "__main__":
    cli.run(main)
