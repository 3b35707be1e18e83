"""Input checks shared by the measures, and the row-block view that lets them read large inputs
without float64 copies: one place that says what a bad pair of matrices is."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rows per float64 block when streaming (4096 x 1536 x 8 bytes = 50 MB).
BLOCK_ROWS = 4096


@dataclass
class Pair:
    """Two checked (N, d) matrices, kept in their own dtype (float32 or float64: no copy), with
    the optional 1 / L2-norm of each row (``sx``, ``sy``) that ``normalize_rows`` applies lazily."""

    X: np.ndarray
    Y: np.ndarray
    sx: np.ndarray | None
    sy: np.ndarray | None

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def blocks(self, rows: int = BLOCK_ROWS):
        """(a, b, X[a:b], Y[a:b]) as float64, rows normalised when asked."""
        for a in range(0, self.n, rows):
            b = min(self.n, a + rows)
            yield a, b, _scaled(self.X[a:b], self.sx, a, b), _scaled(self.Y[a:b], self.sy, a, b)


def _scaled(Z: np.ndarray, s: np.ndarray | None, a: int, b: int) -> np.ndarray:
    Z = np.asarray(Z, dtype=np.float64)
    return Z if s is None else Z * s[a:b, None]


def checked(X, Y, *, normalize_rows: bool, same_dim: bool = False, measure: str = "measure",
            min_rows: int = 2) -> Pair:
    """Check a pair of matrices for ``measure``; raises ValueError naming it for: not 2-d,
    different numbers of rows, fewer than ``min_rows`` rows, non-finite values, different
    dimensions where ``same_dim``, and zero rows when asked to normalise them (no direction)."""
    X, Y = _matrix(X, "X", measure), _matrix(Y, "Y", measure)
    if X.dtype != Y.dtype:  # one precision for both (float32 blocks meet float64 sums otherwise)
        X, Y = X.astype(np.float64), Y.astype(np.float64)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"{measure}: X and Y must pair the same objects row by row, got "
                         f"{X.shape[0]} and {Y.shape[0]} rows")
    if X.shape[0] < min_rows:
        raise ValueError(f"{measure}: needs at least {min_rows} objects, got {X.shape[0]}")
    if same_dim and X.shape[1] != Y.shape[1]:
        raise ValueError(f"{measure}: needs equal dimensions, got d_X={X.shape[1]} and d_Y={Y.shape[1]}")
    sx = _inverse_norms(X, "X", measure) if normalize_rows else None
    sy = _inverse_norms(Y, "Y", measure) if normalize_rows else None
    return Pair(X, Y, sx, sy)


def _matrix(Z, name: str, measure: str) -> np.ndarray:
    Z = getattr(Z, "detach", lambda: Z)()  # a torch tensor: its numpy view
    try:
        Z = np.asarray(Z)
        if Z.dtype == np.float16:  # layers files' blocks: float32 holds them exactly
            Z = Z.astype(np.float32)
        elif Z.dtype not in (np.float32, np.float64):
            Z = Z.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{measure}: {name} is not a numeric matrix ({err})") from None
    if Z.ndim != 2 or Z.shape[1] == 0:
        raise ValueError(f"{measure}: {name} must be a 2-d (objects, features) matrix, got shape {Z.shape}")
    bad = np.zeros(Z.shape[0], bool)
    for a in range(0, Z.shape[0], BLOCK_ROWS):
        bad[a : a + BLOCK_ROWS] = ~np.isfinite(Z[a : a + BLOCK_ROWS]).all(axis=1)
    if bad.any():
        raise ValueError(f"{measure}: {name} has non-finite values (NaN or inf) in {int(bad.sum())} rows, "
                         f"e.g. rows {np.flatnonzero(bad)[:5].tolist()}")
    return Z


def _inverse_norms(Z: np.ndarray, name: str, measure: str) -> np.ndarray:
    """1 / the L2 norm of each row (float64, in blocks); a zero row has no direction: an error."""
    norms = np.empty(Z.shape[0])
    for a in range(0, Z.shape[0], BLOCK_ROWS):
        norms[a : a + BLOCK_ROWS] = np.linalg.norm(np.asarray(Z[a : a + BLOCK_ROWS], np.float64), axis=1)
    zero = norms == 0
    if zero.any():
        raise ValueError(f"{measure}: {name} has {int(zero.sum())} zero rows, which cannot be L2-normalised, "
                         f"e.g. rows {np.flatnonzero(zero)[:5].tolist()}")
    return 1.0 / norms

