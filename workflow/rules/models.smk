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
