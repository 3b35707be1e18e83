"""Rule compare_layers: every metric on every (block_a, block_b) cell of one pair, as a tidy CSV."""
from samesky.metrics.layers import compare_layer_files, write_layer_rows
from samesky.plan import Comparison
from samesky.runtime import setup_job

setup_job(snakemake)
inputs = snakemake.input


def side(s):
    return {key: getattr(inputs, f"{key}_{s}", None) for key in ("emb", "knn", "layers", "knn_layers")}


comparison = Comparison.of(snakemake.wildcards, snakemake.params.kind).as_dict()
rows = compare_layer_files(side("a"), side("b"), comparison=comparison, **dict(snakemake.params.metrics))
write_layer_rows(snakemake.output[0], rows)
