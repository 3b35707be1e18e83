"""Golden: the authors' later image recipe (arcsinh), run from a checkout of UniverseTBD/platonic-universe.

Usage: python tests/golden/authors_arcsinh.py <checkout of UniverseTBD/platonic-universe> [commit]
Writes tests/data/authors_arcsinh.npz: for fixed inputs (``inputs()``, also used by the test),
the per-band p1/p99 from the authors' ``pu.percentiles`` helpers (``_process_image`` then
``_percentiles_for_bands``: crop, zoom, pooled percentiles) and the uint8 RGB images from
``pu.preprocess.flux_to_pil(norm_mode="arcsinh", resize_mode="match")``.
Modules the recipe imports but does not use on this path (cv2 and skimage for the Otsu mask,
which a forced extent ignores; torchvision and astropt for other preprocessors; the package's
__init__, which loads the metrics) are stubbed.
"""
import json
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

BANDS = {"hsc": 5, "legacysurvey": 4, "jwst": 7}
SIDE = {"hsc": 160, "legacysurvey": 160, "jwst": 96}


def inputs(survey: str, n: int = 3) -> np.ndarray:
    """(n, bands, side, side) float32: a centred elliptical galaxy per image over noise."""
    rng = np.random.default_rng({"hsc": 1, "legacysurvey": 2, "jwst": 3}[survey])
    side = SIDE[survey]
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    out = np.empty((n, BANDS[survey], side, side), np.float32)
    for i in range(n):
        for b in range(BANDS[survey]):
            r = np.hypot(xx * (1 + 0.3 * i), yy) / (3 + i + 0.5 * b)
            out[i, b] = (2 + b) * np.exp(-r) + rng.normal(0, 0.05 * (1 + b), (side, side))
    return out


def _stub(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def main(checkout: str, commit: str = "") -> None:
    import datasets  # noqa: F401  (imported before the stubs: it probes for torchvision)
    _stub("cv2", GaussianBlur=lambda img, *a, **k: img)
    _stub("skimage")
    _stub("skimage.filters", threshold_otsu=lambda img: float(np.mean(img)))
    _stub("skimage.measure", label=lambda mask: mask.astype(int))
    _stub("torchvision")
    _stub("torchvision.transforms", Compose=lambda *a: None, Lambda=lambda *a: None)
    _stub("astropt")
    _stub("astropt.local_datasets", GalaxyImageDataset=object)
    _stub("pu", __path__=[str(Path(checkout) / "src" / "pu")])  # the package without its __init__ (metrics, CLI)
    from pu import percentiles as pp
    from pu import preprocess as ppre

    out = {"source": np.array(f"UniverseTBD/platonic-universe@{commit}")}
    table = {}
    for survey in BANDS:
        x = inputs(survey)
        pixels = np.concatenate([pp._process_image({"flux": im}, survey).reshape(-1, 3) for im in x])
        table[survey] = pp._percentiles_for_bands(pixels, pp.BAND_CONFIG[survey]["names"])
        names = pp.BAND_CONFIG[survey]["names"]
        out[f"{survey}_bands"] = np.array(names)
        out[f"{survey}_p1"] = np.array([table[survey][b]["p1"] for b in names])
        out[f"{survey}_p99"] = np.array([table[survey][b]["p99"] for b in names])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "percentiles.json"
        path.write_text(json.dumps(table))
        os.environ["PU_PERCENTILES_PATH"] = str(path)
        for survey in BANDS:
            out[f"{survey}_rgb"] = np.stack([ppre.flux_to_pil({"flux": im}, survey, [survey], resize=True,
                                                              norm_mode="arcsinh", resize_mode="match")
                                             for im in inputs(survey)])
    target = Path(__file__).resolve().parents[1] / "data" / "authors_arcsinh.npz"
    np.savez_compressed(target, **out)
    print(f"wrote {target}: " + ", ".join(f"{k} {v.shape}" for k, v in out.items()))


if __name__ == "__main__":
    main(*sys.argv[1:])
