# Aggregation: the tidy results table, the paper's tables, trend statistics and figures; the
# layer-wise atlas (block x block scores) when embed.layers is not final; then the run's summary
# page (the Snakemake report's landing page) and its README.


localrules:
    aggregate,
    figures,
    layers_report,
    summary,
    run_readme,


rule aggregate:
    input:
        PLAN.metric_files(),
    output:
        scores=report(
            RUN.SCORES,
            caption="../report/scores.rst",
            category="Tables",
        ),
        tables=report(
            directory(RUN.PAPER_TABLES),
            patterns=["{name}.csv"],
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{name}"},
        ),
    log:
        RUN.log("aggregate.log"),
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
            directory(RUN.FIGURES),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            labels={"figure": "{name}"},
        ),
    log:
        RUN.log("figures.log"),
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
            RUN.LAYER_SCORES,
            caption="../report/layers.rst",
            category="Layer atlas",
            subcategory="tables",
            labels={"table": "every block pair"},
        ),
        best=report(
            RUN.LAYER_BEST,
            caption="../report/layers.rst",
            category="Layer atlas",
            subcategory="tables",
            labels={"table": "best block pair vs final"},
        ),
        figures=report(
            directory(RUN.LAYER_FIGURES),
            patterns=["{name}.png"],
            caption="../report/layers.rst",
            category="Layer atlas",
            subcategory=lambda wc: _atlas_group(wc)["crossmatch"],
            labels=lambda wc: {k: _atlas_group(wc)[k] for k in ("pair", "metric")},
        ),
    log:
        RUN.log("layers_report.log"),
    conda:
        "../../envs/samesky.yaml"
    threads: 4  # heatmaps drawn in parallel (locally capped at --cores)
    params:
        models=rules.aggregate.params.models,
        facts=rules.figures.params.facts,
    script:
        "../scripts/layers_report.py"


# Every result of the run (the run's README, written last, lists the folders they made)
RUN_RESULTS = [
    rules.aggregate.output,
    rules.figures.output,
    rules.probe_report.output if PLAN.probes else [],
    rules.umap.output if PLAN.umap_maps else [],
    rules.layers_report.output if PLAN.layers() != "final" else [],
]


# The report's landing page (workflow/report/workflow.rst inserts it): Tables 1 and 2 and Figure 1,
# calibrated beside raw, and what the run was.
rule summary:
    input:
        scores=rules.aggregate.output.scores,
        tables=rules.aggregate.output.tables,
        figures=rules.figures.output[0],
    output:
        RUN.SUMMARY,
    log:
        RUN.log("summary.log"),
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    params:
        facts=PLAN.summary_params(),
    script:
        "../scripts/summary.py"


rule run_readme:
    input:
        RUN_RESULTS,
        rules.summary.output,
    output:
        RUN.README,
    log:
        RUN.log("run_readme.log"),
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    params:
        run_name=RUN.run_name,
        metrics=PLAN.config["metrics"]["names"],
    script:
        "../scripts/run_readme.py"
