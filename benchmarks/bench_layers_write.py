"""Memory of writing a layers file from embedding shards (prints figures; not a test).

The embed job keeps each shard's blocks in its shard file (float16) and ``schema.write_layers``
reads them back one block at a time (``samesky.embed.ShardBlocks``), so the peak is about one
block of every row (N x d read as float16, converted to float32 and back), not N x L x d. This
writes synthetic shards of the given size, then the layers file, and prints the time, the peak
RSS above the baseline, and what holding every block in float32 would take.

Usage:
  python benchmarks/bench_layers_write.py --n 20000 --blocks 24 --d 1024 --shard-size 2048
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--blocks", type=int, default=24)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--shard-size", type=int, default=2048)
    args = ap.parse_args()

    import numpy as np

    from samesky import schema
    from samesky.embed import ShardBlocks, _save_shard

    rng = np.random.default_rng(0)
    ids = np.array([f"obj{i}" for i in range(args.n)])
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, start in enumerate(range(0, args.n, args.shard_size)):
            stop = min(start + args.shard_size, args.n)
            outputs = [rng.normal(size=(stop - start, args.d)).astype(np.float32)]
            outputs += [rng.normal(size=(stop - start, args.d)).astype(np.float16) for _ in range(args.blocks)]
            paths.append(Path(tmp) / f"shard-{i:06d}.npz")
            _save_shard(paths[-1], ids[start:stop], outputs, "fp", start, stop)
            del outputs
        base = peak_rss_mb()
        t0 = time.perf_counter()
        schema.write_layers(Path(tmp) / "layers.h5", ids, ShardBlocks(paths, args.blocks),
                            [f"block {j + 1}" for j in range(args.blocks)], {})
        seconds = time.perf_counter() - t0
        size = (Path(tmp) / "layers.h5").stat().st_size / 1e9
    every_f32 = args.n * args.blocks * args.d * 4 / 1e9
    one_block = args.n * args.d * (2 + 4 + 2) / 1e9
    print(f"N={args.n} blocks={args.blocks} d={args.d} shard={args.shard_size}: layers file {size:.2f} GB "
          f"written in {seconds:.1f} s")
    print(f"peak RSS {peak_rss_mb():.0f} MB (high-water mark {base:.0f} MB before the writer, which raised it by "
          f"{max(0.0, peak_rss_mb() - base):.0f} MB); one block float16+float32+float16: {one_block * 1e3:.0f} MB; "
          f"all blocks in float32 would be {every_f32:.2f} GB")


if __name__ == "__main__":
    main()
