# Aggregation: the tidy results table, the paper's tables, trend statistics and figures; the
# layer-wise atlas (block x block scores) when embed.layers is not final.


localrules:
    aggregate,
    figures,
    layers_report,


rule aggregate:
    input:
        [c.path for c in PLAN.comparisons],
    output:
        scores=report(
            paths.SCORES,
            caption="../report/scores.rst",
            category="Tables",
        ),
        tables=report(
            directory(paths.PAPER_TABLES),
            patterns=["{name}.csv"],
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{name}"},
        ),
    log:
        "logs/aggregate.log",
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    params:
        models=PLAN.image_models
        + ([PLAN.spectrum_model] if PLAN.spectrum_model else []),
        facts=PLAN.report_facts("tables"),
    script:
        "../scripts/aggregate.py"


rule figures:
    input:
        rules.aggregate.output.scores,
    output:
        report(
            directory(paths.FIGURES),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            labels={"figure": "{name}"},
        ),
    log:
        "logs/figures.log",
    conda:
        "../../envs/samesky.yaml"
    threads: 4  # figures drawn in parallel (locally capped at --cores)
    params:
        models=rules.aggregate.params.models,
        facts=PLAN.report_facts("figures"),
    script:
        "../scripts/figures.py"


rule layers_report:
    input:
        PLAN.layer_metric_files(),
    output:
        scores=report(
            paths.LAYER_SCORES,
            caption="../report/layers.rst",
            category="Layers",
        ),
        best=report(
            paths.LAYER_BEST,
            caption="../report/layers.rst",
            category="Layers",
        ),
        figures=report(
            directory(paths.LAYER_FIGURES),
            patterns=["{name}.png"],
            caption="../report/layers.rst",
            category="Layers",
            labels={"figure": "{name}"},
        ),
    log:
        "logs/layers_report.log",
    conda:
        "../../envs/samesky.yaml"
    threads: 4  # heatmaps drawn in parallel (locally capped at --cores)
    params:
        models=rules.aggregate.params.models,
        facts=rules.figures.params.facts,
    script:
        "../scripts/layers_report.py"
