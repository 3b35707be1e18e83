"""Rule compare_layers: every metric on every (block_a, block_b) cell of one pair, as a tidy CSV."""
from samesky.metrics.layers import compare_layer_files, write_layer_rows
from samesky.plan import Comparison
from samesky.runtime import setup_job

setup_job(snakemake)
inputs = snakemake.input


def side(s):
    return {key: getattr(inputs, f"{key}_{s}", None) for key in ("emb", "knn", "layers", "knn_layers")}


comparison = Comparison.of(snakemake.wildcards, snakemake.params.kind).as_dict()
# the blocks this job's memory holds (samesky.cost.block_cache_mb; the others are read again)
cache_mb = getattr(snakemake.resources, "block_cache_mb", None)
rows = compare_layer_files(side("a"), side("b"), comparison=comparison, **dict(snakemake.params.metrics),
                           block_cache_bytes=None if cache_mb is None else int(cache_mb) << 20)
write_layer_rows(snakemake.output[0], rows)
