# One embedding job per (crossmatch, survey, model): the GPU stage.


rule embed:
    input:
        data=_embed_input,
        weights=_weights,
    output:
        "results/embeddings/{crossmatch}/{survey}/{model}.h5",
    wildcard_constraints:
        survey=_one_of(SURVEYS),
    params:
        source=lambda wc: PLAN.weights_source(wc.model),
        embed=PLAN.embed_params(),
    resources:
        gpu=lambda wc: 0 if PLAN.embed_params()["device"] == "cpu" else 1,
        mem_mb=lambda wc, attempt: resources_for(wc.model, attempt)["mem_mb"],
        runtime=lambda wc, attempt: resources_for(wc.model, attempt)["runtime"],
    benchmark:
        "results/benchmarks/embed/{crossmatch}/{survey}/{model}.tsv"
    threads: 1
    log:
        "logs/embed/{crossmatch}/{survey}/{model}.log",
    conda:
        "../../envs/samesky.yaml"
    script:
        "../scripts/embed.py"
