# One embedding job per (crossmatch, survey, model): the GPU stage. A GPU job gets the cores
# that keep its GPU busy (resources.embed_cpus: one for the forward loop, the rest input workers);
# a CPU job runs on one thread unless the profile sets more.
# With embed.layers other than final the same job (same forward pass) also writes the selected
# blocks' embeddings to the run's layers/ (output "layers", declared only then).


rule embed:
    input:
        data=_embed_input,
        weights=_weights,
    output:
        RUN.EMBEDDING,
        **EMBED_LAYERS_OUTPUT,
    log:
        RUN.log("embed/{crossmatch}/{survey}/{model}.log"),
    benchmark:
        RUN.benchmark("embed/{crossmatch}/{survey}/{model}.tsv")
    wildcard_constraints:
        survey=_one_of(SURVEYS),
    conda:
        "../../envs/samesky.yaml"
    threads: lambda wc: 1 if PLAN.embed_params()["device"] == "cpu" else embed_cpus(wc.model)
    resources:
        gpu=lambda wc: 0 if PLAN.embed_params()["device"] == "cpu" else 1,
        mem_mb=lambda wc, attempt: _embed_resources(wc, attempt)["mem_mb"],
        runtime=lambda wc, attempt: _embed_resources(wc, attempt)["runtime"],
        gpu_mem_mb=lambda wc: _embed_resources(wc, 1)["gpu_mem_mb"],
        cpus_per_task=lambda wc, threads: threads,
    params:
        source=lambda wc: PLAN.weights_source(wc.model),
        embed=PLAN.embed_params(),
        layers=PLAN.layers(),
    script:
        "../scripts/embed.py"


# Embeddings made elsewhere (config models.precomputed) stand in for a model's on one survey of one
# crossmatch: this rule writes them where the embed job would. For any other embedding its input
# is a path nothing makes, so Snakemake falls back to rule embed.
ruleorder: precomputed_embedding > embed


rule precomputed_embedding:
    input:
        source=_precomputed_source,
        crossmatch=lambda wc: PLAN.crossmatch_path(wc.crossmatch),
    output:
        RUN.EMBEDDING,
    log:
        RUN.log("precomputed_embedding/{crossmatch}/{survey}/{model}.log"),
    localrule: True
    conda:
        "../../envs/samesky.yaml"
    params:
        entry=lambda wc: PLAN.precomputed().get((wc.crossmatch, wc.survey, wc.model)),
    script:
        "../scripts/precomputed_embedding.py"
