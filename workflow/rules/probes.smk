# Physics probes: per embedding, cross-validated regressions of per-object properties (the
# crossmatch file's /properties or /truth), then the probe tables and figures.


localrules:
    probe_report,


rule probe:
    input:
        embedding="results/embeddings/{crossmatch}/{survey}/{model}.h5",
        properties=lambda wc: PLAN.property_files(wc.crossmatch),
    output:
        "results/probes/{crossmatch}/{survey}/{model}.json",
    log:
        "logs/probe/{crossmatch}/{survey}/{model}.log",
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    params:
        probes=lambda wc: PLAN.probe_params(wc.crossmatch),
    script:
        "../scripts/probe.py"


rule probe_report:
    input:
        [
            f"results/probes/{xm}/{survey}/{model}.json"
            for xm, survey, model in PLAN.probes
        ],
    output:
        scores=report(
            "results/tables/probes.csv",
            caption="../report/probes.rst",
            category="Probes",
        ),
        tables=report(
            directory("results/tables/probes"),
            patterns=["{name}.csv"],
            caption="../report/probes.rst",
            category="Probes",
            labels={"table": "{name}"},
        ),
        figures=report(
            directory("results/probe_figures"),
            patterns=["{name}.png"],
            caption="../report/probes.rst",
            category="Probes",
            labels={"figure": "{name}"},
        ),
    log:
        "logs/probe_report.log",
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    script:
        "../scripts/probe_report.py"
