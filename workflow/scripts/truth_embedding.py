"""Rule truth_embedding: a simulated crossmatch's latent properties as an embedding file."""
from samesky.plan import TRUTH_MODEL
from samesky.runtime import setup_logging
from samesky.schema import write_embeddings
from samesky.simulate import TRUTH_FEATURES, truth_features

setup_logging(snakemake.log[0])
ids, features = truth_features(snakemake.input[0])
write_embeddings(snakemake.output[0], ids, features,
                 {"model": TRUTH_MODEL, "features": list(TRUTH_FEATURES), "scaling": "z-score",
                  "source": snakemake.input[0]})
