"""Rule precomputed_embedding: embeddings made elsewhere (config models.precomputed) as an embedding file."""
from samesky.runtime import setup_job
from samesky.sources import import_embeddings

setup_job(snakemake)
import_embeddings(snakemake.output[0], snakemake.params.entry, snakemake.input.crossmatch, snakemake.wildcards.crossmatch)
