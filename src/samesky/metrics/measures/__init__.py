"""The field's representational-similarity measures as exact pure functions (issue #27).

Each measure is ``f(X, Y, *, normalize_rows=..., **params) -> float`` on (N, d) arrays whose rows
are paired objects; its docstring names the reference it follows (repository, file, line at the
commit read), its direction (similarity or distance) and its range. ``normalize_rows`` L2-normalises
every row first, as platonic-rep's ``compute_score`` does before every measure; each measure's
default is its reference's. They are checked against the references' own outputs in
``tests/golden/measures.npz`` (made by ``tests/golden/make_measures_golden.py``).

References read: UniverseTBD/platonic-universe ("pu") 6672072, minyoungg/platonic-rep dcd76ba,
ahwillia/netrep 0186b8a.
"""


class MeasureEstimator:
    """A measure on one aligned pair (``metrics.pair.Pair``) as the registry's estimators are
    called: ``score()``, and ``null(pi)``, the measure recomputed with side B's rows permuted by
    ``pi`` (a feature-space draw: the registry caps their number)."""

    def __init__(self, fn, pair, params: dict):
        self.fn, self.Za, self.Zb, self.params = fn, pair.Za, pair.Zb, params

    def score(self) -> float:
        return float(self.fn(self.Za, self.Zb, **self.params))

    def null(self, pi) -> float:
        return float(self.fn(self.Za, self.Zb[pi], **self.params))
