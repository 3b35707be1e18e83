# Preprocessing: percentiles per survey, then model-ready inputs per (crossmatch, survey).


rule percentiles:
    input:
        lambda wc: PLAN.crossmatch_path(PLAN.percentile_source(wc.survey)),
    output:
        RUN.PERCENTILES,
    log:
        RUN.log("percentiles/{survey}.log"),
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
        RUN.PREPROCESSED,
    log:
        RUN.log("preprocess/{crossmatch}/{survey}.log"),
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
        RUN.PREPROCESSED_FLUX,
    log:
        RUN.log("preprocess_flux/{crossmatch}/{survey}.log"),
    conda:
        "../../envs/samesky.yaml"
    threads: 1
    script:
        "../scripts/preprocess_flux.py"
