# Physics probes: per embedding, cross-validated regressions of per-object properties (the
# crossmatch file's /properties or /truth), then the probe tables and figures.


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
    params:
        probes=lambda wc: PLAN.probe_params(wc.crossmatch),
    script:
        "../scripts/probe.py"


rule probe_report:
    input:
        PLAN.probe_paths,
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
    log:
        RUN.log("probe_report.log"),
    conda:
        "../../envs/samesky.yaml"
    threads: 4  # figures drawn in parallel (locally capped at --cores)
    params:
        facts=PLAN.report_facts("probes"),
    script:
        "../scripts/probe_report.py"
