"""Rule probe: what one embedding knows about its objects' physical properties, as tidy records."""
import json

from samesky.runtime import setup_job

setup_job(snakemake)  # before numpy and scikit-learn load: their thread pools read the limit once

from samesky.probes import probe_files  # noqa: E402
from samesky.schema import atomic_path  # noqa: E402

wc = snakemake.wildcards
records = [{"crossmatch": wc.crossmatch, "survey": wc.survey, "model": wc.model, **rec}
           for rec in probe_files(snakemake.input.embedding, snakemake.input.properties, **snakemake.params.probes)]
with atomic_path(snakemake.output[0]) as tmp:
    tmp.write_text(json.dumps({"records": records}, indent=1))
