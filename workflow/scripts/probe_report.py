"""Rule probe_report: the tidy probes table, one table per property and probe, the figures, and
the physics tests' table."""
from samesky.models.registry import get_model
from samesky.report import (
    RunFacts,
    gather_physics,
    gather_probes,
    write_physics_table,
    write_probe_figures,
    write_probe_tables,
)
from samesky.runtime import setup_job

setup_job(snakemake)
df = gather_probes(snakemake.input.probes)
physics = gather_physics(snakemake.input.physics)
facts = RunFacts.of(snakemake.params.facts)
params = {key: get_model(key).params for key in sorted(set(df["model"]) | set(physics["model"]))}
df.to_csv(snakemake.output.scores, index=False)
write_probe_tables(df, snakemake.output.tables, params, facts)
write_probe_figures(df, snakemake.output.figures, params, workers=snakemake.threads, facts=facts)
write_physics_table(physics, snakemake.output.physics_scores, snakemake.output.physics_table, params, facts)
