# Shared set-up: validated config, the job plan, wildcard constraints.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from samesky import paths
from samesky.config import check_profile_resources, fill_defaults
from samesky.cost import PlanCost
from samesky.plan import TRUTH_MODEL, TRUTH_SURVEY, Plan, comparison_kind
from samesky.models.registry import get_model
from samesky.models.resources import embed_cpus, resources_for
from samesky.surveys import IMAGE, SURVEYS, get_survey

# Checked once per parse, before any job, naming the offending key: the schema (which fills
# every default), then the plan's own checks as it is built, then the profile's resources
# (given as default-resources and set-resources; Snakemake keeps each value as written, .raw).
PLAN = Plan(fill_defaults(config))
check_profile_resources(
    {
        name: res.raw
        for name, res in (workflow.resource_settings.default_resources or {}).items()
    },
    {
        rule_name: {name: res.raw for name, res in values.items()}
        for rule_name, values in workflow.resource_settings.overwrite_resources.items()
    },
)
# This run's files (results/<run_name>/, logs/<run_name>/); resources/ (paths.*) are shared by runs.
RUN = PLAN.run
# The metric stage's memory and minutes, predicted from each job's shapes (samesky.cost); a job
# that fits no node (config cluster.node_memory_gb) is an error here, naming it.
COST = PlanCost(PLAN)
COST.check_fits_nodes()


def _cost(rule):
    """mem_mb and runtime of one job of ``rule`` from its shapes and threads, grown on retries
    (compare_layers: also block_cache_mb, the layer blocks it may hold in that memory).
    """

    def resource(name):
        return lambda wc, attempt, threads: COST.resources(rule, wc, attempt, threads)[
            name
        ]

    names = ["mem_mb", "runtime"] + (
        ["block_cache_mb"] if rule == "compare_layers" else []
    )
    return {name: resource(name) for name in names}


def _one_of(names):
    """Regex matching exactly these names (or nothing, when there are none)."""
    return "|".join(names) if names else "(?!x)x"


# Survey names (cosmos_web) and model keys, family[@random]-size (qwen2-1.5b), as docs/EXTENDING.md
# spells them: lower case, digits and underscores (and dots in a size); no slash, no other dash.
SURVEY_NAME = "[a-z0-9_]+"
MODEL_KEY = "[a-z0-9_]+(@random)?-[a-z0-9_.]+"


wildcard_constraints:
    crossmatch=_one_of(PLAN.crossmatches),
    survey=SURVEY_NAME,
    survey_a=SURVEY_NAME,
    survey_b=SURVEY_NAME,
    model=MODEL_KEY,
    model_a=MODEL_KEY,
    model_b=MODEL_KEY,


# ---- input and parameter functions used by the rules ----------------------------------


def _sources(kind):
    return [name for name in PLAN.crossmatches if kind in PLAN.source(name)]


def _preprocess_inputs(wc):
    inputs = {"crossmatch": PLAN.crossmatch_path(wc.crossmatch)}
    # images are scaled by their survey's percentiles
    if get_survey(wc.survey).modality == IMAGE:
        inputs["percentiles"] = RUN.PERCENTILES.format(survey=wc.survey)
    return inputs


def _embed_input(wc):
    """RGB images or spectra (the run's preprocessed/), or raw fluxes for models that tokenise them."""
    flux = get_model(wc.model).input_kind == "flux"
    pattern = RUN.PREPROCESSED_FLUX if flux else RUN.PREPROCESSED
    return pattern.format(crossmatch=wc.crossmatch, survey=wc.survey)


# Layer-wise embeddings: the embed job declares its layers output only when they are asked for
# (with embed.keep_layers false as temp: deleted once every job reading it is done)
EMBED_LAYERS = PLAN.layers() != "final"
EMBED_LAYERS_OUTPUT = (
    {"layers": RUN.LAYERS if PLAN.keep_layers() else temp(RUN.LAYERS)}
    if EMBED_LAYERS
    else {}
)
# ... and the kNN job of each embedding then also reads them and writes every block's graph
EMBED_LAYERS_INPUT = {"layers": RUN.LAYERS} if EMBED_LAYERS else {}
KNN_LAYERS_OUTPUT = {"blocks": RUN.KNN_LAYERS} if EMBED_LAYERS else {}


def _embed_resources(wc, attempt):
    return resources_for(wc.model, attempt, layers=EMBED_LAYERS)


def _weights(wc):
    source = PLAN.weights_source(wc.model)
    return [source] if source.startswith("resources/") else []


NOT_PRECOMPUTED = (
    "models.precomputed/does-not-name-this-embedding"  # a path no rule makes
)


def _precomputed_source(wc):
    entry = PLAN.precomputed().get((wc.crossmatch, wc.survey, wc.model))
    return entry["source"] if entry else NOT_PRECOMPUTED


def _kind(wc):
    return comparison_kind(wc.survey_a, wc.model_a, wc.survey_b, wc.model_b)


def _layer_inputs(wc):
    return PLAN.layer_inputs(
        wc.crossmatch, wc.survey_a, wc.model_a, wc.survey_b, wc.model_b
    )


def _metrics_gpu(wc):
    """The layer-wise jobs run on a GPU where the embedding jobs do (L graphs, batched null draws)."""
    return 0 if PLAN.embed_params()["device"] == "cpu" else 1


def _atlas_group(wc):
    """The report's subcategory (crossmatch) and labels (pair, metric) of a layer figure (imported
    here: samesky.report loads matplotlib, which no parse should wait for)."""
    from samesky.report.layers import figure_group

    return figure_group(wc.name, [c.as_dict() for c in PLAN.layer_comparisons()])
