"""Rule percentiles: channel-wise percentiles of one survey, reused by every crossmatch."""
from samesky.preprocess import compute_percentiles
from samesky.runtime import setup_job
from samesky.schema import write_percentiles

setup_job(snakemake)
pre = snakemake.params.pre
result = compute_percentiles(snakemake.input[0], snakemake.wildcards.survey, bands=pre["rgb"],
                             percentiles=tuple(pre["percentiles"]), max_images=pre["max_images"], seed=pre["seed"],
                             sample=pre["sample"], crop=pre["crop"])
write_percentiles(snakemake.output[0], result)
