"""The ``samesky`` command and ``samesky.compare``: the workflow's numbers on any two embeddings.

The reproduction test writes two embedding files where the workflow keeps them, runs the compare
job's own code on them (``knn_file`` as the knn_graph rule, ``compare_files`` with the demo
config's ``Plan.metric_params``), and checks that ``samesky compare`` prints and writes the
same record, field for field.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import samesky
from samesky.api import columns
from samesky.cli import main
from samesky.metrics.registry import METRICS
from samesky.schema import write_embeddings

ROOT = Path(__file__).resolve().parents[1]
STATS = ("n", "n_excluded", "k", "score", "ci_low", "ci_high", "null_mean", "null_std", "p_value", "null_draws",
         "subsampling_splits", "calibrated", "tau", "alpha", "null_method",
         "kind", "crossmatch", "survey_a", "model_a", "survey_b", "model_b", "metric")


def _demo_pair(root: Path, n: int = 120):
    """A DESI and an HSC embedding file of one crossmatch, the DESI one shuffled and one object short."""
    rng = np.random.default_rng(5)
    ids = np.array([f"g{i:04d}" for i in range(n)])
    hsc = rng.normal(size=(n, 16)).astype(np.float32)
    desi = (hsc[:, :8] + 0.8 * rng.normal(size=(n, 8))).astype(np.float32)
    order = rng.permutation(n)[1:]
    emb = root / "results" / "embeddings" / "desi_hsc"
    a, b = emb / "desi" / "specformer-base.h5", emb / "hsc" / "vit-base.h5"
    write_embeddings(a, ids[order], desi[order], {})
    write_embeddings(b, ids, hsc, {})
    return a, b


def test_compare_reproduces_the_workflow_record(tmp_path, demo_config, capsys, monkeypatch):
    from samesky.config import validate_config
    from samesky.metrics.compare import compare_files
    from samesky.metrics.knn import knn_file
    from samesky.models.registry import get_model
    from samesky.plan import Comparison, Plan

    demo_config["metrics"].update(names=["mknn", "cknna", "cka_linear"], null_draws=40, subsampling_splits=20)  # cheap
    plan = Plan(validate_config(demo_config))
    a, b = _demo_pair(tmp_path)
    for emb in (a, b):  # rule knn_graph
        knn_file(emb, tmp_path / f"{emb.stem}.knn.h5", k=plan.knn_params()["k"], width=plan.graph_width(),
                 precision=plan.knn_params()["precision"], invariants=plan.cka_invariants())
    pair = Comparison("crossmodal", "desi_hsc", "desi", "specformer-base", "hsc", "vit-base")
    assert pair in plan.comparisons
    expected = compare_files(a, b, tmp_path / "specformer-base.knn.h5", tmp_path / "vit-base.knn.h5",
                             comparison=pair.as_dict(), **plan.metric_params())  # rule compare
    monkeypatch.chdir(tmp_path)
    settings = plan.metric_params()
    out = tmp_path / "records.json"
    assert main(["compare", str(a.relative_to(tmp_path)), str(b.relative_to(tmp_path)), "--metrics", *settings["metrics"],
                 "--null-draws", "40", "--subsampling-splits", "20", "--output", str(out), "-q"]) == 0  # the rest: defaults
    got = json.loads(out.read_text())["records"]
    assert [r["metric"] for r in got] == settings["metrics"] == [r["metric"] for r in expected]
    for mine, job in zip(got, expected):
        assert {f: mine[f] for f in STATS} == {f: job[f] for f in STATS}
        assert mine["pairing"] == "id" and mine["n_excluded"] == 1
        assert (mine["family"], mine["size_a"], mine["size_b"]) == ("vit", "base", "base")  # as scores.csv
        assert (mine["params_a"], mine["params_b"]) == (get_model("specformer-base").params, get_model("vit-base").params)
    printed = capsys.readouterr().out
    mknn = next(r for r in expected if r["metric"] == "mknn")
    row = next(line for line in printed.splitlines() if line.startswith("mknn "))
    for field in ("score", "null_mean", "p_value", "calibrated", "tau"):
        assert f"{mknn[field]:.4f}" in row


def test_api_on_arrays_frames_and_files(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(80, 6)).astype(np.float32)
    B = (A + 0.3 * rng.normal(size=A.shape)).astype(np.float32)
    kw = dict(metrics=["mknn", "cka_linear"], k=5, null_draws=20, subsampling_splits=0)
    arrays = samesky.compare(A, B, **kw)
    assert list(arrays.columns) == columns()
    assert list(arrays["metric"]) == ["mknn", "cka_linear"] and set(arrays["pairing"]) == {"row"}
    # the same objects in another order, with ids: joined by id, the same scores
    ids = np.array([f"o{i}" for i in range(80)])
    perm = rng.permutation(80)
    frame = pd.DataFrame({"object_id": ids[perm], "emb": list(B[perm])})
    np.save(tmp_path / "a.npy", A)
    np.savez(tmp_path / "a.npz", embedding=A, object_id=ids)
    by_id = samesky.compare(tmp_path / "a.npz", frame, **kw)
    assert set(by_id["pairing"]) == {"id"} and (by_id["n"] == 80).all()
    np.testing.assert_array_equal(by_id["score"], arrays["score"])
    from_npy = samesky.compare(str(tmp_path / "a.npy"), B, **kw)
    pd.testing.assert_frame_equal(from_npy.drop(columns=["model_a", "source"]), arrays.drop(columns=["model_a", "source"]))
    # the same file twice: the shuffled-self null (kind 'self', B is A)
    self_pair = samesky.compare(tmp_path / "a.npy", tmp_path / "a.npy", **kw)
    assert set(self_pair["kind"]) == {"self"} and self_pair.loc[0, "score"] == 1.0


def test_positional_sides_must_have_the_same_rows(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((10, 3)))
    with pytest.raises(ValueError, match=r"a.npy has 10 rows and B has 9, and .*a.npy and B has no ids"):
        samesky.compare(tmp_path / "a.npy", np.ones((9, 3)), metrics=["mknn"])


def test_metrics_lists_the_registry(capsys):
    assert main(["metrics"]) == 0
    out = capsys.readouterr().out
    for name, metric in METRICS.items():
        assert name in out and metric.summary in out
    assert "* mknn" in out and "[components=16]" in out


def test_version_and_help():
    run = subprocess.run([sys.executable, "-m", "samesky", "--version"], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == f"samesky {samesky.__version__}"
    run = subprocess.run([sys.executable, "-m", "samesky", "compare", "--help"], capture_output=True, text=True,
                         check=True)
    for words in ("permutation null", "--null-draws", "--column", "positional", "results/<run_name>/tables/scores.csv"):
        assert words in run.stdout


def test_console_script_is_declared():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"samesky": "samesky.cli:main"}


def test_bad_input_is_an_error_naming_the_column(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"object_id": ["a", "b"], "vec": [[1.0, 2.0], [3.0, 4.0]]}), path)
    assert main(["compare", str(path), str(path), "--column", "embeddings", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{path}: no column 'embeddings'; columns there: ['object_id', 'vec']" in err
    assert main(["compare", str(path), str(path), "--metrics", "mknnn", "-q"]) == 1
    assert "unknown metric 'mknnn'" in capsys.readouterr().err


def test_output_csv_and_json(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "a.npy", rng.normal(size=(40, 4)))
    np.save(tmp_path / "b.npy", rng.normal(size=(40, 4)))
    args = ["compare", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--metrics", "mknn", "-k", "3",
            "--null-draws", "10", "--subsampling-splits", "5", "-q"]
    assert main([*args, "-o", str(tmp_path / "r.csv")]) == 0
    assert main([*args, "-o", str(tmp_path / "r.json")]) == 0
    table = pd.read_csv(tmp_path / "r.csv")
    (rec,) = json.loads((tmp_path / "r.json").read_text())["records"]
    assert list(table.columns) == columns()
    assert table.loc[0, "score"] == rec["score"] and rec["null_draws"] == 10 and rec["pairing"] == "row"


def test_import_stays_light():
    """The workflow imports the package at parse time: ``samesky.compare`` loads pandas and torch on first use."""
    code = ("import sys, samesky; heavy = {'pandas', 'torch', 'pyarrow', 'samesky.api'} & set(sys.modules); "
            "assert not heavy, heavy; assert callable(samesky.compare)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_export_command(tmp_path, capsys):
    a, b = _demo_pair(tmp_path, n=20)
    out = tmp_path / "export"
    assert main(["export", str(tmp_path / "results" / "embeddings"), "--out", str(out), "-q"]) == 0
    written = capsys.readouterr().out.split()
    assert written == [str(out / "desi" / "specformer_base.parquet"), str(out / "desi" / "vit_base.parquet"),
                       str(out / "README.md")]
    # the exported columns score as the files they came from (ids kept, so joined by id)
    kw = dict(metrics=["mknn"], k=3, null_draws=0, subsampling_splits=0)
    direct = samesky.compare(a, b, **kw)
    exported = samesky.compare(out / "desi" / "specformer_base.parquet", out / "desi" / "vit_base.parquet",
                               column="specformer_base_desi", column_b="vit_base_hsc", **kw)
    assert exported.loc[0, "pairing"] == "id" and exported.loc[0, "score"] == direct.loc[0, "score"]


def test_metric_parameters(tmp_path, capsys):
    rng = np.random.default_rng(2)
    a = rng.normal(size=(50, 6))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", a + rng.normal(size=a.shape))
    args = ["compare", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--metrics", "mutual_info",
            "--null-draws", "0", "--subsampling-splits", "0", "-q", "-o", str(tmp_path / "r.json")]
    scores = {}
    for components in (1, 4):
        assert main([*args, "--param", f"mutual_info.components={components}"]) == 0
        scores[components] = json.loads((tmp_path / "r.json").read_text())["records"][0]["score"]
    assert scores[1] < scores[4]  # more components carry more of the shared information
    assert main([*args, "--param", "mutual_info.dims=4"]) == 1
    assert "params.mutual_info.dims: metric 'mutual_info' has no parameter 'dims'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--param", "components=4"])
    assert "expected METRIC.NAME=VALUE" in capsys.readouterr().err


def test_a_pairing_free_measure_prints_its_score_and_says_why_it_has_no_null(tmp_path, capsys):
    rng = np.random.default_rng(3)
    np.save(tmp_path / "a.npy", rng.normal(size=(60, 4)))
    np.save(tmp_path / "b.npy", rng.normal(size=(60, 4)) + 0.5)
    df = samesky.compare(tmp_path / "a.npy", tmp_path / "b.npy", metrics=["mknn", "frechet"], k=3, null_draws=10,
                         subsampling_splits=5)
    free = df.set_index("metric").loc["frechet"]
    assert free["null_method"] == "pairing_free" and free["null_draws"] == 0 and free["ci_low"] < free["score"]
    assert free[["null_mean", "p_value", "tau", "calibrated", "calibrated_low", "calibrated_high"]].isna().all()
    assert df.set_index("metric").loc["mknn", "null_method"] == "permutation"
    assert main(["compare", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--metrics", "mknn", "frechet", "-k", "3",
                 "--null-draws", "10", "--subsampling-splits", "5", "-q", "-o", str(tmp_path / "r.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("frechet "))
    assert row.split()[-4:] == ["-", "-", "-", "-"] and f"{free['score']:.4f}" in row  # null mean, p, calibrated, tau
    assert lines[-1] == ("frechet: no permutation null: the measure compares the two distributions and ignores which "
                         "row of A goes with which row of B, so permuting B's rows leaves it unchanged (pairing-free: "
                         "no p, calibrated score or tau)")
    rec = next(r for r in json.loads((tmp_path / "r.json").read_text())["records"] if r["metric"] == "frechet")
    assert (rec["null_method"], rec["p_value"], rec["tau"], rec["calibrated"]) == ("pairing_free", None, None, None)
    assert main(["metrics"]) == 0
    assert "(distance, distance; null: none, pairing-free)" in next(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("  frechet "))
