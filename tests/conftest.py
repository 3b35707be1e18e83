import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def paper_config():
    return copy.deepcopy(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))


@pytest.fixture
def demo_config():
    return copy.deepcopy(yaml.safe_load((ROOT / "config" / "demo.yaml").read_text()))
