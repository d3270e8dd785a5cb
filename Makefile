# The README's two commands: `make demo` and `make test`. Everything else is a helper target.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat py3_requirements.txt | md5sum | cut -c1-8)
FT_STAMP := $(VENV)/.fast-transformers
DEMO_VIDEO ?= videos/demo.mp4

.PHONY: all setup system-deps demo test quick lint fast-transformers sources corpus corpus-rich train-rich train-bundled bench evaluate webapp clean

all: demo

$(STAMP): py3_requirements.txt scripts/install_torch.sh
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	scripts/install_torch.sh $(PIP)
	$(PIP) install -q -r py3_requirements.txt
	@rm -f $(VENV)/.installed-*; touch $@

system-deps:
	@scripts/system_deps.sh

setup: $(STAMP) system-deps

# The original's compiled attention kernels: optional for the demo, built for the tests.
$(FT_STAMP): $(STAMP)
	scripts/install_fast_transformers.sh $(PY)
	@touch $@

fast-transformers: $(FT_STAMP)

# Video in, the same video with music out (results under inference/).
demo: setup
	$(PY) src/main_cp.py --mode inference --videos $(DEMO_VIDEO) --out_dir inference/

test: setup fast-transformers lint
	@scripts/install_browser.sh
	$(PY) -m pytest -q

# The quick loop: the suite without the tests marked slow (see pyproject.toml).
quick: setup
	$(PY) -m pytest -q -m "not slow"

# pyflakes' findings (undefined names, unused imports and variables), settings in pyproject.toml.
lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

# The soundtrack and listening-test web apps on http://127.0.0.1:7860/
webapp: setup
	$(PY) src/webapp.py

# Offline training corpora (see README, "Training data"): the scores that music21 ships; those
# plus the General MIDI songs with drums of two Debian packages; and those plus drum overlays
# (music21 pieces with a drummed song's drum loop laid under them); and Freedoom's songs, each
# with a genre (docs/corpus_freedoom.md).
corpus: setup sources
	$(PY) src/prepare_corpus.py --source music21 --out_name dataset/music21.npz
	$(PY) src/prepare_corpus.py --source music21 openmsx blupi --out_name dataset/bundled.npz
	$(PY) src/prepare_corpus.py --source music21 openmsx blupi overlay --out_name dataset/bundled_overlay.npz
	$(PY) src/prepare_corpus.py --source freedoom --out_name dataset/freedoom.npz

# The training sources from Debian's archive (docs/corpus_freedoom.md), fetched without root into
# .cache/debian/ and checked by sha256; a checked copy is reused.
sources: setup
	$(PY) src/fetch_sources.py

# Retrain the bundled model (see README, "The bundled model"), in three stages; a stage whose
# result exists is skipped, and stages 1 and 2 ship with the repository, so by default only
# stage 3 runs (~12 min on 2 cores); to retrain from an earlier stage, delete its folder
# (exp/music21/ or exp/drums/) and the model.pt of the stages after it (exp/bundled/model.pt is
# always remade).  An interrupted stage 1 or 2 continues where it stopped (--resume 1).
# 1: a model of the music21 scores alone (exp/music21/model.pt; ~1 h).
# 2: that model fine-tuned on music21 plus the drummed songs, these repeated BUNDLED_WEIGHTS
#    times per pass, Pop (their genre) the default genre (exp/drums/model.pt; ~50 min).
# 3: that model fine-tuned on the same plus the drum overlays (exp/bundled/model.pt).
# Last, its controls are fitted to its training data (calibration, README "Calibration").
BUNDLED_WEIGHTS ?= openmsx=6,blupi=2
BEST = $$(ls exp/$(1)/loss_*_params.pt | sort -t_ -k2 -n | head -1)
train-bundled: corpus
	test -f exp/music21/model.pt || { \
	  $(PY) src/main_cp.py --mode train --preset small --train_data music21.npz --name music21 --transpose 6 --resume 1 && \
	  $(PY) src/export_checkpoint.py --ckpt "$(call BEST,music21)" --out exp/music21/model.pt --data dataset/music21.npz; }
	test -f exp/drums/model.pt || { \
	  $(PY) src/main_cp.py --mode train --preset small --train_data bundled.npz --name drums --transpose 6 --resume 1 \
		--init_ckpt exp/music21/model.pt --source_weights $(BUNDLED_WEIGHTS) --default_genre Pop \
		--max_tokens 8192 --epochs 8 && \
	  $(PY) src/export_checkpoint.py --ckpt "$(call BEST,drums)" \
		--out exp/drums/model.pt --half --data dataset/bundled.npz --default_genre Pop; }
	$(PY) src/main_cp.py --mode train --preset small --train_data bundled_overlay.npz --name bundled --transpose 6 \
		--overwrite 1 --init_ckpt exp/drums/model.pt --source_weights $(BUNDLED_WEIGHTS) --default_genre Pop \
		--max_tokens 8192 --epochs 2
	$(PY) src/export_checkpoint.py --ckpt "$(call BEST,bundled)" \
		--out exp/bundled/model.pt --half --data dataset/bundled_overlay.npz --default_genre Pop
	$(PY) src/stat_mix.py --ckpt exp/bundled/model.pt --in_place

# The rich corpus (issue 27): music21's scores, the drummed Debian GM songs, Freedoom's songs,
# music21 melodies arranged by MMA in 11 genre families, and drum overlays
# (docs/corpus_freedoom.md, docs/corpus_mma.md; ~35 min on 2 cores, most of it MMA, cached).
corpus-rich: setup sources
	$(PY) src/prepare_corpus.py --source music21 openmsx blupi freedoom mma overlay --out_name dataset/rich.npz

# A candidate bundled model on the rich corpus: stage 2 (exp/drums/model.pt, shipped) fine-tuned
# on it, the genre vocabulary grown to the 13 genres of its data, small sources repeated RICH_WEIGHTS times
# per pass; resumable (--resume 1: an interrupted run continues from exp/rich/last.pt).
RICH_WEIGHTS ?= openmsx=6,blupi=2,freedoom=4,mma=2
train-rich: corpus-rich
	$(PY) src/main_cp.py --mode train --preset small --train_data rich.npz --name rich --transpose 6 --resume 1 \
		--init_ckpt exp/drums/model.pt --source_weights $(RICH_WEIGHTS) --default_genre Pop \
		--max_tokens 8192 --epochs 8
	$(PY) src/export_checkpoint.py --ckpt "$(call BEST,rich)" \
		--out exp/rich/model.pt --half --data dataset/rich.npz --default_genre Pop
	$(PY) src/stat_mix.py --ckpt exp/rich/model.pt --in_place

# Metrics of what `make demo` wrote, against the training corpus (report in inference/evaluation/).
evaluate: setup
	$(PY) src/evaluate.py --generated inference/ --reference dataset/music21.npz

bench: setup fast-transformers
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_model.py --parts gen --dtype int8
	$(PY) benchmarks/bench_precision.py
	$(PY) benchmarks/bench_sampling.py
	$(PY) benchmarks/bench_threads.py
	$(PY) benchmarks/bench_video.py
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_evaluate.py
	$(PY) benchmarks/bench_controls.py
	$(PY) benchmarks/bench_quality.py
	$(PY) benchmarks/bench_drums.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
