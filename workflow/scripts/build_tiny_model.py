"""Rule build_tiny_model: a random-weight miniature of a real model, saved in its real format."""
from samesky.models import save_tiny
from samesky.runtime import setup_job

setup_job(snakemake)
save_tiny(snakemake.wildcards.model, snakemake.output[0])
