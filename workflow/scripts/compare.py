"""Rule compare: every requested metric for one pair of embedding files, as tidy records."""
import json

from samesky.metrics.compare import compare_files
from samesky.plan import Comparison
from samesky.runtime import setup_job
from samesky.schema import atomic_path

setup_job(snakemake)
opts = dict(snakemake.params.metrics)
comparison = Comparison.of(snakemake.wildcards, snakemake.params.kind).as_dict()
records = compare_files(snakemake.input.emb_a, snakemake.input.emb_b, snakemake.input.knn_a,
                        snakemake.input.knn_b, comparison=comparison, **opts)
with atomic_path(snakemake.output[0]) as tmp:
    tmp.write_text(json.dumps({"records": records}, indent=1))
