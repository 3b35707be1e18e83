"""The layer atlas's best block pair calibrated as a maximum over cells (issue 27, point 3):
``layers.max_corrected`` against Groger, Wen and Brbic's own aggregation (Algorithm 2 of
``calibrated-similarity``; goldens made by tests/golden/make_max_cells_golden.py), and the
corrected p-value uniform under independence where the best cell's own p is not."""
import json
from pathlib import Path

import numpy as np
import pytest

from samesky.metrics import layers as L
from samesky.metrics.registry import get_metric
from samesky.metrics.stats import max_null, p_value

GOLDEN = Path(__file__).parent / "golden"
META = json.loads((GOLDEN / "max_cells.json").read_text())
DATA = np.load(GOLDEN / "max_cells.npz")


def cells_of(scores: np.ndarray, draws: np.ndarray):
    """The per-cell scores and null draws of an L_a x L_b matrix and its (K, L_a, L_b) draws."""
    raw = {(i, j): float(scores[i, j]) for i in range(scores.shape[0]) for j in range(scores.shape[1])}
    return raw, {c: draws[:, c[0], c[1]].astype(float) for c in raw}


@pytest.mark.parametrize("case", sorted(META["cases"]))
def test_best_cell_matches_calibrated_similarity(case):
    golden = META["cases"][case]
    raw, nulls = cells_of(DATA[f"{case}_scores"], DATA[f"{case}_draws"])
    out = L.max_corrected(get_metric("mknn"), raw, nulls, golden["alpha"])
    best = out[max(raw, key=raw.get)]
    assert best["max_method"] == "max_null"
    assert best["tau_max"] == golden["tau"]  # an order statistic of float32 values: exact
    assert best["p_max"] == pytest.approx(golden["p"], abs=1e-7)  # the package's p is a float32
    assert best["calibrated_max"] == pytest.approx(golden["calibrated"], abs=1e-6)


@pytest.mark.parametrize("case", sorted(META["cases"]))
def test_a_distance_takes_the_minimum(case):
    """Negated scores of a distance (procrustes): the same p, the threshold negated."""
    golden = META["cases"][case]
    raw, nulls = cells_of(-DATA[f"{case}_scores"], -DATA[f"{case}_draws"])
    out = L.max_corrected(get_metric("procrustes"), raw, nulls, golden["alpha"])
    best = out[min(raw, key=raw.get)]
    assert best["tau_max"] == -golden["tau"]
    assert best["p_max"] == pytest.approx(golden["p"], abs=1e-7)


def test_max_null_is_the_per_draw_extreme():
    draws = np.array([[0.1, 0.5, 0.2], [0.3, 0.4, 0.0]])
    assert max_null(draws).tolist() == [0.3, 0.5, 0.2]
    assert max_null(draws, "distance").tolist() == [0.1, 0.4, 0.0]
    with pytest.raises(ValueError, match=r"need a \(cells, draws\) array"):
        max_null(np.zeros(3))


class Law:
    """A closed-form null with known p and threshold, as rv_null.ClosedNull offers them."""

    def __init__(self, p):
        self.p = p

    def p_value(self, score):
        return self.p

    def threshold(self, alpha):
        return 0.5 * alpha


def test_closed_form_nulls_get_a_bonferroni_bound():
    raw = {(0, 0): 0.3, (0, 1): 0.2, (1, 0): 0.1}
    out = L.max_corrected(get_metric("cka_linear"), raw, {(0, 0): Law(0.01), (0, 1): Law(0.2), (1, 0): Law(0.5)}, 0.06)
    assert {c: o["p_max"] for c, o in out.items()} == {(0, 0): pytest.approx(0.03), (0, 1): pytest.approx(0.6),
                                                         (1, 0): 1.0}
    assert out[(0, 0)]["tau_max"] == pytest.approx(0.01)  # the law's threshold at alpha / 3
    assert out[(0, 0)]["calibrated_max"] == pytest.approx((0.3 - 0.01) / 0.99)
    assert {o["max_method"] for o in out.values()} == {"bonferroni"}


def test_pairing_free_and_drawless_cells_have_no_max():
    raw, nulls = {(0, 0): 0.3}, {(0, 0): np.empty(0)}
    assert L.max_corrected(get_metric("mmd"), raw, nulls, 0.05) == {(0, 0): L.NO_MAX}
    assert L.max_corrected(get_metric("mknn"), raw, nulls, 0.05) == {(0, 0): L.NO_MAX}


def _cka(X, Y):
    X, Y = X - X.mean(0), Y - Y.mean(0)
    return np.linalg.norm(X.T @ Y) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))


def test_corrected_p_is_uniform_under_independence_and_the_cell_p_is_not():
    """3 x 3 blocks of independent sides, 19 shared permutations per repetition: the best cell's
    p against the max null rejects at alpha = 0.05 about 5% of the time (p uniform on k / 20);
    its own cell's p rejects far more often (the search over 9 cells)."""
    rng = np.random.default_rng(5)
    n, draws, reps, alpha = 24, 19, 400, 0.05
    spec, corrected, naive = get_metric("mknn"), [], []
    for _ in range(reps):
        A = [rng.standard_normal((n, 2)) for _ in range(3)]
        B = [rng.standard_normal((n, 2)) for _ in range(3)]
        perms = [rng.permutation(n) for _ in range(draws)]
        raw = {(i, j): _cka(A[i], B[j]) for i in range(3) for j in range(3)}
        nulls = {(i, j): np.array([_cka(A[i], B[j][pi]) for pi in perms]) for i, j in raw}
        best = max(raw, key=raw.get)
        corrected.append(L.max_corrected(spec, raw, nulls, alpha)[best]["p_max"])
        naive.append(p_value(raw[best], nulls[best]))
    corrected, naive = np.array(corrected), np.array(naive)
    assert 0.025 <= np.mean(corrected <= alpha) <= 0.085  # 0.0725 with this seed; binomial sd 0.011
    assert abs(corrected.mean() - 0.525) < 0.04  # the mean of the uniform law on k / 20
    assert np.mean(naive <= alpha) > 0.2
