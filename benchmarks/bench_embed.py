"""CPU embedding throughput of the smallest real architectures (random weights at the real config).

For each model: write a random-weight checkpoint in its real on-disk format, load it through
``load_embedder`` and time, per batch, reading rows from a preprocessed HDF5 file (I/O), CPU
preprocessing (processor / tokeniser) and the model forward + pooling. Prints objects/s and the
share of time spent outside the forward.

    .venv/bin/python benchmarks/bench_embed.py [--batch-size 8] [--repeats 3] [--models vit-base ...]

``--drift``: what bf16 autocast (opt-in; the paper config runs fp32, as the study did) does to the
embeddings of real-size random-weight models on galaxy-like images: per-object cosine to fp32
(median, min), MKNN(fp32, bf16) of the model with itself, and how much MKNN against another model
(fp32) moves when the model runs in bf16. On CPU this is CPU bf16 autocast.

    .venv/bin/python benchmarks/bench_embed.py --drift [--n 300] [--models vit-base dinov2-small]

``--pipeline``: the parallel input pipeline of ``samesky.embed`` against the forward pass. Per
model: objects/s that the input pipeline (read + prepare in worker processes) delivers with
1, 2 and all available workers; the forward pass's objects/s on the device it runs on; which
of the two bounds the job here; the objects per CPU-second of one worker, r (what one idle core
feeds, unaffected by other processes on a shared machine); and the cores an embed job needs to
keep one GPU busy at the GPU forward rate R of ``resources.EMBED_RATES``: 1 + ceil(R / r) (one
core runs the forward loop), before the cap of ``embed_cpus``. On a GPU machine pass
``--forward-batch 256`` and compare the forward column with R.

    .venv/bin/python benchmarks/bench_embed.py --pipeline [--n 512] [--batch-size 64] [--forward-batch 8] [--models ...]
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from samesky import schema
from samesky.embed import PreparedBatches, input_batches
from samesky.models import get_model, load_embedder, save_tiny
from samesky.models.base import to_device
from samesky.models.resources import EMBED_RATES, embed_cpus
from samesky.surveys import get_survey

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
        prov = {"survey": "hsc", "bands": HSC_BANDS, "zero_point": get_survey("hsc").zero_point}
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


def galaxies(n: int, side: int = 160, seed: int = 0) -> np.ndarray:
    """(n, 3, side, side) uint8: elliptical exponential discs of random size, shape, offset and colour
    on a noisy sky, arcsinh-stretched like the demo's RGB (galaxy-like, so kNN structure is not noise)."""
    rng = np.random.default_rng(seed)
    y, x = (np.mgrid[:side, :side] - side / 2)[:, None]
    dx, dy = rng.normal(0, 3, (2, n, 1, 1))
    angle, q = rng.uniform(0, np.pi, (n, 1, 1)), rng.uniform(0.3, 1.0, (n, 1, 1))
    u, v = (x - dx) * np.cos(angle) + (y - dy) * np.sin(angle), -(x - dx) * np.sin(angle) + (y - dy) * np.cos(angle)
    radius = np.sqrt(u**2 + (v / q) ** 2) / rng.uniform(2, 15, (n, 1, 1))
    colour = rng.uniform(0.3, 1.0, (n, 3, 1, 1)) * rng.lognormal(0, 0.7, (n, 1, 1, 1))
    flux = colour * np.exp(-radius)[:, None] + 0.02 * rng.normal(size=(n, 3, side, side))
    return np.rint(255 * np.clip(np.arcsinh(10 * flux) / np.arcsinh(10), 0, 1)).astype(np.uint8)


def _embed_all(embedder, images: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([embedder.embed(images[i:i + batch_size]).numpy() for i in range(0, len(images), batch_size)])


def drift(keys: list[str], n: int, batch_size: int) -> None:
    """bf16-autocast drift of each model, and its MKNN shift against the next model in ``keys`` (fp32)."""
    from samesky.metrics.mknn import mknn

    images = galaxies(n)
    emb = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in keys:
            src = save_tiny(key, Path(tmp) / key, full_size=True)
            for precision in ("fp32", "bf16"):
                t0 = time.perf_counter()
                emb[key, precision] = _embed_all(load_embedder(key, src, device="cpu", precision=precision),
                                                 images, batch_size)
                print(f"  {key} {precision}: {n} objects in {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"{'model':<16}{'cos median':>11}{'cos min':>9}{'MKNN(fp32,bf16)':>16}{'vs model':>16}"
          f"{'MKNN fp32':>10}{'MKNN bf16':>10}{'|change|':>9}")
    for i, key in enumerate(keys):
        a, b = emb[key, "fp32"], emb[key, "bf16"]
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        other = keys[(i + 1) % len(keys)]
        m32, m16 = mknn(a, emb[other, "fp32"], 10), mknn(b, emb[other, "fp32"], 10)
        print(f"{key:<16}{np.median(cos):>11.6f}{cos.min():>9.5f}{mknn(a, b, 10):>16.4f}{other:>16}"
              f"{m32:>10.4f}{m16:>10.4f}{abs(m32 - m16):>9.4f}")

def input_rate(embedder, pre: Path, n: int, batch_size: int, workers: int) -> tuple[float, float]:
    """Objects/s the input pipeline delivers with ``workers`` processes (start-up included), and
    objects per CPU-second of the workers: the rate one idle core feeds, whatever else runs."""
    batches = [(0, s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    dataset = PreparedBatches(pre, batches, embedder.prepare)
    c0, t0 = os.times(), time.perf_counter()
    try:
        for _ in input_batches(dataset, workers, embedder.device):
            pass  # the workers are joined (and their CPU time counted) when the iteration ends
    finally:
        dataset.close()
    wall, c1 = time.perf_counter() - t0, os.times()
    cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    return n / wall, n / cpu if cpu > 0 else float("nan")


def forward_rate(embedder, pre: Path, batch_size: int, repeats: int) -> float:
    """Objects/s of the forward pass alone (inputs already prepared and on the device)."""
    _, data = schema.read_preprocessed(pre, 0, batch_size)
    inputs = to_device(embedder.prepare(data), embedder.device)
    embedder.run(inputs)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        embedder.run(inputs)
    return batch_size * repeats / (time.perf_counter() - t0)


def bench_pipeline(key: str, n: int, batch_size: int, forward_batch: int, repeats: int, device: str,
                   precision: str) -> dict:
    spec = get_model(key)
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        src = save_tiny(key, Path(tmp) / "model", full_size=True)
        embedder = load_embedder(key, src, device=device, precision=precision)
        pre = _input_file(Path(tmp) / "pre.h5", spec.input_kind, n)
        with schema.open_h5(pre) as f:
            embedder.bind(schema.read_provenance(f))
        measured = {w: input_rate(embedder, pre, n, batch_size, w) for w in sorted({1, 2, cores})}
        fwd = forward_rate(embedder, pre, min(forward_batch, n), repeats)
    rates = {w: wall for w, (wall, _) in measured.items()}
    gpu_rate = EMBED_RATES[key][0]
    return {"rates": rates, "per_core": measured[1][1], "per_core_2": measured[2][1], "forward": fwd,
            "device": f"{embedder.device} {embedder.precision}", "bound": "input" if rates[cores] < fwd else "forward",
            "gpu_rate": gpu_rate, "gpu_cores": 1 + math.ceil(gpu_rate / measured[1][1]), "table_cores": embed_cpus(key)}


PIPELINE_LEGEND = """\
in Nw/s: wall-clock objects/s with N input workers (start-up included). /core-s: objects per
CPU-second of the one worker, what an idle core feeds; 2w /c-s: the same for two workers (equal
when 2 idle cores give twice the rate). fwd/s: the forward pass alone on the device. bound: the
slower of the input (all workers) and the forward here. GPU fwd/s: resources.EMBED_RATES. cores:
1 + ceil(GPU fwd/s / (/core-s)), one core runs the forward loop and the others prepare inputs;
table: resources.embed_cpus (capped at MAX_EMBED_CPUS)."""


def main_pipeline(args) -> None:
    cores = len(os.sched_getaffinity(0))
    print(f"torch {torch.__version__}, {cores} cores, {torch.get_num_threads()} threads in the main process, "
          f"{args.n} objects, input batch {args.batch_size}, forward batch {args.forward_batch}")
    print(f"{'model':<18}{'in 1w/s':>9}{'in 2w/s':>9}{f'in {cores}w/s':>9}{'2w/1w':>7}{'/core-s':>9}{'2w /c-s':>9}"
          f"{'fwd/s':>9}{'device':>12}{'bound':>8}{'GPU fwd/s':>11}{'cores':>7}{'table':>7}")
    for key in args.models:
        r = bench_pipeline(key, args.n, args.batch_size, args.forward_batch, args.repeats, args.device, args.precision)
        rates = r["rates"]
        print(f"{key:<18}{rates[1]:>9.1f}{rates[2]:>9.1f}{rates[cores]:>9.1f}{rates[2] / rates[1]:>7.2f}"
              f"{r['per_core']:>9.1f}{r['per_core_2']:>9.1f}{r['forward']:>9.1f}{r['device']:>12}{r['bound']:>8}"
              f"{r['gpu_rate']:>11.0f}{r['gpu_cores']:>7d}{r['table_cores']:>7d}", flush=True)
    print(PIPELINE_LEGEND)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 (64 for --pipeline)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--drift", action="store_true", help="bf16 vs fp32 embeddings and MKNN (see module doc)")
    parser.add_argument("--pipeline", action="store_true", help="input pipeline vs forward pass (see docstring)")
    parser.add_argument("--n", type=int, default=None, help="objects for --drift (300) or --pipeline (512)")
    parser.add_argument("--forward-batch", type=int, default=8, help="--pipeline: batch of the forward pass "
                        "(small for a CPU; a GPU wants hundreds)")
    parser.add_argument("--device", default="auto", help="--pipeline: device of the forward pass")
    parser.add_argument("--precision", default="auto", help="--pipeline: precision of the forward pass")
    args = parser.parse_args()
    if args.drift:
        keys = args.models or ["vit-base", "dinov2-small"]
        args.n = args.n or 300
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.n} galaxy-like 160x160 images, "
              f"real-size random weights, bf16 = CPU autocast, k = 10")
        drift(keys, args.n, args.batch_size or 8)
        return
    args.models = args.models or DEFAULT
    if args.pipeline:
        args.n, args.batch_size = args.n or 512, args.batch_size or 64
        return main_pipeline(args)
    args.batch_size = args.batch_size or 8
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"{args.repeats} timed batches, fp32 CPU")
    print(f"{'model':<18}{'params (M)':>11}{'objects/s':>11}{'I/O %':>8}{'prep %':>8}{'outside fwd %':>15}")
    for key in args.models:
        r = bench(key, args.batch_size, args.repeats)
        print(f"{r['model']:<18}{r['params_m']:>11.1f}{r['objects_s']:>11.1f}{r['io_pct']:>8.1f}"
              f"{r['prepare_pct']:>8.1f}{r['outside_pct']:>15.1f}")


if __name__ == "__main__":
    main()
