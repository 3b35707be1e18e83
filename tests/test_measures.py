"""The field's measures (samesky.metrics.measures) against the references' own outputs, plus
properties that can fail: invariances, direction on identical vs independent data, bad input.

Goldens: tests/golden/measures.npz, made by tests/golden/make_measures_golden.py from checkouts of
pu, platonic-rep and netrep and the PyPI oracles; measures.json says, per value, the reference and
the tolerance, on |ours - golden| / max(1, |golden|): 1e-10 where the reference is float64 and
deterministic, looser where it is not (each with its reason in the JSON).
"""
import json
from pathlib import Path

import numpy as np
import pytest

from samesky.metrics.measures import cca, dcor, geometric, information, kernel, neighbours, regression, rsa, spectral

GOLDEN = Path(__file__).parent / "golden"
META = json.loads((GOLDEN / "measures.json").read_text())
DATA = np.load(GOLDEN / "measures.npz")

FUNCTIONS = {
    "jaccard": neighbours.jaccard, "cycle_knn": neighbours.cycle_knn, "lcs_knn": neighbours.lcs_knn,
    "edit_distance_knn": neighbours.edit_distance_knn,
    "rbf_cka": kernel.rbf_cka, "mmd": kernel.mmd,
    "svcca": cca.svcca, "pwcca": cca.pwcca, "mean_cca": cca.mean_cca,
    "procrustes": geometric.procrustes, "cosine_matched": geometric.cosine_matched,
    "frechet": geometric.frechet, "shape_angular": geometric.shape_angular,
    "rsa": rsa.rsa, "linear_r2": regression.linear_r2,
    "bidirectional_linear_r2": regression.bidirectional_linear_r2,
    "tucker_congruence": spectral.tucker_congruence, "eigenspectrum": spectral.eigenspectrum,
    "riemannian": spectral.riemannian, "gaussian_kl": information.gaussian_kl,
    "gaussian_js": information.gaussian_js, "ksg_mutual_information": information.ksg_mutual_information,
    "distance_correlation": dcor.distance_correlation,
}


def _pair(pair):
    return DATA["input_A"], DATA["input_B" if pair == "ab" else "input_C"]


def ours(key):
    g = META["golden"][key]
    X, Y = _pair(g["pair"])
    return FUNCTIONS[g["measure"]](X, Y, normalize_rows=g["normalize_rows"], **g["params"])


@pytest.mark.parametrize("key", sorted(META["golden"]))
def test_equals_reference(key):
    golden = float(DATA[key])
    tol = META["golden"][key]["tol"]
    assert abs(ours(key) - golden) <= tol * max(1.0, abs(golden)), META["golden"][key]["where"]


def test_every_measure_has_a_golden():
    assert set(FUNCTIONS) == {g["measure"] for g in META["golden"].values()}
