"""Linear predictability by ridge regression, as pu (platonic-universe 6672072,
src/pu/metrics/regression.py): in-sample or K-fold R^2, one direction or the mean of both."""
from __future__ import annotations

import numpy as np

from ._inputs import paired


def _ridge_r2(A: np.ndarray, B: np.ndarray, alpha: float, test: np.ndarray | None = None) -> float:
    """R^2 (mean over B's columns) of ridge B ~ A with an intercept, fitted on the rows not in
    ``test`` (all rows if None) and scored on ``test`` (all rows if None), as sklearn's
    ``Ridge(alpha).fit(...).score(...)`` (uniform average of per-column R^2)."""
    train = np.ones(len(A), bool)
    if test is not None:
        train[test] = False
    else:
        test = np.arange(len(A))
    ma, mb = A[train].mean(axis=0), B[train].mean(axis=0)
    Ac, Bc = A[train] - ma, B[train] - mb
    W = np.linalg.solve(Ac.T @ Ac + alpha * np.eye(A.shape[1]), Ac.T @ Bc)
    pred = (A[test] - ma) @ W + mb
    resid = ((B[test] - pred) ** 2).sum(axis=0)
    total = ((B[test] - B[test].mean(axis=0)) ** 2).sum(axis=0)
    # sklearn's r2_score: a constant target column scores 1 if predicted exactly, else 0
    r2 = np.where(total > 0, 1 - resid / np.where(total > 0, total, 1.0), np.where(resid == 0, 1.0, 0.0))
    return float(np.mean(r2))


def _folds(n: int, cv: int) -> list[np.ndarray]:
    """sklearn's KFold(cv) without shuffling: contiguous folds, the first n % cv one row longer."""
    sizes = np.full(cv, n // cv)
    sizes[: n % cv] += 1
    edges = np.concatenate([[0], np.cumsum(sizes)])
    return [np.arange(edges[i], edges[i + 1]) for i in range(cv)]


def _checked(alpha: float, cv: int | None, n: int, measure: str) -> None:
    if alpha < 0:
        raise ValueError(f"{measure}: alpha={alpha} must be >= 0")
    if cv is not None and not 2 <= cv <= n:
        raise ValueError(f"{measure}: cv={cv} folds must be between 2 and N={n}")


def _r2(X: np.ndarray, Y: np.ndarray, alpha: float, cv: int | None) -> float:
    if cv is None:
        return _ridge_r2(X, Y, alpha)
    return float(np.mean([_ridge_r2(X, Y, alpha, test) for test in _folds(len(X), cv)]))


def linear_r2(X, Y, *, alpha: float = 1.0, cv: int | None = None, normalize_rows: bool = False) -> float:
    """R^2 of predicting Y from X by ridge regression (penalty ``alpha``, with intercept), pu
    regression.py:13 ``linear_r2``: in-sample with ``cv=None`` (pu's default), else the mean
    test R^2 over ``cv`` contiguous folds (``cross_val_score``'s unshuffled KFold).
    Similarity in (-inf, 1], asymmetric (X predicts Y)."""
    X, Y = paired(X, Y, normalize_rows=normalize_rows, measure="linear_r2")
    _checked(alpha, cv, len(X), "linear_r2")
    return _r2(X, Y, alpha, cv)


def bidirectional_linear_r2(X, Y, *, alpha: float = 1.0, cv: int | None = None,
                            normalize_rows: bool = False) -> float:
    """Mean of ``linear_r2`` X -> Y and Y -> X, pu regression.py:54 ``bidirectional_linear_r2``.
    Similarity in (-inf, 1], symmetric."""
    X, Y = paired(X, Y, normalize_rows=normalize_rows, measure="bidirectional_linear_r2")
    _checked(alpha, cv, len(X), "bidirectional_linear_r2")
    return (_r2(X, Y, alpha, cv) + _r2(Y, X, alpha, cv)) / 2
