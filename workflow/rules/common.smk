# Shared set-up: validated config, the job plan, wildcard constraints.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from samesky.plan import Plan, validate_config
from samesky.models.registry import resources_for

validate_config(config)  # fails before any job, naming the offending key
PLAN = Plan(config)


def _one_of(names):
    """Regex matching exactly these names (or nothing, when there are none)."""
    return "|".join(names) if names else "(?!x)x"


wildcard_constraints:
    crossmatch=_one_of(PLAN.crossmatches),
    survey="[a-z]+",
    survey_a="[a-z]+",
    survey_b="[a-z]+",
    model="[a-z0-9]+-[a-z0-9]+",
    model_a="[a-z0-9]+-[a-z0-9]+",
    model_b="[a-z0-9]+-[a-z0-9]+",
