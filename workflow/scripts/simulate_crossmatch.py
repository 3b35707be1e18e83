"""Rule simulate_crossmatch: render the simulated crossmatched sky (the embedded default)."""
from samesky.runtime import setup_job
from samesky.simulate import simulate_crossmatch

setup_job(snakemake)
sim = snakemake.params.simulate
simulate_crossmatch(snakemake.output[0], name=snakemake.wildcards.crossmatch,
                    surveys=list(snakemake.params.surveys), n=sim["n"], seed=sim.get("seed", 0))
