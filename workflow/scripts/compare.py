"""Rule compare: every requested metric for one pair of embedding files, as tidy records."""
from samesky.metrics.compare import compare_files
from samesky.plan import Comparison
from samesky.runtime import setup_job
from samesky.schema import write_metric_records

setup_job(snakemake)
opts = dict(snakemake.params.metrics)
comparison = Comparison.of(snakemake.wildcards, snakemake.params.kind).as_dict()
records = compare_files(snakemake.input.emb_a, snakemake.input.emb_b, snakemake.input.knn_a,
                        snakemake.input.knn_b, comparison=comparison, **opts)
write_metric_records(snakemake.output[0], records)
