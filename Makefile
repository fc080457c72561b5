# `make demo` and `make test` work from nothing but Python 3.11: they create .venv and install into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

# root installs Debian packages directly, anyone else through sudo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser slurm demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Debian's Chromium, in which the tests open the HTML report (Playwright's own browser download is not used)
browser:
	command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null)

# Debian's SLURM and munge, for the test that runs the workflow on a real one-node cluster
slurm:
	command -v slurmctld >/dev/null && command -v munged >/dev/null || ($(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
		slurm-wlm munge >/dev/null)

demo: install
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml
	$(BIN)/snakemake --configfile config/config.yaml --report results/report.html
	@echo
	@cat results/report/summary.md
	@echo
	@echo "Submission: $(CURDIR)/results/submission.csv"
	@echo "Report:     $(CURDIR)/results/report.html (tables also in $(CURDIR)/results/report/summary.md)"

test: install browser slurm
	$(BIN)/python -m pytest

lint: install
	$(BIN)/snakemake --lint --cores 1

bench: install
	$(BIN)/python bench/synth_oracle.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/dag.py
	$(BIN)/python bench/noise.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/tune.py
	$(BIN)/python bench/predict.py
	$(BIN)/python bench/deepinsight.py
	$(BIN)/python bench/leakage.py

clean:
	rm -rf results .snakemake
