"""The density response of a model: the notes per bar it plays at each density class, which the
notes-matched calibration fit (:func:`vidscore.generation.calibration.notes_matched_thresholds`)
needs.  Its own module because it runs whole generation jobs, which themselves read calibrations."""
from __future__ import annotations

import numpy as np

from vidscore import cli
from vidscore.evaluation import metrics
from vidscore.generation import calibration
from vidscore.generation import generate as generation
from vidscore.generation import job as pipeline
from vidscore.video import metadata as M


def density_response(model, songs: int = 8, bars: int = 8, seed: int = 0, progress: bool = True) -> list[float]:
    """Per density class c (0..16), the notes per bar ``model`` realises when every bar of a
    ``bars``-bar, 120 bpm video asks class c at ``--C 1`` (no visual beats; the default
    instruments, key and genre; the count-down keeps the positions), over ``songs`` songs."""
    opts = pipeline.Options(C=1.0, min_strength=99)
    mapping = calibration.original(99)
    controls = pipeline.make_controls(model, opts, mapping)
    init = pipeline.init_block(model, opts)
    meta = {"duration": bars * 2.0, "tempo": 120.0, "vbeats": [], "flow_magnitude_per_bar": [1.0] * bars}
    controls.tempo = 120.0
    out = []
    n_thr = len(M.DENSITY_THRESHOLDS)
    for c in cli.progress(range(calibration.N_DENSITY), desc="density response", unit="class", disable=not progress):
        thresholds = tuple(0.0 if i < c else 2.0 for i in range(n_thr))    # flow 1.0 -> class c
        rows = M.metadata_to_rows(meta, thresholds, M.STRENGTH_THRESHOLDS)
        made = generation.generate(model, rows, init, songs, controls=controls, seed=seed + c)
        out.append(float(np.mean([len(metrics.notes_from_tokens(np.asarray(s.tokens))) / bars for s in made])))
    return out
