"""``samesky.compare``: any two embeddings -> the workflow's scores, null, interval and calibrated score.

The same statistics as the workflow's compare jobs (``metrics.compare.pair_statistics``) with the
same defaults (config ``metrics``, read from the config schema) and the same seed, so a pair of
the workflow's embedding files scores exactly as its row of ``results/<run_name>/tables/scores.csv``.
The command line (``samesky compare``) calls this function.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from . import sources

log = logging.getLogger(__name__)

# Settings of config ``metrics`` that the scores depend on (plan.Plan.metric_params).
SETTINGS = ("names", "k", "null_draws", "subsampling_splits", "feature_space_draws", "ci", "alpha", "cka_null", "seed")
PAIRING = "pairing"  # the column saying how rows were paired: 'id' or 'row'


def defaults() -> dict:
    """The workflow's defaults of ``SETTINGS`` (config schema, ``metrics``: the one place of them)."""
    import yaml

    from .config import SCHEMA

    if not SCHEMA.exists():
        raise FileNotFoundError(f"{SCHEMA}: samesky reads its defaults from the workflow's config schema in its "
                                f"source tree; install it from a clone with 'pip install -e .' (as make does)")
    props = yaml.safe_load(SCHEMA.read_text())["properties"]["metrics"]["properties"]
    return {key: props[key]["default"] for key in SETTINGS}


MODEL_FIELDS = ("family", "size_a", "size_b", "params_a", "params_b")  # scores.csv's, from the model keys


def columns() -> list[str]:
    """The columns of the returned table: those of ``results/<run_name>/tables/scores.csv`` (``source``: the
    two sources), then ``pairing``."""
    from .report.records import CALIBRATION_FIELDS, FIELDS

    return [*FIELDS, *CALIBRATION_FIELDS, "null_method", "source", *MODEL_FIELDS, PAIRING]


def _model_fields(model_a: str, model_b: str) -> dict:
    """family (of side B, as ``report.gather``), sizes and parameter counts where the sides are
    models of the registry (workflow files); empty otherwise."""
    from .models.registry import MODELS
    from .report.records import split_model

    out = {}
    for side, model in (("a", model_a), ("b", model_b)):
        try:
            family, size = split_model(model)
        except ValueError:
            family = size = None
        out[f"size_{side}"] = size
        out[f"params_{side}"] = MODELS[model].params if model in MODELS else None
        if side == "b":
            out["family"] = family
    return out


def compare(a, b, *, metrics: list[str] | None = None, k: int | None = None, null_draws: int | None = None,
            subsampling_splits: int | None = None, feature_space_draws: int | None = None, ci: float | None = None,
            alpha: float | None = None, seed: int | None = None, cka_null: str | None = None,
            params: dict[str, dict] | None = None, column: str | None = None, id_column: str | None = None,
            column_b: str | None = None, id_column_b: str | None = None):
    """Score two embeddings with the registry's metrics, each with its permutation null, subsampling
    interval and calibrated score; returns a pandas DataFrame, one row per metric. A pairing-free
    measure (``Metric.pairing_free``) has its score and interval only: null_mean, p_value, tau and
    calibrated are empty and null_method is 'pairing_free'.

    ``a``, ``b``: paths (samesky HDF5, .npy, .npz, parquet, a Hugging Face dataset directory),
    2-D arrays or DataFrames (``sources.load``). ``column``/``id_column`` name the vector and id
    columns (of both sides; ``column_b``/``id_column_b`` override them for B). Objects are joined
    by id where both sides have ids, else paired by row (column ``pairing``). Settings left None
    take the workflow's defaults (``defaults()``); ``params``: ``{metric: {name: value}}`` beyond k.
    """
    import pandas as pd

    chosen = {"names": metrics, "k": k, "null_draws": null_draws, "subsampling_splits": subsampling_splits,
              "feature_space_draws": feature_space_draws, "ci": ci, "alpha": alpha, "seed": seed,
              "cka_null": cka_null}
    settings = {**defaults(), **{key: v for key, v in chosen.items() if v is not None}}
    names = list(settings.pop("names"))
    _check_params(names, params or {})
    same = _same_source(a, b, (column, id_column), (column_b or column, id_column_b or id_column))
    side_a = sources.load(a, column, id_column, name="A")
    side_b = side_a if same else sources.load(b, column_b or column, id_column_b or id_column, name="B")
    pairing = sources.pairing(side_a, side_b, same)
    log.info("A: %s, %d x %d; B: %s, %d x %d; paired by %s", side_a.description, *side_a.array.shape,
             side_b.description, *side_b.array.shape, "object id" if pairing == "id" else "row (positional)")
    log.info("scoring %s with k=%d, %d null draws, %d subsampling splits (this can take a while)",
             ", ".join(names), settings["k"], settings["null_draws"], settings["subsampling_splits"])
    n, n_excluded, stats = _score(side_a, side_b, same, names, settings, params)
    comparison = _comparison(a, b, side_a, side_b, same)
    rows = [{**comparison, "n": n, "n_excluded": n_excluded, "metric": name, **st, PAIRING: pairing,
             "source": f"{side_a.description} vs {side_b.description}",
             **_model_fields(comparison["model_a"], comparison["model_b"])} for name, st in stats.items()]
    df = pd.DataFrame(rows).reindex(columns=columns())
    df.attrs.update(ci=settings["ci"], alpha=settings["alpha"])
    return df


def _score(a: sources.Embeddings, b: sources.Embeddings, same: bool, names: list[str], settings: dict,
           params: dict | None):
    """The one call into ``samesky.metrics``: pairs the rows (by id as the compare jobs do, or by
    row) and scores them. As in the workflow, each side's kNN graph is computed on the whole side
    at the width the knn_graph jobs cache (``Plan.graph_width``) and restricted to the paired rows, and
    a side that keeps every row takes its Gram invariants from that graph's job
    (``knn.graph_and_invariants``), so every number equals the compare job's. Returns (n,
    n_excluded, {metric: statistics})."""
    from .metrics.compare import common_rows, pair_statistics, restrict
    from .metrics.knn import graph_and_invariants
    from .metrics.pair import Pair
    from .metrics.registry import METRICS, cached_graph_width
    from .metrics.rv_null import Invariants

    k = settings["k"]
    local = any(METRICS[name].uses_knn for name in names)
    closed = settings.get("cka_null", "closed_form") == "closed_form" and any(
        METRICS[name].uses_gram_invariants for name in names)
    width = cached_graph_width(names, k, settings["subsampling_splits"])
    rows, n_excluded = (None, None), 0
    if not (same or a.positional or b.positional):
        *rows, n_excluded = common_rows(a.ids, b.ids, a.description, b.description, k)
    sides = []
    for side, rows_side in zip((a, b), rows):
        whole = closed and rows_side is None  # as compare_files' cached_invariants: only for every row
        graph, invariants = None, None
        if local or whole:
            indices, similarity, record = graph_and_invariants(
                side.array, max(k, min(width, len(side.array) - 1)), invariants=whole)
            graph = (indices, similarity) if local else None
            invariants = {kind: Invariants.from_dict(d) for kind, d in record.items()} if record else None
        sides.append((*restrict(side.array, graph, rows_side, side.description), invariants))
        if same:
            sides.append(sides[0])
            break
    (Za, ga, inv_a), (Zb, gb, inv_b) = sides
    pair = Pair(Za, Zb, ga, gb, invariants=(inv_a, inv_b))
    return pair.n, n_excluded, pair_statistics(pair, names, params=params, **settings)


def _check_params(names: list[str], params: dict) -> None:
    from .metrics.registry import get_metric

    for name in names:
        get_metric(name)  # unknown names: the registry's error, listing the known ones
    for name, values in params.items():
        get_metric(name).check_params(values, f"params.{name}")


def _same_source(a, b, options_a, options_b) -> bool:
    """Whether B is A (same object, or same file with the same columns): the shuffled-self null."""
    if a is b:
        return options_a == options_b
    if isinstance(a, (str, os.PathLike)) and isinstance(b, (str, os.PathLike)):
        try:
            return os.path.samefile(a, b) and options_a == options_b
        except OSError:
            return False
    return False


def _comparison(a, b, side_a: sources.Embeddings, side_b: sources.Embeddings, same: bool) -> dict:
    """The comparison fields of the records: a workflow embedding file
    (``results/<run_name>/embeddings/{crossmatch}/{survey}/{model}.h5``) names its crossmatch, survey and model,
    as the compare job would; any other source its file stem (or A/B) and column."""
    from .plan import Comparison, comparison_kind

    sides = [_where(src, side) for src, side in ((a, side_a), (b, side_b))]
    (xm_a, survey_a, model_a), (xm_b, survey_b, model_b) = sides
    if xm_a and xm_a == xm_b:
        kind = comparison_kind(survey_a, model_a, survey_b, model_b)
    else:
        kind = "self" if same else "pair"
    crossmatch = xm_a if xm_a == xm_b else ""
    return Comparison(kind, crossmatch, survey_a, model_a, survey_b, model_b).as_dict()


def _where(src, side: sources.Embeddings) -> tuple[str, str, str]:
    if not isinstance(src, (str, os.PathLike)):
        return "", side.column or "", side.description
    path = Path(src)
    if path.suffix in sources.HDF5 and len(path.parts) >= 4 and path.parts[-4] == "embeddings":
        return path.parts[-3], path.parts[-2], path.stem
    return "", side.column or "", path.stem if path.is_file() else path.name
