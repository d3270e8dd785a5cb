"""vidscore: background music for videos (CMT / BMT rebuilt), one package behind the scripts in src/.

Subpackages, in the order data flows (imports point down this list, see ARCHITECTURE.md):

* :mod:`vidscore.webui`       the soundtrack and listening-test web apps;
* :mod:`vidscore.evaluation`  objective metrics, control errors, the evaluation report;
* :mod:`vidscore.generation`  a job (video -> songs), the control rules, calibration, retrieval;
* :mod:`vidscore.training`    offline corpora, the training npz, the training loop;
* :mod:`vidscore.video`       video analysis: visual beats, tempo, motion (metadata.json, rows);
* :mod:`vidscore.model`       the compound-word linear-attention Transformer and its sampling;
* :mod:`vidscore.music`       the representation: MIDI <-> notes <-> tokens, chords, the original's npz;
* top-level modules: constants, controls (the table of user controls), compute (device,
  precision, threads), rendering (FluidSynth, ffmpeg), cli (errors, atomic writes, progress), paths.
"""
