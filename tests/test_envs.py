"""The conda environment is self-contained and pins exactly what requirements.txt pins."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_conda_env_pins_equal_requirements():
    env = yaml.safe_load((ROOT / "envs" / "samesky.yaml").read_text())
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1
    assert not [p for p in pip[0] if p.startswith("-")], "no -r/-e includes: Snakemake copies the env file alone"
    assert pip[0] == _requirements()


def test_every_rule_uses_the_conda_env():
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = path.read_text()
        rules = re.findall(r"^rule (\w+):", text, flags=re.M)
        assert len(rules) == text.count('conda:\n        "../../envs/samesky.yaml"'), path
