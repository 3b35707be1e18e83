# Data: one crossmatch file per crossmatch, in the schema of samesky.schema.
# A crossmatch comes from the simulated sky, from the Hugging Face Hub (downloaded on the
# login node: compute nodes are often offline), or from a user's file (no rule needed).


localrules:
    ingest_hf,


rule simulate_crossmatch:
    output:
        "resources/crossmatches/{crossmatch}.h5",
    wildcard_constraints:
        crossmatch=_one_of(_sources("simulate")),
    params:
        surveys=lambda wc: PLAN.crossmatches[wc.crossmatch]["surveys"],
        simulate=lambda wc: PLAN.source(wc.crossmatch)["simulate"],
    threads: 1
    log:
        "logs/simulate_crossmatch/{crossmatch}.log",
    conda:
        "../../envs/samesky.yaml"
    script:
        "../scripts/simulate_crossmatch.py"


rule ingest_hf:
    output:
        "resources/crossmatches/{crossmatch}.h5",
    wildcard_constraints:
        crossmatch=_one_of(_sources("hf")),
    params:
        surveys=lambda wc: PLAN.crossmatches[wc.crossmatch]["surveys"],
        hf=lambda wc: PLAN.source(wc.crossmatch)["hf"],
    threads: 1
    log:
        "logs/ingest_hf/{crossmatch}.log",
    conda:
        "../../envs/samesky.yaml"
    script:
        "../scripts/ingest_hf.py"


rule truth_embedding:
    input:
        lambda wc: PLAN.crossmatch_path(wc.crossmatch),
    output:
        "results/embeddings/{crossmatch}/truth/latent-truth.h5",
    wildcard_constraints:
        crossmatch=_one_of(_sources("simulate")),
    threads: 1
    log:
        "logs/truth_embedding/{crossmatch}.log",
    conda:
        "../../envs/samesky.yaml"
    script:
        "../scripts/truth_embedding.py"
