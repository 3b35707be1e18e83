"""Where the workflow's files live: one pattern per kind of file, relative to the working directory.

The rules write these patterns as their outputs and inputs, and ``Plan`` fills them in for the
targets it requests, so a path is spelled once. Inputs the workflow fetches, simulates or builds
are shared by every run (``resources/``, the constants below); what a run computes lies under its
own root, ``results/<run_name>/`` (``RunPaths``), so two configs in one checkout (the demo, the
paper) keep their results apart. Wildcards: crossmatch, survey, model (a side of a comparison:
survey_a/model_a and survey_b/model_b, see ``side``), seed.
"""
from __future__ import annotations

import re

from .config import ConfigError

# Data (resources/: inputs the workflow fetches, simulates or builds, shared by every run). A
# simulated crossmatch has folders of its own, so that a run simulating a name (the demo's desi_hsc)
# and a run ingesting the real one never read each other's file.
CROSSMATCH = "resources/crossmatches/{crossmatch}.h5"  # an ingested hub or snapshot crossmatch (samesky.schema)
SNAPSHOT = "resources/simulated/{crossmatch}"  # a simulated crossmatch, Multimodal Universe-shaped
TRUTH = "resources/simulated/{crossmatch}.truth.h5"  # its latent truth
SIMULATED_CROSSMATCH = "resources/simulated/{crossmatch}.h5"  # that snapshot ingested (samesky.schema)
TINY_MODEL = "resources/models/tiny/{model}"
RANDOM_MODEL = "resources/models/random/seed{seed}/{model}"  # an untrained control's weights

RESULTS = "results"  # every run's root is a folder here, named by its run_name
LOGS = "logs"  # every run's jobs' logs are a folder here, named by its run_name
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_run_name(run_name: object) -> str:
    """``run_name`` if it is one safe path component (letters, digits, ``.``, ``_``, ``-``; not
    starting with a dot or dash; at most 100 characters), else a ``ConfigError`` naming the key."""
    if not isinstance(run_name, str) or not RUN_NAME.fullmatch(run_name):
        raise ConfigError(f"run_name: {run_name!r} is not a folder name; the run's results go under "
                          f"{RESULTS}/<run_name>/, so use letters, digits, '.', '_' and '-' (not first), "
                          f"at most 100 characters, such as 'demo' or 'platonic-universe'")
    return run_name


class _InRun:
    """A pattern under the run's root (``RunPaths.root``)."""

    def __init__(self, relative: str):
        self.relative = relative

    def __get__(self, run: RunPaths | None, owner: type) -> str:
        return self.relative if run is None else f"{run.root}/{self.relative}"


class RunPaths:
    """The files of one run, under ``results/<run_name>/``; on the class, each pattern is relative
    to that root (``RunPaths.SCORES`` is ``tables/scores.csv``)."""

    # Results, in the order the jobs make them
    PERCENTILES = _InRun("preprocessed/percentiles/{survey}.json")
    PREPROCESSED = _InRun("preprocessed/{crossmatch}/{survey}.h5")
    PREPROCESSED_FLUX = _InRun("preprocessed_flux/{crossmatch}/{survey}.h5")
    EMBEDDING = _InRun("embeddings/{crossmatch}/{survey}/{model}.h5")
    LAYERS = _InRun("layers/{crossmatch}/{survey}/{model}.h5")  # per-block embeddings (embed.layers)
    KNN = _InRun("knn/{crossmatch}/{survey}/{model}.h5")
    KNN_LAYERS = _InRun("knn_layers/{crossmatch}/{survey}/{model}.h5")  # every block's graph
    METRICS = _InRun("metrics/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.json")
    LAYER_METRICS = _InRun("layers_metrics/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.csv")
    PROBE = _InRun("probes/{crossmatch}/{survey}/{model}.json")
    PHYSICS = _InRun("physics/{crossmatch}/{survey}/{model}.json")  # the physics tests' records
    PHYSICS_LAYERS = _InRun("physics_layers/{crossmatch}/{survey}/{model}.json")  # ... of every block
    # the physics tests of two embeddings (neighbourhood_wasserstein), one file per compared pair
    PHYSICS_PAIR = _InRun("physics_pairs/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.json")
    SCORES = _InRun("tables/scores.csv")
    PAPER_TABLES = _InRun("tables/paper")
    FIGURES = _InRun("figures")
    PROBE_SCORES = _InRun("tables/probes.csv")
    PROBE_TABLES = _InRun("tables/probes")
    PROBE_FIGURES = _InRun("probe_figures")
    UMAP_FIGURES = _InRun("umap_figures")  # UMAP maps of the probed embeddings (report.maps)
    PHYSICS_SCORES = _InRun("tables/physics.csv")
    PHYSICS_TABLE = _InRun("tables/physics.md")
    PHYSICS_LAYERS_SCORES = _InRun("tables/physics_layers.csv")  # the physics tests block by block
    PHYSICS_PAIR_SCORES = _InRun("tables/physics_pairs.csv")
    PHYSICS_PAIR_TABLE = _InRun("tables/physics_pairs.md")
    ALIGNMENT_PHYSICS = _InRun("tables/alignment_physics.csv")  # alignment beside physics (report.alignment)
    ALIGNMENT_PHYSICS_TABLE = _InRun("tables/alignment_physics.md")
    ALIGNMENT_TREND = _InRun("tables/alignment_physics_trend.csv")  # do models that align more know more?
    LAYER_SCORES = _InRun("tables/layers.csv")
    LAYER_BEST = _InRun("tables/layers_best.csv")
    LAYER_FIGURES = _InRun("layer_figures")
    SUMMARY = _InRun("summary.html")  # the run on one page, the report's landing page (workflow/report/workflow.rst)
    README = _InRun("README.md")  # what each folder holds, what to read first

    def __init__(self, run_name: str):
        self.run_name = check_run_name(run_name)
        self.root = f"{RESULTS}/{run_name}"
        self.report = f"{self.root}/report.html"  # made by `snakemake --report` (make report), no rule

    def log(self, relative: str) -> str:
        """A job's log under ``logs/<run_name>/``."""
        return f"{LOGS}/{self.run_name}/{relative}"

    def benchmark(self, relative: str) -> str:
        """A job's benchmark under the run's ``benchmarks/``."""
        return f"{self.root}/benchmarks/{relative}"

    @classmethod
    def patterns(cls) -> dict[str, str]:
        """Every result pattern by name, relative to the run's root."""
        return {name: getattr(cls, name) for name, value in vars(cls).items() if isinstance(value, _InRun)}


def side(pattern: str, which: str) -> str:
    """A per-embedding pattern for one side of a comparison: {survey} -> {survey_a} for ``which`` 'a'."""
    return pattern.replace("{survey}", f"{{survey_{which}}}").replace("{model}", f"{{model_{which}}}")
