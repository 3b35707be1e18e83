"""Golden values of the layer atlas's maximum over cells from Groger, Wen and Brbic's own
aggregation (Algorithm 2, ``calibrated_similarity.calibrate_layers(agg="max")``, PyPI package
``calibrated-similarity``; nothing is copied into the project). Makes tests/golden/max_cells.npz
and max_cells.json.

    python3 -m venv /tmp/calv && /tmp/calv/bin/pip install calibrated-similarity numpy torch==2.13.0
    /tmp/calv/bin/python tests/golden/make_max_cells_golden.py

Inputs (seeded): per case an L_a x L_b matrix of cell scores and K null draws per cell, every
value a float32 (the package computes in float32, so its comparisons match ours exactly). The
package is given them through its own interface: side A's block i is a column of i, side B's
block j a column of j beside the object numbers, ``perm_fn`` hands out the k-th permutation (a
rotation by k + 1, so the first object's number says which draw it is), and ``sim`` looks the cell
up: the observed score for the unpermuted rows, else the cell's k-th draw. The package's
calibrated score, p and tau of the maximum are stored per case.
"""
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from calibrated_similarity import calibrate_layers

HERE = Path(__file__).parent
SEED = 27
# name: (L_a, L_b, K, alpha, shift of the observed scores above the draws' scale)
CASES = {"null_k19": (3, 4, 19, 0.05, 0.0), "null_k99": (4, 3, 99, 0.05, 0.0),
         "aligned_k99": (4, 3, 99, 0.05, 0.08), "edge_k39": (2, 5, 39, 0.10, 0.03)}


def oracle(scores: np.ndarray, draws: np.ndarray, alpha: float) -> dict:
    la, lb = scores.shape
    K = len(draws)
    n = K + 1
    X = [torch.full((n, 1), float(i)) for i in range(la)]
    Y = [torch.stack([torch.full((n,), float(j)), torch.arange(n, dtype=torch.float32)], 1) for j in range(lb)]
    count = iter(range(1, K + 1))

    def perm_fn(n_, device):
        return torch.roll(torch.arange(n_, device=device), -next(count))  # pi[0] = k + 1

    def sim(x, y):
        i, j, d = int(x[0, 0]), int(y[0, 0]), int(y[0, 1])
        return float(scores[i, j] if d == 0 else draws[d - 1, i, j])

    cal, p, tau = calibrate_layers(X, Y, sim, agg="max", K=K, alpha=alpha, smax=1.0, perm_fn=perm_fn)
    return {"calibrated": float(cal), "p": float(p), "tau": float(tau)}


def main():
    rng = np.random.default_rng(SEED)
    arrays, meta = {}, {}
    for name, (la, lb, K, alpha, shift) in CASES.items():
        base = rng.uniform(0.05, 0.25, size=(la, lb))  # each cell's own null level
        draws = (base + 0.03 * rng.standard_normal((K, la, lb))).astype(np.float32)
        scores = (base + 0.03 * rng.standard_normal((la, lb)) + shift).astype(np.float32)
        arrays[f"{name}_scores"], arrays[f"{name}_draws"] = scores, draws
        meta[name] = {"alpha": alpha, **oracle(scores, draws, alpha)}
    np.savez_compressed(HERE / "max_cells.npz", **arrays)
    (HERE / "max_cells.json").write_text(json.dumps({
        "reference": {"package": "calibrated-similarity", "version": version("calibrated-similarity"),
                      "function": "calibrated_similarity.calibration.calibrate_layers", "agg": "max",
                      "torch": torch.__version__},
        "cases": meta}, indent=1) + "\n")


if __name__ == "__main__":
    main()
