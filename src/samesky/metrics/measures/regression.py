"""Linear predictability by ridge regression, as pu (platonic-universe 6672072,
src/pu/metrics/regression.py): in-sample or K-fold R^2, one direction or the mean of both.
From streamed moments per fold (``_moments``): O(N d^2) time, O(d^2) memory beside the inputs."""
from __future__ import annotations

import numpy as np

from ._inputs import checked
from ._moments import Moments, combined, moments


def _fit(train: Moments, alpha: float) -> np.ndarray:
    """Ridge coefficients with an intercept (sklearn's Ridge: centred X'X + alpha I)."""
    return np.linalg.solve(train.cxx + alpha * np.eye(len(train.cxx)), train.cxy)


def _r2(test: Moments, W: np.ndarray, shift: np.ndarray) -> float:
    """Mean over Y's columns of R^2 on ``test`` of predictions X W + c, c making the mean residual
    ``shift`` (sklearn's r2_score, uniform average: a constant column scores 1 if predicted
    exactly, else 0)."""
    resid = (np.diag(test.cyy) - 2 * np.einsum("ij,ij->j", test.cxy, W) + np.einsum("ij,ik,kj->j", W, test.cxx, W)
             + test.n * shift**2)
    resid = np.maximum(resid, 0)
    total = np.diag(test.cyy)
    r2 = np.where(total > 0, 1 - resid / np.where(total > 0, total, 1.0), np.where(resid == 0, 1.0, 0.0))
    return float(np.mean(r2))


def _folds(n: int, cv: int) -> np.ndarray:
    """Edges of sklearn's KFold(cv) without shuffling: contiguous, the first n % cv one row longer."""
    sizes = np.full(cv, n // cv)
    sizes[: n % cv] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def _swap(m: Moments) -> Moments:
    return Moments(m.n, m.my, m.mx, m.cyy, m.cxx, m.cxy.T)


def _both_ways(p, alpha: float, cv: int | None) -> tuple[float, float]:
    """R^2 of X -> Y and of Y -> X (in-sample, or the mean over the cv test folds)."""
    if cv is None:
        m = moments(p)
        return _r2(m, _fit(m, alpha), np.zeros(len(m.my))), _r2(_swap(m), _fit(_swap(m), alpha), np.zeros(len(m.mx)))
    edges = _folds(p.n, cv)
    parts = [moments(p, edges[i], edges[i + 1]) for i in range(cv)]
    scores = []
    for i, test in enumerate(parts):
        train = combined(parts[:i] + parts[i + 1 :])
        row = []
        for tr, te in ((train, test), (_swap(train), _swap(test))):
            W = _fit(tr, alpha)
            row.append(_r2(te, W, (te.my - tr.my) - (te.mx - tr.mx) @ W))
        scores.append(row)
    forward, backward = np.mean(scores, axis=0)
    return float(forward), float(backward)


def _checked(X, Y, alpha: float, cv: int | None, normalize_rows: bool, measure: str):
    p = checked(X, Y, normalize_rows=normalize_rows, measure=measure)
    if alpha < 0:
        raise ValueError(f"{measure}: alpha={alpha} must be >= 0")
    if cv is not None and not 2 <= cv <= p.n:
        raise ValueError(f"{measure}: cv={cv} folds must be between 2 and N={p.n}")
    return p


def linear_r2(X, Y, *, alpha: float = 1.0, cv: int | None = None, normalize_rows: bool = False) -> float:
    """R^2 of predicting Y from X by ridge regression (penalty ``alpha``, with intercept), pu
    regression.py:13 ``linear_r2``: in-sample with ``cv=None`` (pu's default), else the mean
    test R^2 over ``cv`` contiguous folds (``cross_val_score``'s unshuffled KFold).
    Similarity in (-inf, 1], asymmetric (X predicts Y)."""
    p = _checked(X, Y, alpha, cv, normalize_rows, "linear_r2")
    if cv is None:
        m = moments(p)
        return _r2(m, _fit(m, alpha), np.zeros(len(m.my)))
    return _both_ways(p, alpha, cv)[0]


def bidirectional_linear_r2(X, Y, *, alpha: float = 1.0, cv: int | None = None,
                            normalize_rows: bool = False) -> float:
    """Mean of ``linear_r2`` X -> Y and Y -> X, pu regression.py:54 ``bidirectional_linear_r2``.
    Similarity in (-inf, 1], symmetric."""
    return float(np.mean(_both_ways(_checked(X, Y, alpha, cv, normalize_rows, "bidirectional_linear_r2"), alpha, cv)))
