"""Rule knn_layers: every block's kNN graph (and Gram invariants) of one layers file, built once."""
from samesky.metrics.layers import knn_layers_file
from samesky.runtime import setup_job

setup_job(snakemake)
knn_layers_file(snakemake.input[0], snakemake.output[0], k=snakemake.params.k, precision=snakemake.params.precision,
                invariants=snakemake.params.invariants)
