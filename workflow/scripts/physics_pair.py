"""Rule physics_pair: the physics tests of two embeddings of one compared pair, as tidy records."""
import json

from samesky.runtime import setup_job

setup_job(snakemake)  # before numpy and scikit-learn load: their thread pools read the limit once

from samesky.plan import Comparison  # noqa: E402
from samesky.probes import physics_pair_files  # noqa: E402
from samesky.schema import atomic_path  # noqa: E402

comparison = Comparison.of(snakemake.wildcards, snakemake.params.kind).as_dict()
inp = snakemake.input
records = [{**comparison, **rec} for rec in physics_pair_files(inp.emb_a, inp.knn_a, inp.emb_b, inp.knn_b,
                                                                 inp.properties, **snakemake.params.physics)]
with atomic_path(snakemake.output[0]) as tmp:
    tmp.write_text(json.dumps({"records": records}, indent=1))
