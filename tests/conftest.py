import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 10
# The two workflow runs, longest first: `make test` runs the suite on two workers (pytest-xdist,
# --dist loadfile --no-loadscope-reorder: a file's tests stay together, in this order), so the
# demo fixture and the Slurm run start at once and the unit tests fill the cores around them
# (the Slurm run spends most of its time waiting for the scheduler's status checks).
FIRST = ("test_workflow.py", "test_slurm.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: FIRST.index(item.path.name) if item.path.name in FIRST else len(FIRST))


@pytest.fixture
def paper_config():
    return copy.deepcopy(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))


@pytest.fixture
def demo_config():
    """config/demo.yaml: the embedded default, a tour that runs every rule once on little data."""
    return copy.deepcopy(yaml.safe_load((ROOT / "config" / "demo.yaml").read_text()))


@pytest.fixture
def breadth_config():
    """tests/breadth.yaml: four simulated crossmatches, two families of two sizes, every probe
    property (the unit tests plan it, nothing runs it)."""
    return copy.deepcopy(yaml.safe_load((ROOT / "tests" / "breadth.yaml").read_text()))


@pytest.fixture
def images(tmp_path):
    """A preprocessed file of N_IMAGES random 32-pixel uint8 RGB cutouts (obj0, obj1, ...)."""
    import numpy as np

    from samesky import schema

    path = tmp_path / "pre" / "hsc.h5"
    data = np.random.default_rng(1).integers(0, 256, (N_IMAGES, 3, 32, 32), dtype=np.uint8)
    schema.write_preprocessed(path, [f"obj{i}" for i in range(N_IMAGES)], data, {"percentiles": [5, 99]})
    return path


def kill_after_shards(monkeypatch, shards: int, run, out: Path) -> None:
    """Call ``run()`` (an embedding job writing ``out``) until ``shards`` shards are saved, then die
    as a killed job would; the saved shards stay for the resumed job."""
    from samesky import embed

    save, saved = embed._save_shard, []

    def dying_save(*args):
        if len(saved) == shards:
            raise KeyboardInterrupt("killed")
        saved.append(args)
        save(*args)

    with monkeypatch.context() as m:
        m.setattr(embed, "_save_shard", dying_save)
        with pytest.raises(KeyboardInterrupt):
            run()
    assert not out.exists() and len(list(out.with_name(out.name + ".shards").glob("shard-*.npz"))) == shards


def count_embedded_rows(monkeypatch) -> list[list[str]]:
    """From now on, record the object ids of every batch that an embedding job computes (resumed
    jobs must compute only the shards they lack)."""
    from samesky import embed

    computed, embed_rows = [], embed._embed_rows

    def counting(run, batches, batch_size):
        ids, outputs, batch_size = embed_rows(run, batches, batch_size)
        computed.append(ids.tolist())
        return ids, outputs, batch_size

    monkeypatch.setattr(embed, "_embed_rows", counting)
    return computed
