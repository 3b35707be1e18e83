"""Rule preprocess_flux: raw fluxes of every band, for models that tokenise fluxes (AION)."""
from samesky.preprocess import preprocess_flux
from samesky.runtime import setup_job

setup_job(snakemake)
preprocess_flux(snakemake.input.crossmatch, snakemake.wildcards.survey, snakemake.output[0])
