"""Rule embed: one (crossmatch, survey, model) embedding file, resumable from shards."""
from samesky.embed import embed_file
from samesky.plan import Plan
from samesky.runtime import setup_job

setup_job(snakemake)
opts = dict(snakemake.params.embed, **Plan(snakemake.config).embed_throughput())
embed_file(snakemake.input.data, snakemake.output[0], model_key=snakemake.wildcards.model,
           source=snakemake.params.source, batch_size=opts["batch_size"], device=opts["device"],
           precision=opts["precision"], shard_size=opts["shard_size"],
           workers=snakemake.threads - 1,  # one thread runs the forward loop, the others prepare inputs
           layers=snakemake.params.layers, layers_path=snakemake.output.get("layers"),
           provenance={"crossmatch": snakemake.wildcards.crossmatch, "survey": snakemake.wildcards.survey})
