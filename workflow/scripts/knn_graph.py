"""Rules knn_graph and truth_knn_graph: the exact kNN graph of one embedding file and, when the
embedding job wrote its blocks (output "blocks"), every block's graph, computed once and reused."""
from samesky.metrics.knn import knn_file
from samesky.metrics.layers import knn_layers_file
from samesky.runtime import setup_job

setup_job(snakemake)
params = snakemake.params
knn_file(snakemake.input.embedding, snakemake.output.graph, k=params.k, width=params.width,
         precision=params.precision, invariants=params.invariants)
if "blocks" in snakemake.output.keys():
    knn_layers_file(snakemake.input.layers, snakemake.output.blocks, k=params.k, width=params.block_width,
                    precision=params.precision, invariants=params.block_invariants)
