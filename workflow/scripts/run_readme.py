"""Rule run_readme: the run's README (what each folder holds, what to read first)."""
from samesky.paths import RunPaths
from samesky.report.readme import write_run_readme
from samesky.runtime import setup_job

setup_job(snakemake)
write_run_readme(snakemake.output[0], RunPaths(snakemake.params.run_name), snakemake.params.metrics)
