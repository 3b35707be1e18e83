# samesky: do foundation models see the same sky?
# Run the embedded demo:   snakemake --cores 2            (config/demo.yaml)
# Run the paper:           snakemake --profile profiles/slurm --configfile config/config.yaml
from snakemake.utils import min_version

min_version("9.0")

if not config:

    configfile: "config/demo.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        RUN_RESULTS,
        rules.summary.output,
        rules.run_readme.output,


# Where to look, once a run that wrote its README ends (make demo, the paper)
onsuccess:
    from samesky.report.readme import next_steps

    if Path(RUN.README).exists():
        print(next_steps(RUN, [str(f) for f in workflow.configfiles]))
