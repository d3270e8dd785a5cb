"""Compose for a batch of videos from a run's hyperparameters (``main_cp.py --mode inference``,
``gen_midi_conditional.py``): one model load, one plan checked up front, a bad input reported and
the others done."""
from __future__ import annotations

from pathlib import Path

from vidscore import cli
from vidscore.generation import job as pipeline

#: The most songs one run composes per video (they are generated together, in memory).
MAX_SONGS = 64


def compose(hp: dict, videos: list | None = None) -> None:
    """Compose for ``hp["videos"]`` (a file or folder), or for every path of ``videos`` (files or
    folders; gen_midi_conditional's glob) as one batch: one model load, one plan checked up front,
    a bad input reported and the others done."""
    ckpt = Path(hp["ckpt"]) if hp["ckpt"] else pipeline.DEFAULT_CKPT
    if not ckpt.is_file():
        raise cli.UserError(f"no checkpoint at {ckpt}: train one with `python src/main_cp.py --mode train` "
                            "or pass --ckpt pointing at a checkpoint (the released CMT loss_8_params.pt works)")
    if not 1 <= hp["num_songs"] <= MAX_SONGS:
        raise cli.UserError(f"--num_songs must be 1..{MAX_SONGS} (songs are composed together, in memory)")
    if not hp["max_video_s"] > 0:
        raise cli.UserError("--max_video_s must be a positive number of seconds")
    inputs = [q for v in (videos if videos is not None else [hp["videos"]]) for q in pipeline.collect_inputs(v)]
    pipeline.check_plan(inputs, pipeline.Options(out_dir=hp["out_dir"], num_songs=hp["num_songs"]), (ckpt,))
    model = pipeline.load_model(ckpt, hp["device"], hp["dtype"], threads=hp["threads"], batch=hp["num_songs"])
    opts = pipeline.options_from_hp(hp, model)
    results = pipeline.run(inputs, model, opts, keep_going=True)
    if any(r.files for r in results):
        print("\nwritten:")
    for r in results:
        for f in r.files:
            print(f"  {f}")
    failed = [r.name for r in results if r.error]
    if failed:
        raise cli.UserError(f"{len(failed)} of {len(results)} inputs failed ({', '.join(failed)}; "
                            "reasons above); the others were done")
