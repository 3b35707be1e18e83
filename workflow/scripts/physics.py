"""Rule physics: the authors' physics tests of one embedding, as tidy records."""
import json

from samesky.runtime import setup_job

setup_job(snakemake)  # before numpy and scikit-learn load: their thread pools read the limit once

from samesky.probes import physics_files  # noqa: E402
from samesky.schema import atomic_path  # noqa: E402

wc = snakemake.wildcards
records = [{"crossmatch": wc.crossmatch, "survey": wc.survey, "model": wc.model, **rec}
           for rec in physics_files(snakemake.input.embedding, snakemake.input.graph, snakemake.input.properties,
                                    **snakemake.params.physics)]
with atomic_path(snakemake.output[0]) as tmp:
    tmp.write_text(json.dumps({"records": records}, indent=1))
