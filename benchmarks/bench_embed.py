"""CPU embedding throughput of the smallest real architectures (random weights at the real config).

For each model: write a random-weight checkpoint in its real on-disk format, load it through
``load_embedder`` and time, per batch, reading rows from a preprocessed HDF5 file (I/O), CPU
preprocessing (processor / tokeniser) and the model forward + pooling. Prints objects/s and the
share of time spent outside the forward.

    .venv/bin/python benchmarks/bench_embed.py [--batch-size 8] [--repeats 3] [--models vit-base ...]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from samesky import schema
from samesky.models import get_model, load_embedder, save_tiny

DEFAULT = ["vit-base", "dinov2-small", "convnextv2-nano", "astropt-small", "specformer-base", "aion-base"]
HSC_BANDS = ["g", "r", "i", "z", "y"]


def _input_file(path: Path, kind: str, n: int) -> Path:
    """Random inputs of the model's kind at the real sizes (HSC cutouts, DESI grid)."""
    rng = np.random.default_rng(0)
    prov = {}
    if kind == schema.RGB:
        data = rng.integers(0, 256, (n, 3, 160, 160), dtype=np.uint8)
    elif kind == schema.FLUX:  # AION: raw fluxes; its codec (tokenisation) runs inside the forward
        data = rng.normal(size=(n, len(HSC_BANDS), 160, 160)).astype(np.float32)
        prov = {"survey": "hsc", "bands": HSC_BANDS}
    else:
        data = (rng.normal(size=(n, 7781)) + 3).astype(np.float32)
    schema.write_preprocessed(path, [f"o{i}" for i in range(n)], data, prov)
    return path


def bench(key: str, batch_size: int, repeats: int) -> dict:
    spec = get_model(key)
    with tempfile.TemporaryDirectory() as tmp:
        src = save_tiny(key, Path(tmp) / "model", full_size=True)
        embedder = load_embedder(key, src, device="cpu", precision="fp32")
        params = sum(p.numel() for p in embedder.model.parameters()) / 1e6
        pre = _input_file(Path(tmp) / "pre.h5", spec.input_kind, batch_size * (repeats + 1))
        with schema.open_h5(pre) as f:
            embedder.bind(schema.read_provenance(f))
        times = {"io": 0.0, "prepare": 0.0, "forward": 0.0}
        for r in range(repeats + 1):  # the first batch warms up and is not counted
            t0 = time.perf_counter()
            _, data = schema.read_preprocessed(pre, r * batch_size, (r + 1) * batch_size)
            t1 = time.perf_counter()
            inputs = embedder.prepare(data)
            t2 = time.perf_counter()
            out = embedder.run(inputs)
            t3 = time.perf_counter()
            assert out.shape == (batch_size, spec.dim), out.shape
            if r:
                times["io"] += t1 - t0
                times["prepare"] += t2 - t1
                times["forward"] += t3 - t2
    total = sum(times.values())
    return {"model": key, "params_m": params, "objects_s": batch_size * repeats / total,
            "io_pct": 100 * times["io"] / total, "prepare_pct": 100 * times["prepare"] / total,
            "outside_pct": 100 * (times["io"] + times["prepare"]) / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=DEFAULT)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"{args.repeats} timed batches, fp32 CPU")
    print(f"{'model':<18}{'params (M)':>11}{'objects/s':>11}{'I/O %':>8}{'prep %':>8}{'outside fwd %':>15}")
    for key in args.models:
        r = bench(key, args.batch_size, args.repeats)
        print(f"{r['model']:<18}{r['params_m']:>11.1f}{r['objects_s']:>11.1f}{r['io_pct']:>8.1f}"
              f"{r['prepare_pct']:>8.1f}{r['outside_pct']:>15.1f}")


if __name__ == "__main__":
    main()
