# Two commands (see README): `make demo` and `make test`. Both set up .venv when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2

.PHONY: demo test dryrun-paper clean-demo

$(VENV)/.installed: pyproject.toml requirements.txt requirements-nodeps.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/snakemake --cores $(CORES)

test: $(VENV)/.installed
	$(PY) -m pytest -q -rs

dryrun-paper: $(VENV)/.installed
	$(VENV)/bin/snakemake -n --profile profiles/slurm --configfile config/config.yaml

clean-demo:
	rm -rf results/* resources/* logs .snakemake
