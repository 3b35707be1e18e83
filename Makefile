# Two commands (see README): `make demo` and `make test`. Both set up .venv when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2

.PHONY: demo test test-unit test-workflow lint bytecode dryrun-paper clean-demo

$(VENV)/.installed: pyproject.toml requirements.txt requirements-nodeps.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

demo: bytecode
	$(VENV)/bin/snakemake --cores $(CORES)

# The package byte-compiled once: where PYTHONDONTWRITEBYTECODE is set (this CI, many containers)
# every job would otherwise recompile it on import, 0.12 s of each of the demo's 97 job start-ups.
bytecode: $(VENV)/.installed
	$(PY) -m compileall -q src

test: lint bytecode
	$(PY) -m pytest -q -rs

# Quick local loops: the unit tests (seconds to minutes), or only the workflow runs (the demo DAG, Slurm).
test-unit: bytecode
	$(PY) -m pytest -q -rs -m "not slow"

test-workflow: bytecode
	$(PY) -m pytest -q -rs -m slow

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/snakemake --lint

dryrun-paper: $(VENV)/.installed
	$(VENV)/bin/snakemake -n --profile profiles/slurm --configfile config/config.yaml

clean-demo:
	rm -rf results/* resources/* logs .snakemake
