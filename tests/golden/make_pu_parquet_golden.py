"""Golden outputs of the Platonic Universe authors' parquet readers, for ``tests/test_pu_parquet.py``.

Runs their readers unmodified (``pu.metrics.io``, from a checkout given on the command line, with
polars) and writes beside this file:

* ``pu_run_jwst_vit_base.parquet`` and ``pu_run_desi_specformer_43M.parquet``: the fixed arrays of
  ``pu_parquet_inputs.run_arrays`` written the way their ``experiments.run_experiment`` writes
  ``data/{mode}_{alias}_{size}.parquet`` (a polars DataFrame of one ``pl.Series`` per survey, named
  ``f"{alias}_{size.lstrip('0')}_{mode}".lower()``, the 2-D array as the values; ``write_parquet``);
* ``pu_parquet_golden.npz`` / ``.json``: what their ``load_embeddings_from_parquet`` and
  ``load_single_embedding`` return on those files and on ``samesky export`` of
  ``pu_parquet_inputs.write_ours``, and their ``compare_from_parquet(..., metrics=["mknn"],
  mknn__k=5)`` on our export.

    git --git-dir=<mirror of UniverseTBD/platonic-universe> archive HEAD src/pu | tar -x -C /tmp/pu
    python -m pip install --target /tmp/polars "polars>=1.32.2,<2"   # their pin; polars 2 refuses their with_columns on an empty frame
    PYTHONPATH=src:/tmp/pu/src:/tmp/polars python tests/golden/make_pu_parquet_golden.py --pu-commit <sha>
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pu_parquet_inputs as fixed  # noqa: E402


def write_like_pu_run(path: Path, alias: str, size: str, arrays: dict[str, np.ndarray]) -> None:
    """One polars Series per survey, as ``run_experiment`` builds ``size_df``, then ``write_parquet``."""
    import polars as pl

    df = pl.DataFrame().with_columns([pl.Series(f"{alias}_{size.lstrip('0')}_{mode}".lower(), Z)
                                      for mode, Z in arrays.items()])
    df.write_parquet(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pu-commit", required=True, help="the checkout's commit, recorded in the json")
    args = parser.parse_args()
    import polars as pl
    from pu.metrics.io import compare_from_parquet, load_embeddings_from_parquet, load_single_embedding

    from samesky.export import export

    arrays = fixed.run_arrays()
    run_vit = HERE / "pu_run_jwst_vit_base.parquet"
    run_spec = HERE / "pu_run_desi_specformer_43M.parquet"
    write_like_pu_run(run_vit, "vit", "base", {"hsc": arrays["hsc"], "jwst": arrays["jwst"]})
    write_like_pu_run(run_spec, "specformer", "43M", {"desi": arrays["desi"]})
    out, meta = {}, {"pu_commit": args.pu_commit, "polars": pl.__version__}
    out["run_vit_1"], out["run_vit_2"], meta["run_vit"] = load_embeddings_from_parquet(str(run_vit))
    out["run_spec"], meta["run_spec"] = load_single_embedding(str(run_spec))
    with tempfile.TemporaryDirectory() as tmp:
        files = export([fixed.write_ours(Path(tmp))], Path(tmp) / "export")
        vit, spec = (next(f for f in files if f.name == name) for name in ("vit_base.parquet", "specformer_base.parquet"))
        meta["export_files"] = sorted(str(f.relative_to(Path(tmp) / "export")) for f in files)
        meta["export_readme"] = (Path(tmp) / "export" / "README.md").read_text()
        out["export_vit_1"], out["export_vit_2"], meta["export_vit"] = load_embeddings_from_parquet(str(vit))
        out["export_vit_jwst"], meta["export_vit_jwst"] = load_single_embedding(str(vit), mode="jwst")
        out["export_spec"], meta["export_spec"] = load_single_embedding(str(spec))
        meta["export_vit_compare"] = compare_from_parquet(str(vit), metrics=["mknn"], mknn__k=5)
    np.savez_compressed(HERE / "pu_parquet_golden.npz", **out)
    (HERE / "pu_parquet_golden.json").write_text(json.dumps(meta, indent=1, default=float) + "\n")
    print({k: v.shape for k, v in out.items()}, meta["export_vit_compare"])


if __name__ == "__main__":
    main()
