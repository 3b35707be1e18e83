"""Rule umap: UMAP maps of the probed embeddings, coloured by each continuous property."""
from samesky.runtime import setup_job

setup_job(snakemake)  # before numpy and numba load: their thread pools read the limit once

from samesky.report import RunFacts  # noqa: E402
from samesky.report.maps import write_umap_figures  # noqa: E402

write_umap_figures(snakemake.params.maps, snakemake.output[0], facts=RunFacts.of(snakemake.params.facts),
                   **snakemake.params.umap)
