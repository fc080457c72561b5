# `make demo` and `make test` work from nothing but Python 3.11: they create .venv and install into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml
	@echo
	@cat results/report/summary.md
	@echo
	@echo "Submission: $(CURDIR)/results/submission.csv"
	@echo "Report:     $(CURDIR)/results/report/summary.md"

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/snakemake --lint --cores 1

bench: install
	$(BIN)/python bench/synth_oracle.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/train_speed.py

clean:
	rm -rf results .snakemake
