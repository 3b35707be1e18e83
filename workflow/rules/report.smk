# Aggregation: the tidy results table, the paper's tables, trend statistics and figures.


localrules:
    aggregate,
    figures,


rule aggregate:
    input:
        [c.path for c in PLAN.comparisons],
    output:
        scores="results/tables/scores.csv",
        tables=directory("results/tables/paper"),
    params:
        models=PLAN.image_models + ([PLAN.spectrum_model] if PLAN.spectrum_model else []),
    log:
        "logs/aggregate.log",
    conda:
        "../../envs/samesky.yaml"
    script:
        "../scripts/aggregate.py"


rule figures:
    input:
        rules.aggregate.output.scores,
    output:
        directory("results/figures"),
    params:
        models=rules.aggregate.params.models,
    log:
        "logs/figures.log",
    conda:
        "../../envs/samesky.yaml"
    script:
        "../scripts/figures.py"
