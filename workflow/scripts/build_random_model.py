"""Rule build_random_model: an untrained control, its model's architecture with seeded random weights."""
import zlib

from samesky.models import save_tiny
from samesky.runtime import setup_job

setup_job(snakemake)
wc = snakemake.wildcards
save_tiny(wc.model, snakemake.output[0], seed=zlib.crc32(f"{wc.model}/seed{wc.seed}".encode()),
          full_size=snakemake.params.full_size)
