# `make demo` and `make test` work from nothing but Python 3.11: they create .venv and install into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
# the card machine's Python (bench/card/): a python3.12 on the PATH, else pyenv's
PYTHON312 ?= $(shell for p in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12; do \
	$$p -c '' 2>/dev/null && { command -v $$p; break; }; done)
KIT ?= .whl
CARD_VENV ?= .venv-card

# root installs Debian packages directly, anyone else through sudo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser slurm demo test lint bench gpu-kit gpu-mirror clean

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

# two pytest workers: the suite is mostly one process at a time (workflow runs, SLURM's status polling)
test: install browser slurm
	$(BIN)/python -m pytest -n $(CORES) --dist loadgroup

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

# The wheels a card machine without network lacks (bench/card/kit.py), resolved by Python 3.12 as there
gpu-kit:
	@test -n "$(PYTHON312)" || { echo "make gpu-kit needs the card's Python, 3.12: set PYTHON312=/path/to/python3.12" >&2; exit 2; }
	$(PYTHON312) bench/card/kit.py --out $(KIT)

# The card image mirrored as far as the registry allows (torch 2.11.0 and the rest of $(KIT)/image.txt:
# several GB), the kit installed into it the runner's way, and the runner's CPU smoke run (a few minutes)
gpu-mirror: gpu-kit
	test -x $(CARD_VENV)/bin/python || $(PYTHON312) -m venv $(CARD_VENV)
	PIP_CONSTRAINT= $(CARD_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $(KIT)/image.txt
	PYTHON=$(CARD_VENV)/bin/python KIT=$(KIT) SITE=$(CURDIR)/$(CARD_VENV)/kit OUT=bench-results/card-mirror \
		LIMIT=1500 bench/card/run.sh --device cpu --smoke --workflow-timeout 1200

clean:
	rm -rf results .snakemake
