# make demo: fresh machine -> .venv, install, the whole DVC pipeline on the simulated enterprise.
# make test: .venv if missing, install, pytest.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export MLFLOW_TRACKING_URI ?= sqlite:///$(abspath mlflow.db)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml src/github_ueba/kql_setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/github-ueba setup-kql
	touch $(STAMP)

demo: install
	$(BIN)/dvc repro
	$(BIN)/github-ueba show --params params.yaml
	@echo; echo "Our model vs the paper's method (contamination 0.1, cutoff -0.32) on the same features:"
	$(BIN)/github-ueba compare --params params.yaml

test: install
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

bench: install
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf data/ingest data/features data/train data/detect models dvc_plots

# Recompose params.yaml from conf/ exactly as `dvc exp run` would (commit the result).
params.yaml: $(shell find conf -name '*.yaml') | install
	$(BIN)/python -c "import os; from dvc.utils.hydra import compose_and_dump as c; c('params.yaml', os.path.abspath('conf'), None, 'config', os.getcwd(), [])"
