# Tiny random-weight models (demo and tests): built from the registry's configs and saved in
# the real on-disk format, so the embedding jobs load them exactly as they load hub checkpoints.


rule build_tiny_model:
    output:
        directory("resources/models/tiny/{model}"),
    threads: 1
    log:
        "logs/build_tiny_model/{model}.log",
    conda:
        "../../envs/samesky.yaml"
    script:
        "../scripts/build_tiny_model.py"


# Untrained controls (models.untrained): the real architecture with seeded random weights,
# saved like a checkpoint; the seed is part of the path, so a new seed never reuses old shards.
rule build_random_model:
    output:
        directory("resources/models/random/seed{seed}/{model}"),
    wildcard_constraints:
        seed="[0-9]+",
    params:
        full_size=PLAN.untrained_full_size(),
    log:
        "logs/build_random_model/seed{seed}/{model}.log",
    conda:
        "../../envs/samesky.yaml"
    script:
        "../scripts/build_random_model.py"
