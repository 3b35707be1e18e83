"""Rule knn_graph: the exact kNN graph of one embedding file, computed once and reused."""
from samesky.metrics.knn import knn_file
from samesky.runtime import setup_job

setup_job(snakemake)
knn_file(snakemake.input[0], snakemake.output[0], k=snakemake.params.k, width=snakemake.params.width,
         precision=snakemake.params.precision, invariants=snakemake.params.invariants)
