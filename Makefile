# Pitch-dataset generator and f0 regressor. `make help` lists the targets.
# Outputs are real files whose prerequisites are their inputs, their stage's code and
# their stage's slice of the config, so only what changed is rebuilt.

CONFIG ?= configs/default.toml
NAME := $(basename $(notdir $(CONFIG)))
SET ?=
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .make
ARGS := --config $(CONFIG) $(foreach s,$(SET),--set $(s))
PIPELINE := $(PY) -m pipeline

DATA := data/$(NAME)
PARAMS := $(DATA)/.params
MODEL := models/$(NAME)
REPORT := reports/$(NAME)
EXPORTS := exports/$(NAME)

# Each stage's code: the files its entry module imports, directly or not (inside functions too),
# read from the source by pipeline/core/imports.py, so the lists cannot go stale; remade when a
# module or a folder of the package changes (a folder's mtime: a module added or removed).
SOURCES_MK := $(STAMPS)/sources.mk
STAGE_ENTRIES := data=pipeline.data.dataset features=pipeline.data.features \
                 train=pipeline.model.training report=pipeline.report.reporting \
                 export=pipeline.formats.export
$(SOURCES_MK): $(shell find pipeline -name __pycache__ -prune -o \( -name '*.py' -o -type d \) -print)
	@mkdir -p $(STAMPS) && $(PYTHON) -m pipeline.core.imports $(STAGE_ENTRIES) > $@.tmp && mv $@.tmp $@
include $(SOURCES_MK)

.DEFAULT_GOAL := all
.PHONY: all help setup data features train report export-dataset test test-fast bench experiments shipped-model docs clean clean-all FORCE

all: report ## set up, then run the whole pipeline on CONFIG (default configs/default.toml)

help: ## list the targets
	@echo "make [TARGET] [CONFIG=configs/NAME.toml] [SET='section.key=value ...']"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# --- set-up: system packages, then the virtualenv (stamp files skip what is done) ----
$(STAMPS)/system: scripts/install_system.sh
	bash scripts/install_system.sh
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/venv: pyproject.toml $(STAMPS)/system
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,test]'
	@touch $@

setup: $(STAMPS)/venv ## install system packages and the virtualenv

# --- the pipeline ---------------------------------------------------------------------
# A stage's config slice is rewritten only when it changes (make then sees a new mtime).
$(PARAMS)/%.json: FORCE | $(STAMPS)/venv
	@$(PIPELINE) params $* $(ARGS) --out $@

# The data stage's target is build.json, which every build that finishes writes last; it
# rewrites manifest.csv only when its content changes, so the features follow only then.
# `pipeline params data` (every make) also runs the stage's quick check and touches data.json
# when a clip or shard record went missing or changed since the build, or when a direct
# `pipeline data --set ...` built the dataset for other settings: the stage then repairs that.
$(DATA)/build.json: $(PARAMS)/data.json $(DATA_SRC)
	$(PIPELINE) data $(ARGS)
$(DATA)/manifest.csv: $(DATA)/build.json ;

# The features stage's target is features/build.json, which every run that finishes writes last;
# done.json, what training reads, is rewritten only when the split files change, so a run with
# nothing to do (after an edit of the stage's code that changes no feature) retrains nothing.
# A split file that is missing, or newer than build.json (changed, truncated), runs the stage,
# which checks it against its record (size, then sha256) and rebuilds only a damaged one. The
# empty rule lets a missing split file count as new.
SPLIT_FILES := $(addprefix $(DATA)/features/,train.npy val.npy test.npy)
$(SPLIT_FILES): ;
$(DATA)/features/build.json: $(DATA)/manifest.csv $(PARAMS)/features.json $(FEATURES_SRC) $(SPLIT_FILES)
	$(PIPELINE) features $(ARGS)
$(DATA)/features/done.json: $(DATA)/features/build.json ;

$(MODEL)/model.keras: $(DATA)/features/done.json $(PARAMS)/train.json $(TRAIN_SRC)
	$(PIPELINE) train $(ARGS)

$(REPORT)/report.md: $(MODEL)/model.keras $(PARAMS)/report.json $(REPORT_SRC)
	$(PIPELINE) report $(ARGS)

# The export's target is exports/NAME/build.json, which every export that finishes writes last; the
# stage itself leaves a format whose files match the dataset alone (data/NAME/build.json is rewritten
# by every data build, so the export checks then, and writes only what changed).
$(EXPORTS)/build.json: $(DATA)/build.json $(EXPORT_SRC)
	$(PIPELINE) export-dataset $(ARGS)

data: $(DATA)/manifest.csv ## render, slice and label the dataset (data/NAME/)
features: $(DATA)/features/done.json ## spectrograms per split (data/NAME/features/)
train: $(MODEL)/model.keras ## train the f0 regressor (models/NAME/)
report: $(REPORT)/report.md ## errors by pitch, instrument, segment; baselines (reports/NAME/)
export-dataset: $(EXPORTS)/build.json ## the dataset as Parquet, WebDataset, TFRecord, NSynth files (exports/NAME/)

# --- checks -----------------------------------------------------------------------------
test: $(STAMPS)/venv ## set up, then lint (ruff) and run the whole test suite (CI's; under 15 minutes on 2 cores)
	$(PY) -m ruff check pipeline tests bench
	$(PY) -m pytest -q tests

test-fast: $(STAMPS)/venv ## lint, then the tests not marked slow (docs/testing.md): a few minutes
	$(PY) -m ruff check pipeline tests bench
	$(PY) -m pytest -q -m "not slow" tests

$(STAMPS)/opl3: scripts/install_system.sh
	bash scripts/install_system.sh opl3-soundfont
	@mkdir -p $(STAMPS) && touch $@

shipped-model: $(STAMPS)/venv $(STAMPS)/opl3 ## retrain the model shipped in the package (configs/shipped.toml; about 1.5 h on 2 cores)
	$(MAKE) train CONFIG=configs/shipped.toml
	$(PIPELINE) export --config configs/shipped.toml --default

experiments: $(STAMPS)/venv ## reproduce the original write-ups' experiments -> reports/experiments/
	$(PIPELINE) experiments --config configs/experiments.toml

docs: $(STAMPS)/venv ## write docs/configuration.md from the typed config (a test checks it is up to date)
	$(PIPELINE) config --docs > docs/configuration.md.tmp && mv docs/configuration.md.tmp docs/configuration.md

bench: $(STAMPS)/venv ## speed benchmarks -> bench/results.json and bench/results.md
	$(PY) -m bench.run

clean: ## remove this config's outputs
	rm -rf $(DATA) $(MODEL) $(REPORT) $(EXPORTS)

clean-all: ## remove every output and the virtualenv
	rm -rf data models reports exports $(VENV) $(STAMPS)

FORCE:
