"""Where the workflow's files live: one pattern per kind of file, relative to the working directory.

The rules write these patterns as their outputs and inputs, and ``Plan`` fills them in for the
targets it requests, so a path is spelled once. Wildcards: crossmatch, survey, model (a side of
a comparison: survey_a/model_a and survey_b/model_b, see ``side``), seed.
"""
from __future__ import annotations

# Data (resources/: inputs the workflow fetches, simulates or builds)
SNAPSHOT = "resources/snapshots/{crossmatch}"  # a simulated crossmatch, Multimodal Universe-shaped
TRUTH = "resources/snapshots/{crossmatch}.truth.h5"  # its latent truth
CROSSMATCH = "resources/crossmatches/{crossmatch}.h5"  # an ingested crossmatch (samesky.schema)
TINY_MODEL = "resources/models/tiny/{model}"
RANDOM_MODEL = "resources/models/random/seed{seed}/{model}"  # an untrained control's weights

# Results, in the order the jobs make them
PERCENTILES = "results/preprocessed/percentiles/{survey}.json"
PREPROCESSED = "results/preprocessed/{crossmatch}/{survey}.h5"
PREPROCESSED_FLUX = "results/preprocessed_flux/{crossmatch}/{survey}.h5"
EMBEDDING = "results/embeddings/{crossmatch}/{survey}/{model}.h5"
LAYERS = "results/layers/{crossmatch}/{survey}/{model}.h5"  # per-block embeddings (embed.layers)
KNN = "results/knn/{crossmatch}/{survey}/{model}.h5"
KNN_LAYERS = "results/knn_layers/{crossmatch}/{survey}/{model}.h5"  # every block's graph
METRICS = "results/metrics/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.json"
LAYER_METRICS = "results/layers_metrics/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.csv"
PROBE = "results/probes/{crossmatch}/{survey}/{model}.json"
SCORES = "results/tables/scores.csv"
PAPER_TABLES = "results/tables/paper"
FIGURES = "results/figures"
PROBE_SCORES = "results/tables/probes.csv"
PROBE_TABLES = "results/tables/probes"
PROBE_FIGURES = "results/probe_figures"
LAYER_SCORES = "results/tables/layers.csv"
LAYER_BEST = "results/tables/layers_best.csv"
LAYER_FIGURES = "results/layer_figures"


def side(pattern: str, which: str) -> str:
    """A per-embedding pattern for one side of a comparison: {survey} -> {survey_a} for ``which`` 'a'."""
    return pattern.replace("{survey}", f"{{survey_{which}}}").replace("{model}", f"{{model_{which}}}")
