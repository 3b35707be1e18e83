"""The workflow's rule names, read from workflow/rules/*.smk (the tests that run the workflow
check that every rule ran)."""
import re
from pathlib import Path

RULE_FILES = sorted((Path(__file__).resolve().parents[1] / "workflow" / "rules").glob("*.smk"))


def rules() -> set[str]:
    """Every rule (and checkpoint) defined in workflow/rules/*.smk."""
    return {name for smk in RULE_FILES for name in re.findall(r"^(?:rule|checkpoint) (\w+):", smk.read_text(), re.M)}


def local_rules() -> set[str]:
    """Rules Snakemake runs itself, not submitted: every rule file's `localrules:`, and the Snakefile's `all`."""
    names = {"all"}
    for smk in RULE_FILES:
        for block in re.findall(r"^localrules:\n((?:    \w+,\n)+)", smk.read_text(), flags=re.M):
            names |= set(re.findall(r"\w+", block))
    return names
