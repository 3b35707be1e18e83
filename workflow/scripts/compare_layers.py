"""Rule compare_layers: every metric on every (block_a, block_b) cell of one pair, as a tidy CSV."""
from samesky.metrics.layers import compare_layer_files, write_layer_rows
from samesky.runtime import setup_job

setup_job(snakemake)
wc, inputs = snakemake.wildcards, snakemake.input


def side(s):
    return {key: getattr(inputs, f"{key}_{s}", None) for key in ("emb", "knn", "layers", "knn_layers")}


comparison = {"kind": snakemake.params.kind, "crossmatch": wc.crossmatch, "survey_a": wc.survey_a,
              "model_a": wc.model_a, "survey_b": wc.survey_b, "model_b": wc.model_b}
rows = compare_layer_files(side("a"), side("b"), comparison=comparison, **dict(snakemake.params.metrics))
write_layer_rows(snakemake.output[0], rows)
