# `make train` and `make test` create the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install report train test lint benchmark sweep clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e ".[dev]"
	touch $(STAMP)

report: install  ## train 3 seeds, evaluate, write figures/, figures/metrics.json and REPORT.md
	$(PY) -m vae report --seeds 0 1 2

train: install  ## train the seed's VAE for 10 epochs (checkpoint in runs/train/)
	$(PY) -m vae train

test: install lint  ## lint, then the whole test suite
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check vae tests benchmarks
	$(VENV)/bin/ruff format --check vae tests benchmarks

benchmark: install  ## training and report speed vs the DataLoader pipeline and the matmul peak
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/report_speed.py

sweep: install  ## the ablations: 14 configs x 3 seeds, resumable; table and figures in figures/experiments/
	$(PY) -m vae sweep --jobs 2

clean:
	rm -rf runs .pytest_cache
