"""The retrieval baseline (SPEC section 7) on profiles worked out by hand."""
import subprocess
import sys
from pathlib import Path

import numpy as np

from vidscore.generation import retrieval
from vidscore.music.representation import notes_to_tokens

ROOT = Path(__file__).resolve().parents[1]
# video: bar 0 density 3 with a beat of strength 4 at position 4; bar 1 density 2, strength 7 at 0
ROWS = np.array([[17, 3, 0, 0, 32, 1], [5, 0, 4, 4, 32, 13], [17, 2, 0, 16, 32, 51], [1, 0, 7, 16, 32, 51]])


def test_video_profile():
    density, strength = retrieval.video_profile(ROWS)
    assert density.tolist() == [3, 2]
    expected = np.zeros((2, 16))
    expected[0, 4], expected[1, 0] = 4, 7
    assert (strength == expected).all()


def test_song_profile_and_score():
    # bar 0: 2 notes at 0 and 4 notes at 4 (two onset positions -> density 3); bar 1: 3 notes at 0
    notes = [[0, 60, 4, 2], [0, 64, 4, 2]] + [[4, p, 4, 2] for p in (60, 64, 67, 72)] + \
            [[16, p, 4, 2] for p in (60, 64, 67)]
    tokens = notes_to_tokens(np.array(notes))
    density, strength = retrieval.song_profile(tokens)
    assert density.tolist() == [3, 2]
    assert strength[0, 0] == 2 and strength[0, 4] == 4 and strength[1, 0] == 3
    # MSE(density) = 0; strength differs in two of 32 slots: (0-2)^2 + (7-3)^2 = 20 -> 20/32
    score = retrieval.match_score(retrieval.video_profile(ROWS), (density, strength))
    assert abs(score - 32 / 20) < 1e-9


def test_rank_puts_the_identical_song_first():
    same = notes_to_tokens(np.array([[4, p, 4, 2] for p in (60, 62, 64, 65)] + [[16, p, 4, 2] for p in range(60, 67)]))
    other = notes_to_tokens(np.array([[0, 60, 4, 2]] * 1 + [[8, 62, 4, 2]] + [[16, 60, 4, 2]]))
    # "same" has bar densities 2 and 2; the video asks 3 and 2: still the closer one
    ranked = retrieval.rank(ROWS, [other, same], top=2)
    assert [i for i, _ in ranked] == [1, 0]


def test_cli_bad_input_is_one_line(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "src" / "match.py"), str(tmp_path / "no.npz"), "x.npz"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
