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
        rules.aggregate.output,
        rules.figures.output,
        rules.probe_report.output if PLAN.probes else [],
        rules.layers_report.output if PLAN.layers() != "final" else [],
