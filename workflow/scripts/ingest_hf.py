"""Rule ingest_hf (login node): a Multimodal Universe crossmatch (hub or local snapshot) into our schema."""
from samesky.ingest import ingest_hf
from samesky.runtime import setup_job

setup_job(snakemake)
hf = snakemake.params.hf
ingest_hf(hf["dataset"], snakemake.output[0], name=snakemake.wildcards.crossmatch,
          surveys=list(snakemake.params.surveys), layout=hf["layout"], id_column=hf["id_column"], limit=hf["limit"],
          drop_flat=hf["drop_flat"])
