"""Rule compare: every requested metric for one pair of embedding files, as tidy records."""
from samesky.metrics.compare import compare_files
from samesky.runtime import setup_job
from samesky.schema import write_metric_records

setup_job(snakemake)
wc, opts = snakemake.wildcards, dict(snakemake.params.metrics)
comparison = {"kind": snakemake.params.kind, "crossmatch": wc.crossmatch, "survey_a": wc.survey_a,
              "model_a": wc.model_a, "survey_b": wc.survey_b, "model_b": wc.model_b}
records = compare_files(snakemake.input.emb_a, snakemake.input.emb_b, snakemake.input.knn_a,
                        snakemake.input.knn_b, comparison=comparison, **opts)
write_metric_records(snakemake.output[0], records)
