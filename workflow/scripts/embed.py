"""Rule embed: one (crossmatch, survey, model) embedding file, resumable from shards."""
from samesky.embed import embed_file
from samesky.runtime import setup_job

setup_job(snakemake)
opts = snakemake.params.embed
throughput = snakemake.config["embed"]  # batch and shard sizes: read here, not params, so editing them reruns nothing
embed_file(snakemake.input.data, snakemake.output[0], model_key=snakemake.wildcards.model,
           source=snakemake.params.source, batch_size=throughput["batch_size"], device=opts["device"],
           precision=opts["precision"], shard_size=throughput["shard_size"],
           workers=snakemake.threads - 1,  # one thread runs the forward loop, the others prepare inputs
           layers=snakemake.params.layers, layers_path=snakemake.output.get("layers"),
           provenance={"crossmatch": snakemake.wildcards.crossmatch, "survey": snakemake.wildcards.survey})
