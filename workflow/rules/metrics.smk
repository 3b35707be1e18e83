# Metrics: one kNN job per embedding file writing its graph (computed once, reused by every
# comparison and every null draw) and, with the layer-wise atlas, every block's graph (the same
# input, so the same job); then one job per compared pair writing tidy records.

# The final graph's settings, shared by the two graph rules (with the block graphs' in knn_graph)
GRAPH_PARAMS = {
    "k": PLAN.knn_params()["k"],
    "width": PLAN.graph_width(),
    "precision": PLAN.knn_params()["precision"],
    "invariants": PLAN.cka_invariants(),
}


rule knn_graph:
    input:
        **EMBED_LAYERS_INPUT,
        embedding=RUN.EMBEDDING,
    output:
        **KNN_LAYERS_OUTPUT,
        graph=RUN.KNN,
    log:
        RUN.log("knn_graph/{crossmatch}/{survey}/{model}.log"),
    benchmark:
        RUN.benchmark("knn_graph/{crossmatch}/{survey}/{model}.tsv")
    wildcard_constraints:
        survey=_one_of(SURVEYS),
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    resources:
        **_cost("knn_graph"),
        gpu=_metrics_gpu if EMBED_LAYERS else 0,
    params:
        **GRAPH_PARAMS,
        block_invariants=PLAN.layer_invariants(),
        block_width=PLAN.block_graph_width(),
    script:
        "../scripts/knn_graph.py"


# The simulation's latent truth has only its final embedding: its graph alone.
rule truth_knn_graph:
    input:
        embedding=RUN.EMBEDDING,
    output:
        graph=RUN.KNN,
    log:
        RUN.log("truth_knn_graph/{crossmatch}/{survey}/{model}.log"),
    benchmark:
        RUN.benchmark("truth_knn_graph/{crossmatch}/{survey}/{model}.tsv")
    wildcard_constraints:
        survey=TRUTH_SURVEY,
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    resources:
        **_cost("truth_knn_graph"),
    params:
        **GRAPH_PARAMS,
    script:
        "../scripts/knn_graph.py"


rule compare:
    input:
        emb_a=paths.side(RUN.EMBEDDING, "a"),
        emb_b=paths.side(RUN.EMBEDDING, "b"),
        knn_a=paths.side(RUN.KNN, "a"),
        knn_b=paths.side(RUN.KNN, "b"),
    output:
        RUN.METRICS,
    log:
        RUN.log("compare/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.log"),
    benchmark:
        RUN.benchmark(
            "compare/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.tsv"
        )
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    resources:
        **_cost("compare"),
    params:
        kind=_kind,
        metrics=PLAN.metric_params(),
    script:
        "../scripts/compare.py"


# Layer-wise atlas (embed.layers not final): one job per compared pair scoring every
# (block_a, block_b) cell of every metric (samesky.metrics.layers), on the block graphs the
# knn_graph job wrote beside the final one (k columns: the layer-wise stage draws no intervals).


rule compare_layers:
    input:
        unpack(_layer_inputs),
    output:
        RUN.LAYER_METRICS,
    log:
        RUN.log(
            "compare_layers/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.log"
        ),
    benchmark:
        RUN.benchmark(
            "compare_layers/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.tsv"
        )
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    resources:
        **_cost("compare_layers"),
        gpu=_metrics_gpu,
    params:
        kind=_kind,
        metrics=PLAN.layer_params(),
    script:
        "../scripts/compare_layers.py"
