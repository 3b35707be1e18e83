"""Distance correlation (Szekely, Rizzo & Bakirov 2007), the V-statistic, as PyPI ``dcor``'s
``distance_correlation`` (dcor 0.7). Beyond pu and platonic-rep (issue #27)."""
from __future__ import annotations

import numpy as np

from ._inputs import checked
from ._tiles import Pairwise, centred_sums


def distance_correlation(X, Y, *, normalize_rows: bool = False) -> float:
    """dCor(X, Y) = sqrt(dCov^2(X, Y) / sqrt(dVar^2(X) dVar^2(Y))) from the double-centred
    Euclidean distance matrices (the biased V-statistic, ``dcor.distance_correlation``).
    Similarity in [0, 1]; 0 if and only if independent (in the population). Sums over row tiles,
    never an N x N matrix: O(N^2 (d_X + d_Y)) time."""
    p = checked(X, Y, normalize_rows=normalize_rows, measure="distance_correlation")
    Px, Py = Pairwise(p.X, "euclidean", p.sx), Pairwise(p.Y, "euclidean", p.sy)
    n = p.n
    s = centred_sums(Px.block, Py.block, n)
    den = np.sqrt(s.centred("kk") * s.centred("ll"))
    return 0.0 if den == 0 else float(np.sqrt(max(s.centred("kl") / den, 0.0)))
