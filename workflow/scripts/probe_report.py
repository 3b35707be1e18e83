"""Rule probe_report: the tidy probes table, one table per property and probe, the figures, the
physics tests' tables (per embedding, per block with figures against depth, per compared pair), and alignment against physics (table,
trend tests, one figure per crossmatch)."""
import pandas as pd

from samesky.models.registry import get_model
from samesky.report import (
    RunFacts,
    alignment_physics,
    alignment_trend,
    gather_physics,
    gather_probes,
    write_alignment_figures,
    write_alignment_physics,
    write_physics_depth_figures,
    write_physics_table,
    write_probe_figures,
    write_probe_tables,
)
from samesky.runtime import setup_job

setup_job(snakemake)
df = gather_probes(snakemake.input.probes)
physics = gather_physics(snakemake.input.physics)
facts = RunFacts.of(snakemake.params.facts)
scores = pd.read_csv(snakemake.input.scores)
crossmodal = scores[scores["kind"] == "crossmodal"]
models = set(df["model"]) | set(physics["model"]) | set(crossmodal["model_a"]) | set(crossmodal["model_b"])
params = {key: get_model(key).params for key in sorted(models)}
df.to_csv(snakemake.output.scores, index=False)
write_probe_tables(df, snakemake.output.tables, params, facts)
write_probe_figures(df, snakemake.output.figures, params, workers=snakemake.threads, facts=facts)
out = snakemake.output
write_physics_table(physics, out.physics_scores, out.physics_table, params, facts)
write_physics_table(gather_physics(snakemake.input.physics_pairs, pairs=True), out.physics_pair_scores,
                    out.physics_pair_table, params, facts, pairs=True)
blocks = gather_physics(snakemake.input.physics_blocks, blocks=True)
blocks.to_csv(out.physics_block_scores, index=False)
write_physics_depth_figures(blocks, out.figures, params, workers=snakemake.threads, facts=facts)
alignment = alignment_physics(scores, df, physics, params)
trend = alignment_trend(alignment)
write_alignment_physics(alignment, trend, out.alignment_scores, out.alignment_trend, out.alignment_table, facts)
write_alignment_figures(alignment, trend, out.figures, workers=snakemake.threads, facts=facts)
