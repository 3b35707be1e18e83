"""Rule physics: the authors' physics tests of one embedding, as tidy records, and with the layer
atlas (output "blocks") of every block of it."""
import json

from samesky.runtime import setup_job

setup_job(snakemake)  # before numpy and scikit-learn load: their thread pools read the limit once

from samesky.probes import physics_block_files, physics_files  # noqa: E402
from samesky.schema import atomic_path  # noqa: E402

wc, inp = snakemake.wildcards, snakemake.input
job = {"crossmatch": wc.crossmatch, "survey": wc.survey, "model": wc.model}
outputs = {"records": physics_files(inp.embedding, inp.graph, inp.properties, **snakemake.params.physics)}
if "blocks" in snakemake.output.keys():
    outputs["blocks"] = physics_block_files(inp.layers, inp.block_graphs, inp.properties, **snakemake.params.physics)
for key, records in outputs.items():
    with atomic_path(snakemake.output[key]) as tmp:
        tmp.write_text(json.dumps({"records": [{**job, **rec} for rec in records]}, indent=1))
