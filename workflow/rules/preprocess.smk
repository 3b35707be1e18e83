# Preprocessing: percentiles per survey, then model-ready inputs per (crossmatch, survey).


rule percentiles:
    input:
        lambda wc: PLAN.crossmatch_path(PLAN.percentile_source(wc.survey)),
    output:
        paths.PERCENTILES,
    log:
        "logs/percentiles/{survey}.log",
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    params:
        pre=lambda wc: PLAN.preprocess_params(wc.survey),
    script:
        "../scripts/percentiles.py"


rule preprocess:
    input:
        unpack(_preprocess_inputs),
    output:
        paths.PREPROCESSED,
    log:
        "logs/preprocess/{crossmatch}/{survey}.log",
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    params:
        pre=lambda wc: PLAN.preprocess_params(wc.survey),
    script:
        "../scripts/preprocess.py"


rule preprocess_flux:
    input:
        crossmatch=lambda wc: PLAN.crossmatch_path(wc.crossmatch),
    output:
        paths.PREPROCESSED_FLUX,
    log:
        "logs/preprocess_flux/{crossmatch}/{survey}.log",
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    script:
        "../scripts/preprocess_flux.py"
