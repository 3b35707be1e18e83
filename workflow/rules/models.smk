# Tiny random-weight models (demo and tests): built from the registry's configs and saved in
# the real on-disk format, so the embedding jobs load them exactly as they load hub checkpoints.


rule build_tiny_model:
    output:
        directory(paths.TINY_MODEL),
    log:
        "logs/build_tiny_model/{model}.log",
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    script:
        "../scripts/build_tiny_model.py"


# Untrained controls (models.untrained): the real architecture with seeded random weights,
# saved like a checkpoint; the seed is part of the path, so a new seed never reuses old shards.
rule build_random_model:
    output:
        directory(paths.RANDOM_MODEL),
    log:
        "logs/build_random_model/seed{seed}/{model}.log",
    wildcard_constraints:
        seed="[0-9]+",
    conda:
        "../../envs/samesky.yaml"
    params:
        full_size=PLAN.untrained_full_size(),
    script:
        "../scripts/build_random_model.py"
