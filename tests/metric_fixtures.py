"""Two small embedding pairs on disk, with layers files and every cached graph, made by the
workflow's own writers: the inputs of the compare and compare_layers regression tests.

Deterministic from the seed alone, so a golden file made at one commit describes the same inputs
at any later one (tests/golden/make_protocol_golden.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

COMPARISON = {"kind": "crossmodal", "crossmatch": "xm", "survey_a": "legacysurvey", "model_a": "vit-base",
              "survey_b": "hsc", "model_b": "vit-base"}
METRICS = ["mknn", "cka_linear", "cka_unbiased", "cknna", "cknna_formula", "mutual_info"]
SETTINGS = {"k": 5, "null_draws": 24, "seed": 7, "alpha": 0.05, "feature_space_draws": 6,
            "params": {"mutual_info": {"components": 4}}}
INTERVALS = {"subsampling_splits": 8, "ci": 0.95}


def write_pair(root: Path, exclude: int = 0, dim: int | None = None) -> dict:
    """Sides a and b of one pair (n = 90 objects sharing a 3-d latent; side b lacks the first
    ``exclude`` objects): embedding, kNN graph (width 8k, Gram invariants), layers (3 and 2
    blocks) and block graphs, written as the embed, knn_graph and knn_layers jobs write them.
    ``dim``: every block and embedding of that dimension (by default they differ)."""
    from samesky import schema
    from samesky.metrics.knn import knn_file
    from samesky.metrics.layers import knn_layers_file
    from samesky.metrics.registry import graph_width

    rng = np.random.default_rng(11)
    n, k = 90, SETTINGS["k"]
    latent = rng.normal(size=(n, 3))
    ids = np.array([f"obj{i:03d}" for i in range(n)])
    sides = {}
    for side, (dims, blocks) in {"a": ((10, 7, 9, 12), 3), "b": ((8, 6, 11), 2)}.items():
        keep = slice(exclude, None) if side == "b" else slice(None)
        mats = [latent @ rng.normal(size=(3, d)) + 0.8 * rng.normal(size=(n, d)) for d in dims]
        if dim is not None:
            mats = [latent @ rng.normal(size=(3, dim)) + 0.8 * rng.normal(size=(n, dim)) for _ in dims]
        out = {key: root / f"{side}.{key}.h5" for key in ("emb", "knn", "layers", "knn_layers")}
        schema.write_embeddings(out["emb"], ids[keep], mats[-1][keep], {"model": f"toy-{side}"})
        schema.write_layers(out["layers"], ids[keep], [m[keep] for m in mats[:blocks]],
                            [f"block{j}" for j in range(blocks)], {"n_blocks": blocks})
        knn_file(out["emb"], out["knn"], k, width=graph_width(k), invariants=True)
        knn_layers_file(out["layers"], out["knn_layers"], k, invariants=True)
        sides[side] = {key: str(path) for key, path in out.items()}
    return sides
