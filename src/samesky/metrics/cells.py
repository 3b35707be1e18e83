"""Helpers the metrics' batched layer-atlas hooks share (``registry.Metric.layer_cells``): how cells
are grouped and how much working memory a batch of null draws may take."""
from __future__ import annotations

BATCH_BYTES = {"cpu": 256 << 20, "cuda": 4 << 30}  # working memory of one batch of batched null draws


def by_a(cells) -> dict[int, list[int]]:
    """Side B's blocks of the cells, grouped by side A's block."""
    out: dict[int, list[int]] = {}
    for i, j in cells:
        out.setdefault(i, []).append(j)
    return out


def by_b(cells) -> dict[int, list[int]]:
    """Side A's blocks of the cells, grouped by side B's block: a batch of draws holds one B
    block's relabelled graph at a time (GPU memory does not grow with L_b)."""
    out: dict[int, list[int]] = {}
    for i, j in cells:
        out.setdefault(j, []).append(i)
    return out
