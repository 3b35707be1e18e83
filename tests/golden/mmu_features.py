"""Golden: the features each Multimodal Universe builder declares, produced by the builders themselves.

Usage: python tests/golden/mmu_features.py <checkout of MultimodalUniverse/MultimodalUniverse> [commit]
Writes tests/data/mmu_builder_features.json: {survey: Features.to_dict()} from each builder's
``_info()`` (run from the checkout, not copied), which tests/test_mmu.py compares with
samesky.mmu.builder_features field by field.
"""
import importlib.util
import json
import sys
from pathlib import Path

BUILDERS = {"hsc": ("scripts/hsc/hsc.py", "HSC"), "legacysurvey": ("scripts/legacysurvey/legacysurvey.py", "DECaLS"),
            "jwst": ("scripts/jwst/jwst.py", "JWST"), "desi": ("scripts/desi/desi.py", "DESI"),
            "sdss": ("scripts/sdss/sdss.py", "SDSS")}


def main(checkout: str, commit: str = "") -> None:
    out = {"_source": f"MultimodalUniverse/MultimodalUniverse@{commit}"}
    for survey, (path, cls_name) in BUILDERS.items():
        spec = importlib.util.spec_from_file_location(f"mmu_{survey}", Path(checkout) / path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cls = getattr(module, cls_name)
        if survey == "jwst":  # _info reads self.config: the default config's image size and bands
            obj = cls.__new__(cls)
            obj.config = module.CustomBuilderConfig(name="all")
            info = cls._info(obj)
        else:
            info = cls._info()
        out[survey] = info.features.to_dict()
    target = Path(__file__).resolve().parents[1] / "data" / "mmu_builder_features.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main(*sys.argv[1:])
