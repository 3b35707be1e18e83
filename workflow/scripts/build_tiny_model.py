"""Rule build_tiny_model: a random-weight miniature of a real model, saved in its real format."""
from samesky.models import save_tiny
from samesky.runtime import setup_logging

setup_logging(snakemake.log[0])
save_tiny(snakemake.wildcards.model, snakemake.output[0])
