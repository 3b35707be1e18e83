"""Rule figures: figure 1 (size vs crossmodal alignment) and one figure per extra metric."""
import pandas as pd

from samesky.models.registry import get_model
from samesky.report import RunFacts, write_figures
from samesky.runtime import setup_job

setup_job(snakemake)
params = {key: get_model(key).params for key in snakemake.params.models}
write_figures(pd.read_csv(snakemake.input[0]), snakemake.output[0], params, workers=snakemake.threads,
              facts=RunFacts.of(snakemake.params.facts))
