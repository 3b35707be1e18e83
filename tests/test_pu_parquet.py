"""Parquet both ways with the Platonic Universe authors' readers (``pu.metrics.io``).

Oracle: ``golden/make_pu_parquet_golden.py`` ran their readers, from a checkout of
UniverseTBD/platonic-universe, on files written the way their ``pu run`` writes them and on our
``samesky export``; it stored those files and what their readers returned. Here our reader must
return the same arrays from their files, and our export must still hold exactly what their
readers read from it. With ``SAMESKY_PU_SRC`` (their ``src``) and polars importable, their readers
also run live on today's export.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from samesky import sources
from samesky.cli import main
from samesky.export import export

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
import pu_parquet_inputs as fixed  # noqa: E402


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN / "pu_parquet_golden.npz") as z:
        arrays = dict(z)
    return arrays, json.loads((GOLDEN / "pu_parquet_golden.json").read_text())


@pytest.fixture
def exported(tmp_path):
    root = tmp_path / "export"
    export([fixed.write_ours(tmp_path)], root)
    return root


def test_their_run_files_read_as_their_reader_reads_them(golden):
    arrays, meta = golden
    assert meta["run_vit"] == {"model": "vit", "size": "base", "mode1": "hsc", "mode2": "jwst"}
    hsc = sources.load(GOLDEN / "pu_run_jwst_vit_base.parquet", column="vit_base_hsc")
    jwst = sources.load(GOLDEN / "pu_run_jwst_vit_base.parquet", column="vit_base_jwst")
    spec = sources.load(GOLDEN / "pu_run_desi_specformer_43M.parquet")  # one vector column: found alone
    assert hsc.positional and jwst.positional and spec.positional  # no id column: rows pair by position
    np.testing.assert_array_equal(hsc.array, arrays["run_vit_1"])
    np.testing.assert_array_equal(jwst.array, arrays["run_vit_2"])
    np.testing.assert_array_equal(spec.array, arrays["run_spec"])
    assert spec.column == "specformer_43m_desi" and meta["run_spec"]["size"] == "43m"
    np.testing.assert_array_equal(hsc.array, fixed.run_arrays()["hsc"])


def test_their_run_file_needs_a_column_named(golden):
    with pytest.raises(sources.SourceError, match=r"2 vector columns \['vit_base_hsc', 'vit_base_jwst'\]"):
        sources.load(GOLDEN / "pu_run_jwst_vit_base.parquet")


def test_our_export_holds_what_their_reader_read(golden, exported):
    arrays, meta = golden
    files = sorted(str(p.relative_to(exported)) for p in exported.rglob("*") if p.is_file())
    assert files == meta["export_files"]
    assert (exported / "README.md").read_text() == meta["export_readme"]
    table = pq.read_table(exported / "jwst" / "vit_base.parquet")
    # their readers take model, size and surveys from the first column's name and the prefix
    assert table.column_names == ["vit_base_hsc", "vit_base_jwst", "object_id"]
    assert meta["export_vit"] == {"model": "vit", "size": "base", "mode1": "hsc", "mode2": "jwst"}
    np.testing.assert_array_equal(sources.load(table.to_pandas(), column="vit_base_hsc").array, arrays["export_vit_1"])
    np.testing.assert_array_equal(sources.load(table.to_pandas(), column="vit_base_jwst").array, arrays["export_vit_2"])
    np.testing.assert_array_equal(arrays["export_vit_jwst"], arrays["export_vit_2"])
    spec = pq.read_table(exported / "desi" / "specformer_base.parquet")
    assert spec.column_names == ["specformer_base_desi", "object_id"]
    np.testing.assert_array_equal(np.vstack(spec.column(0).to_pylist()), arrays["export_spec"])


def test_export_pairs_rows_by_object(exported):
    """The JWST file was written shuffled with one object missing: the export aligns it to HSC's
    order and leaves that object out of both columns."""
    full = fixed.run_arrays()
    table = pq.read_table(exported / "jwst" / "vit_base.parquet").to_pandas()
    ids = table["object_id"].to_numpy()
    rows = np.array([int(i[3:]) for i in ids])
    assert len(ids) == fixed.N - 1 and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(np.vstack(table["vit_base_hsc"]), full["hsc"][rows])
    np.testing.assert_array_equal(np.vstack(table["vit_base_jwst"]), full["jwst"][rows])


def test_our_mknn_on_our_export_equals_theirs(golden, exported, capsys, tmp_path):
    """Their compare_from_parquet's MKNN (k=5) on our export, and ours through the command line."""
    _, meta = golden
    theirs = meta["export_vit_compare"]["metrics"]["mknn"]
    vit = exported / "jwst" / "vit_base.parquet"
    out = tmp_path / "mknn.json"
    assert main(["compare", str(vit), str(vit), "--column", "vit_base_hsc", "--column-b", "vit_base_jwst",
                 "--metrics", "mknn", "-k", "5", "--null-draws", "0", "--subsampling-splits", "0", "-q",
                 "--output", str(out)]) == 0
    (rec,) = json.loads(out.read_text())["records"]
    assert rec["score"] == pytest.approx(theirs, abs=1e-12) and rec["pairing"] == "id" and rec["n"] == fixed.N - 1


@pytest.mark.skipif(not os.environ.get("SAMESKY_PU_SRC"), reason="SAMESKY_PU_SRC (a platonic-universe src/) not set")
def test_their_reader_live_on_our_export(golden, exported):
    pytest.importorskip("polars")
    sys.path.insert(0, os.environ["SAMESKY_PU_SRC"])
    from pu.metrics.io import load_embeddings_from_parquet, load_single_embedding

    arrays, _ = golden
    z1, z2, meta = load_embeddings_from_parquet(str(exported / "jwst" / "vit_base.parquet"))
    assert meta == {"model": "vit", "size": "base", "mode1": "hsc", "mode2": "jwst"}
    np.testing.assert_array_equal(z1, arrays["export_vit_1"])
    np.testing.assert_array_equal(z2, arrays["export_vit_2"])
    spec, _ = load_single_embedding(str(exported / "desi" / "specformer_base.parquet"))
    np.testing.assert_array_equal(spec, arrays["export_spec"])
