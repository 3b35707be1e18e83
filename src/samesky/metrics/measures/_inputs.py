"""Input checks shared by the measures: one place that says what a bad pair of matrices is."""
from __future__ import annotations

import numpy as np


def paired(X, Y, *, normalize_rows: bool, same_dim: bool = False, measure: str = "measure",
           min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Both matrices as float64 (N, d) arrays with the same N, finite, optionally L2-normalised.

    Raises ValueError naming ``measure`` for: not 2-d, different numbers of rows, fewer than
    ``min_rows`` rows, non-finite values, different dimensions where ``same_dim``, and zero rows
    when asked to normalise them (their direction is undefined).
    """
    X, Y = _matrix(X, "X", measure), _matrix(Y, "Y", measure)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"{measure}: X and Y must pair the same objects row by row, got "
                         f"{X.shape[0]} and {Y.shape[0]} rows")
    if X.shape[0] < min_rows:
        raise ValueError(f"{measure}: needs at least {min_rows} objects, got {X.shape[0]}")
    if same_dim and X.shape[1] != Y.shape[1]:
        raise ValueError(f"{measure}: needs equal dimensions, got d_X={X.shape[1]} and d_Y={Y.shape[1]}")
    if normalize_rows:
        X, Y = unit_rows(X, "X", measure), unit_rows(Y, "Y", measure)
    return X, Y


def _matrix(Z, name: str, measure: str) -> np.ndarray:
    try:
        Z = np.asarray(Z, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{measure}: {name} is not a numeric matrix ({err})") from None
    if Z.ndim != 2 or Z.shape[1] == 0:
        raise ValueError(f"{measure}: {name} must be a 2-d (objects, features) matrix, got shape {Z.shape}")
    bad = ~np.isfinite(Z).all(axis=1)
    if bad.any():
        raise ValueError(f"{measure}: {name} has non-finite values (NaN or inf) in {int(bad.sum())} rows, "
                         f"e.g. rows {np.flatnonzero(bad)[:5].tolist()}")
    return Z


def unit_rows(Z: np.ndarray, name: str = "X", measure: str = "measure") -> np.ndarray:
    """Rows divided by their L2 norms; a zero row has no direction and is an error."""
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    if zero.any():
        raise ValueError(f"{measure}: {name} has {int(zero.sum())} zero rows, which cannot be L2-normalised, "
                         f"e.g. rows {np.flatnonzero(zero)[:5].tolist()}")
    return Z / norms


def centred(Z: np.ndarray) -> np.ndarray:
    return Z - Z.mean(axis=0, keepdims=True)


def padded(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad the narrower matrix's columns to the wider one's dimension."""
    d = max(X.shape[1], Y.shape[1])
    return (np.pad(X, ((0, 0), (0, d - X.shape[1]))), np.pad(Y, ((0, 0), (0, d - Y.shape[1]))))
