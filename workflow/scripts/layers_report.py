"""Rule layers_report: the tidy layers table, the best block pair vs the final layer, the heatmaps and
the best-vs-size figures."""
from samesky.models.registry import get_model
from samesky.report import RunFacts, best_layers, gather_layers, write_layer_figures
from samesky.runtime import setup_job

setup_job(snakemake)
params = {key: get_model(key).params for key in snakemake.params.models}
df = gather_layers(snakemake.input)
best = best_layers(df)
df.to_csv(snakemake.output.scores, index=False)
best.to_csv(snakemake.output.best, index=False)
write_layer_figures(df, best, snakemake.output.figures, params, workers=snakemake.threads,
                    facts=RunFacts.of(snakemake.params.facts))
