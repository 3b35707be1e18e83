"""Fixed embeddings for the parquet round trip with the Platonic Universe authors' readers
(``make_pu_parquet_golden.py`` and ``tests/test_pu_parquet.py`` share them).

* ``run_arrays``: what ``pu run --model vit --mode jwst`` and ``pu run --model specformer --mode
  desi`` would hold (HSC and JWST vectors of 40 objects; DESI Specformer vectors of 30);
* ``write_ours``: samesky embedding files of two crossmatches, JWST's file in another object order
  with one object missing (the export must align and drop it), DESI with only a spectrum model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

N, D = 40, 12


def run_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(28)
    hsc = rng.normal(size=(N, D)).astype(np.float32)
    return {"hsc": hsc, "jwst": (hsc + 0.7 * rng.normal(size=(N, D))).astype(np.float32),
            "desi": rng.normal(size=(30, 8)).astype(np.float32)}


def write_ours(root: Path) -> Path:
    """``root/results/embeddings/...`` as the workflow writes them; returns that directory."""
    from samesky.schema import write_embeddings

    arrays = run_arrays()
    ids = np.array([f"obj{i:03d}" for i in range(N)])
    emb = Path(root) / "results" / "embeddings"
    write_embeddings(emb / "jwst_hsc" / "hsc" / "vit-base.h5", ids, arrays["hsc"], {})
    order = np.random.default_rng(1).permutation(N)[:-1]  # shuffled, the last object dropped
    write_embeddings(emb / "jwst_hsc" / "jwst" / "vit-base.h5", ids[order], arrays["jwst"][order], {})
    write_embeddings(emb / "desi_hsc" / "desi" / "specformer-base.h5", ids[:30], arrays["desi"], {})
    return emb
