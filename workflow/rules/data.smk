# Data: one crossmatch file per crossmatch, in the schema of samesky.schema.
# A crossmatch comes from the Hugging Face Hub (downloaded on the login node: compute nodes are
# often offline), from a local snapshot of it, from the simulated sky (written as such a
# snapshot, then ingested the same way), or from a user's file (no rule needed).


localrules:
    ingest_hf,
    ingest_simulated,


rule simulate_snapshot:
    output:
        snapshot=directory(paths.SNAPSHOT),
        truth=paths.TRUTH,
    log:
        "logs/simulate_snapshot/{crossmatch}.log",
    wildcard_constraints:
        crossmatch=_one_of(_sources("simulate")),
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    params:
        layout=lambda wc: PLAN.hf_source(wc.crossmatch)["layout"],
        simulate=lambda wc: PLAN.source(wc.crossmatch)["simulate"],
    script:
        "../scripts/simulate_snapshot.py"


# Hub crossmatches and local snapshots; simulated snapshots (into their own folder): the same
# ingestion code.
rule ingest_hf:
    output:
        paths.CROSSMATCH,
    log:
        "logs/ingest_hf/{crossmatch}.log",
    wildcard_constraints:
        crossmatch=_one_of(_sources("hf")),
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    params:
        surveys=lambda wc: PLAN.crossmatches[wc.crossmatch]["surveys"],
        hf=lambda wc: PLAN.hf_source(wc.crossmatch),
    script:
        "../scripts/ingest_hf.py"


use rule ingest_hf as ingest_simulated with:
    input:
        lambda wc: PLAN.snapshot_dir(wc.crossmatch),
    output:
        paths.SIMULATED_CROSSMATCH,
    log:
        "logs/ingest_simulated/{crossmatch}.log",
    wildcard_constraints:
        crossmatch=_one_of(_sources("simulate")),


rule truth_embedding:
    input:
        crossmatch=lambda wc: PLAN.crossmatch_path(wc.crossmatch),
        truth=lambda wc: PLAN.truth_path(wc.crossmatch),
    output:
        RUN.EMBEDDING.format(
            crossmatch="{crossmatch}", survey=TRUTH_SURVEY, model=TRUTH_MODEL
        ),
    log:
        RUN.log("truth_embedding/{crossmatch}.log"),
    wildcard_constraints:
        crossmatch=_one_of(_sources("simulate")),
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    script:
        "../scripts/truth_embedding.py"
