"""Rule truth_embedding: a simulated crossmatch's latent properties as an embedding file."""
from samesky.plan import TRUTH_MODEL
from samesky.runtime import setup_job
from samesky.schema import write_embeddings
from samesky.simulate import TRUTH_FEATURES, truth_features

setup_job(snakemake)
ids, features = truth_features(snakemake.input.truth, snakemake.input.crossmatch)
write_embeddings(snakemake.output[0], ids, features,
                 {"model": TRUTH_MODEL, "features": list(TRUTH_FEATURES), "scaling": "z-score",
                  "source": snakemake.input.truth})
