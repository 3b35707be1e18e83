"""Rule aggregate: the tidy scores table, the paper's tables and the trend statistics."""
from samesky.models.registry import get_model
from samesky.report import RunFacts, gather, write_tables
from samesky.runtime import setup_job

setup_job(snakemake)
params = {key: get_model(key).params for key in snakemake.params.models}
df = gather(snakemake.input, params)
df.to_csv(snakemake.output.scores, index=False)
write_tables(df, snakemake.output.tables, params, facts=RunFacts.of(snakemake.params.facts))
