"""Rule simulate_snapshot: the simulated sky as a Multimodal Universe-shaped snapshot plus its truth."""
from samesky.runtime import setup_job
from samesky.simulate import simulate_snapshot

setup_job(snakemake)
sim = snakemake.params.simulate
simulate_snapshot(snakemake.output.snapshot, snakemake.output.truth, name=snakemake.wildcards.crossmatch,
                  layout=snakemake.params.layout, n=sim["n"], seed=sim["seed"])
