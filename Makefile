# Two commands (see README): `make demo` and `make test`. Both set up .venv when needed.
# `make report` builds the Snakemake report of the run that CONFIG names (the demo by default).
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2
CONFIG ?= config/demo.yaml
# The run's report, results/<run_name>/report.html (samesky.paths.RunPaths; run_name checked as the workflow does)
RUN_REPORT = $(shell $(PY) -c 'import sys, yaml; from samesky.config import fill_defaults; from samesky.paths import RunPaths; print(RunPaths(fill_defaults(yaml.safe_load(open(sys.argv[1])))["run_name"]).report)' $(CONFIG))

.PHONY: demo report test test-unit test-workflow lint bytecode dryrun-paper cost clean-demo

$(VENV)/.installed: pyproject.toml requirements.txt requirements-nodeps.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

# The terminal shows progress and problems: --quiet rules drops each job's block, samesky.console
# folds Snakemake's five progress lines a job into one. A job that fails prints its traceback there,
# naming its log (samesky.runtime); Snakemake's own "Error in rule" block is hidden too, so a plain
# `snakemake --cores 2` is the verbose run (and .snakemake/log/ keeps every line).
demo: bytecode
	$(PY) -m samesky.console $(VENV)/bin/snakemake --cores $(CORES) --configfile $(CONFIG) --quiet rules

report: bytecode
	$(VENV)/bin/snakemake --configfile $(CONFIG) --report $(RUN_REPORT)

# The package byte-compiled once: where PYTHONDONTWRITEBYTECODE is set (this CI, many containers)
# every job would otherwise recompile it on import, 0.12 s of each of the demo's 104 job start-ups.
bytecode: $(VENV)/.installed
	$(PY) -m compileall -q src

# Two workers (tests/conftest.py orders the files): the workflow runs wait on Snakemake and Slurm.
test: lint bytecode
	$(PY) -m pytest -q -rs --durations=15 -n 2 --dist loadfile --no-loadscope-reorder

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

# What the paper's run will cost before it starts (samesky.cost): jobs, CPU-/GPU-hours, memory and
# disk per rule, the total and the critical path, with and without every block (embed.layers: all)
cost: $(VENV)/.installed
	$(PY) -m samesky cost --configfile config/config.yaml

# The demo's run (results/demo, logs/demo), and resources/, the inputs runs share
clean-demo:
	rm -rf results/demo logs/demo resources/* .snakemake
