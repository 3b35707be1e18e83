# Metrics: a kNN graph per embedding file (computed once, reused by every comparison and every
# null draw), then one job per compared pair writing tidy records.


rule knn_graph:
    input:
        paths.EMBEDDING,
    output:
        paths.KNN,
    log:
        "logs/knn_graph/{crossmatch}/{survey}/{model}.log",
    benchmark:
        "results/benchmarks/knn_graph/{crossmatch}/{survey}/{model}.tsv"
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    params:
        k=PLAN.knn_params()["k"],
        width=PLAN.knn_k(),
        precision=PLAN.knn_params()["precision"],
        invariants=PLAN.cka_invariants(),
    script:
        "../scripts/knn_graph.py"


rule compare:
    input:
        emb_a=paths.side(paths.EMBEDDING, "a"),
        emb_b=paths.side(paths.EMBEDDING, "b"),
        knn_a=paths.side(paths.KNN, "a"),
        knn_b=paths.side(paths.KNN, "b"),
    output:
        paths.METRICS,
    log:
        "logs/compare/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.log",
    benchmark:
        "results/benchmarks/compare/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.tsv"
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    params:
        kind=_kind,
        metrics=PLAN.metric_params(),
    script:
        "../scripts/compare.py"


# Layer-wise atlas (embed.layers not final): each block's kNN graph once per layers file (k columns:
# the layer-wise stage draws no intervals, and 8k columns cost 2.5x the build), then one job per
# compared pair scoring every (block_a, block_b) cell of every metric (samesky.metrics.layers).


rule knn_layers:
    input:
        paths.LAYERS,
    output:
        paths.KNN_LAYERS,
    log:
        "logs/knn_layers/{crossmatch}/{survey}/{model}.log",
    benchmark:
        "results/benchmarks/knn_layers/{crossmatch}/{survey}/{model}.tsv"
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    resources:
        gpu=_metrics_gpu,
    params:
        k=PLAN.knn_params()["k"],
        precision=PLAN.knn_params()["precision"],
        invariants=PLAN.layer_invariants(),
    script:
        "../scripts/knn_layers.py"


rule compare_layers:
    input:
        unpack(_layer_inputs),
    output:
        paths.LAYER_METRICS,
    log:
        "logs/compare_layers/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.log",
    benchmark:
        "results/benchmarks/compare_layers/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.tsv"
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    resources:
        gpu=_metrics_gpu,
    params:
        kind=_kind,
        metrics=PLAN.layer_params(),
    script:
        "../scripts/compare_layers.py"
