# Physics probes: per embedding, cross-validated regressions of per-object properties (the
# crossmatch file's /properties or /truth) and, where asked, the authors' physics tests; then the
# probe and physics tables and figures.


localrules:
    probe_report,


rule probe:
    input:
        embedding=RUN.EMBEDDING,
        properties=lambda wc: PLAN.property_files(wc.crossmatch),
    output:
        RUN.PROBE,
    log:
        RUN.log("probe/{crossmatch}/{survey}/{model}.log"),
    benchmark:
        RUN.benchmark("probe/{crossmatch}/{survey}/{model}.tsv")
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    resources:
        **_cost("probe"),
    params:
        probes=lambda wc: PLAN.probe_params(wc.crossmatch),
    script:
        "../scripts/probe.py"


# With the layer atlas (probes.physics.per_block), the same job tests every block too, on its block graphs.
PHYSICS_BLOCKS = PLAN.physics_per_block()


# The authors' physics tests (probes.physics): the neighbourhood tests read the cached kNN graph.
rule physics:
    input:
        **(
            {"layers": RUN.LAYERS, "block_graphs": RUN.KNN_LAYERS}
            if PHYSICS_BLOCKS
            else {}
        ),
        embedding=RUN.EMBEDDING,
        graph=RUN.KNN,
        properties=lambda wc: PLAN.property_files(wc.crossmatch),
    output:
        **({"blocks": RUN.PHYSICS_LAYERS} if PHYSICS_BLOCKS else {}),
        records=RUN.PHYSICS,
    log:
        RUN.log("physics/{crossmatch}/{survey}/{model}.log"),
    benchmark:
        RUN.benchmark("physics/{crossmatch}/{survey}/{model}.tsv")
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    resources:
        **_cost("physics"),
    params:
        physics=lambda wc: PLAN.physics_params(wc.crossmatch),
    script:
        "../scripts/physics.py"


# The authors' physics tests of two embeddings (probes.physics.tests: neighbourhood_wasserstein):
# one job per compared pair (intramodal, crossmodal), on both sides' cached kNN graphs.
rule physics_pair:
    input:
        emb_a=paths.side(RUN.EMBEDDING, "a"),
        emb_b=paths.side(RUN.EMBEDDING, "b"),
        knn_a=paths.side(RUN.KNN, "a"),
        knn_b=paths.side(RUN.KNN, "b"),
        properties=lambda wc: PLAN.property_files(wc.crossmatch),
    output:
        RUN.PHYSICS_PAIR,
    log:
        RUN.log(
            "physics_pair/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.log"
        ),
    benchmark:
        RUN.benchmark(
            "physics_pair/{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.tsv"
        )
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    resources:
        **_cost("physics_pair"),
    params:
        kind=_kind,
        physics=lambda wc: PLAN.physics_params(wc.crossmatch, pairs=True),
    script:
        "../scripts/physics_pair.py"


# UMAP maps (probes.umap): every mapped embedding fitted in one job, as umap-learn compiles its
# kernels in each new process; one figure per crossmatch and property, kNN purity in each panel.
rule umap:
    input:
        PLAN.umap_files,
    output:
        report(
            directory(RUN.UMAP_FIGURES),
            patterns=["{name}.png"],
            caption="../report/umap.rst",
            category="Probes",
            labels={"figure": "UMAP {name}"},
        ),
    log:
        RUN.log("umap.log"),
    benchmark:
        RUN.benchmark("umap.tsv")
    conda:
        "../../envs/samesky.yaml"
    threads: 1  # a seeded UMAP is single-threaded
    resources:
        **_cost("umap"),
    params:
        maps=PLAN.umap_maps,
        umap=lambda wc: PLAN.umap_params(),
        facts=PLAN.report_facts("figures"),
    script:
        "../scripts/umap_maps.py"


# The probe and physics tables (per embedding and per compared pair) and figures, and alignment against physics: the crossmodal
# comparisons' calibrated alignment (the aggregate rule's scores.csv) beside what each embedding knows.
rule probe_report:
    input:
        probes=PLAN.probe_paths,
        physics=PLAN.physics_paths,
        physics_blocks=PLAN.physics_layers_paths,
        physics_pairs=PLAN.physics_pair_paths,
        scores=RUN.SCORES,
    output:
        scores=report(
            RUN.PROBE_SCORES,
            caption="../report/probes.rst",
            category="Probes",
        ),
        tables=report(
            directory(RUN.PROBE_TABLES),
            patterns=["{name}.csv"],
            caption="../report/probes.rst",
            category="Probes",
            labels={"table": "{name}"},
        ),
        figures=report(
            directory(RUN.PROBE_FIGURES),
            patterns=["{name}.png"],
            caption="../report/probes.rst",
            category="Probes",
            labels={"figure": "{name}"},
        ),
        physics_scores=RUN.PHYSICS_SCORES,
        physics_table=report(
            RUN.PHYSICS_TABLE,
            caption="../report/probes.rst",
            category="Probes",
            labels={"table": "physics"},
        ),
        physics_block_scores=RUN.PHYSICS_LAYERS_SCORES,
        physics_pair_scores=RUN.PHYSICS_PAIR_SCORES,
        physics_pair_table=report(
            RUN.PHYSICS_PAIR_TABLE,
            caption="../report/probes.rst",
            category="Probes",
            labels={"table": "physics of compared pairs"},
        ),
        alignment_scores=RUN.ALIGNMENT_PHYSICS,
        alignment_trend=RUN.ALIGNMENT_TREND,
        alignment_table=report(
            RUN.ALIGNMENT_PHYSICS_TABLE,
            caption="../report/probes.rst",
            category="Probes",
            labels={"table": "alignment against physics"},
        ),
    log:
        RUN.log("probe_report.log"),
    conda:
        "../../envs/samesky.yaml"
    threads: 4  # figures drawn in parallel (locally capped at --cores)
    params:
        facts=PLAN.report_facts("probes"),
    script:
        "../scripts/probe_report.py"
