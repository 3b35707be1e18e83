"""Rule summary: the run on one page (Tables 1 and 2, Figure 1, config, data, software)."""
from samesky.report.summary import write_summary
from samesky.runtime import setup_job

setup_job(snakemake)
write_summary(snakemake.output[0], snakemake.params.facts, snakemake.input.scores, snakemake.input.tables,
              snakemake.input.figures)
