# The README's two commands: `make run` (the default benchmark) and `make test`.
# Each works alone on a fresh machine: it creates .venv and installs what it needs.

VENV    ?= .venv
PYTHON  ?= python3
CORES   ?= all
CONFIG  ?= config/config.yaml
BIN     := $(abspath $(VENV))/bin
# The rules call the `hepgenbench` CLI, which lives in the venv.
export PATH := $(BIN):$(PATH)
# The HTCondor executor plugin warns on every run without it.
export CONDOR_CONFIG ?= /dev/null

.PHONY: install run test test-fast report clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch first and exactly: nothing installed later may replace it.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test,cluster]"
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG)
	@echo "Report: $(abspath results/report/index.html)"

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not slurm and not htcondor"

# Re-render results/report/ from the results on disk (after editing the template, say);
# whatever the report needs and is missing is run first.
report: install
	$(BIN)/snakemake --cores 1 --configfile $(CONFIG) --forcerun report results/report/index.html
	@echo "Report: $(abspath results/report/index.html)"

clean:
	rm -rf results .snakemake
