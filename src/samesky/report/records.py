"""Metric records -> one tidy table, plus the labels and orderings that tables and figures share
(read from the registries: ``Family.label``, ``Metric.label``/``percent``, ``Survey.label``/``order``)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from ..metrics.registry import METRICS, PAIRING_FREE
from ..models.registry import UNTRAINED, family_label  # (tables, figures, trends and probes import it from here)
from ..plan import COMPARISON_FIELDS
from ..schema import SchemaError, read_metric_records
from ..surveys import SURVEYS

FIELDS = (
    *COMPARISON_FIELDS, "n", "n_excluded", "metric", "k",
    "score", "ci_low", "ci_high", "null_mean", "null_std", "p_value", "null_draws", "subsampling_splits",
)
# Calibration (stats.calibrated): optional when reading, None for records written before it existed.
CALIBRATION_FIELDS = ("calibrated", "tau", "alpha", "calibrated_low", "calibrated_high")
NULL_METHODS = ("permutation", "closed_form", PAIRING_FREE)
TEXT_FIELDS = (*COMPARISON_FIELDS, "metric")
KINDS = ("intramodal", "crossmodal", "self", "truth")
KEY = TEXT_FIELDS  # a record is one metric of one comparison


class RecordError(ValueError):
    """A metric record file is malformed; the message names the file and the field."""


def calibrated_view(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``score`` replaced by the calibrated score, for the calibrated tables, trend
    tests and figures. Its interval is the calibrated interval (``stats.calibrated_interval``: the
    score's subsampling interval through the same map); it has no null band (the null's calibrated
    score is 0 with probability >= 1 - alpha by construction), so those fields are NaN, and the
    self records (which only feed the null column) and the pairing-free measures (``has_null``: no
    calibrated score is defined for them) are left out."""
    if "calibrated" not in df:
        raise KeyError("records have no 'calibrated' field; recompute them with the current compare rule")
    out = df[(df["kind"] != "self") & df["metric"].map(has_null)].copy()
    out.attrs["view"] = "calibrated"  # higher is more aligned for every metric (trends.trend_steps)
    out["score"] = pd.to_numeric(out["calibrated"])
    out["ci_low"], out["ci_high"] = (pd.to_numeric(out.get(f, float("nan"))) for f in ("calibrated_low", "calibrated_high"))
    for field in ("null_mean", "null_std"):
        out[field] = float("nan")
    return out


def split_model(key: str) -> tuple[str, str]:
    """``'dinov2-giant'`` -> ``('dinov2', 'giant')`` (the size is the part after the last '-')."""
    family, sep, size = str(key).rpartition("-")
    if not (sep and family and size):
        raise ValueError(f"model key {key!r} is not of the form '{{family}}-{{size}}'")
    return family, size


def size_label(size: str) -> str:
    return size[:1].upper() + size[1:]


def embedding_label(survey: str, model: str) -> str:
    """How tables and figures name one embedding: 'HSC DINOv2 Giant'; an untrained control's
    tag after its size, 'HSC AION-1 Base (untrained)'."""
    family, size = split_model(model)
    trained = family.removesuffix(UNTRAINED)
    return (f"{survey_label(survey)} {family_label(trained)} {size_label(size)}"
            + (" (untrained)" if trained != family else ""))


def survey_label(survey: str) -> str:
    return SURVEYS[survey].label if survey in SURVEYS else survey


# Names the registries do not know (records of another version) fall back to their key and sort last.
def metric_label(metric: str) -> str:
    return METRICS[metric].label if metric in METRICS else metric


def is_percent(metric: str) -> bool:
    """Bounded by 1 (``Metric.percent``): shown as a percentage, like the paper's MKNN."""
    return metric in METRICS and METRICS[metric].percent


def has_null(metric: str) -> bool:
    """Whether a permutation null, and so a p-value, tau and calibrated score, is defined for the
    metric: not for a pairing-free measure (``Metric.pairing_free``). Unknown metrics are taken as having one."""
    return metric not in METRICS or not METRICS[metric].pairing_free


def raw_unit(metric: str) -> tuple[float, str]:
    """(factor, axis unit) of a raw score: percent for scores bounded by 1, nats for mutual
    information (``Metric.scale``), none otherwise."""
    if is_percent(metric):
        return 100.0, " (%)"
    return 1.0, " (nats)" if metric in METRICS and METRICS[metric].scale == "nats" else ""


def higher_is_aligned(metric: str) -> bool:
    """Whether a higher raw score means more aligned (``Metric.direction``: a similarity); a
    calibrated score always does. Unknown metrics are taken as similarities."""
    return metric not in METRICS or METRICS[metric].direction == "similarity"


def score_axis(metric: str, what_score: str) -> str:
    """The words an axis adds after a score: which way is aligned, where a lower score is."""
    return " (lower is more aligned)" if what_score == "score" and not higher_is_aligned(metric) else ""


def survey_rank(survey: str) -> tuple[int, str]:
    """Sort key of table columns and figure panels: ``Survey.order`` (the reference survey last)."""
    return (SURVEYS[survey].order if survey in SURVEYS else len(SURVEYS), survey)


def metric_order(metrics: Iterable[str]) -> list[str]:
    """The registry's order (MKNN, the paper's metric, first), unknown metrics after it alphabetically."""
    rank = {name: i for i, name in enumerate(METRICS)}
    return sorted(set(metrics), key=lambda m: (rank.get(m, len(rank)), m))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_record(rec, path: Path, i: int) -> dict:
    where = f"{path}: record {i}"
    if not isinstance(rec, dict):
        raise RecordError(f"{where} is not an object")
    missing = [f for f in FIELDS if f not in rec]
    if missing:
        raise RecordError(f"{where} is missing field(s) {', '.join(map(repr, missing))}")
    for field in TEXT_FIELDS:
        if not isinstance(rec[field], str) or not rec[field]:
            raise RecordError(f"{where}: field {field!r} must be a non-empty string, got {rec[field]!r}")
    if rec["kind"] not in KINDS:
        raise RecordError(f"{where}: field 'kind' is {rec['kind']!r}, expected one of {KINDS}")
    if not _is_number(rec["score"]) or not math.isfinite(rec["score"]):
        raise RecordError(f"{where}: field 'score' must be a finite number, got {rec['score']!r}")
    for field in set(FIELDS) - set(TEXT_FIELDS) - {"score"}:
        if rec[field] is not None and not _is_number(rec[field]):
            raise RecordError(f"{where}: field {field!r} must be a number or null, got {rec[field]!r}")
    for side in ("model_a", "model_b"):
        try:
            split_model(rec[side])
        except ValueError as err:
            raise RecordError(f"{where}: field {side!r}: {err}") from None
    if rec["kind"] in ("intramodal", "self") and split_model(rec["model_a"])[0] != split_model(rec["model_b"])[0]:
        raise RecordError(f"{where}: {rec['kind']} record compares different families "
                          f"{rec['model_a']!r} and {rec['model_b']!r}")
    out = {f: rec[f] for f in FIELDS}
    for field in CALIBRATION_FIELDS:
        value = rec.get(field)
        if value is not None and not _is_number(value):
            raise RecordError(f"{where}: field {field!r} must be a number or null, got {value!r}")
        out[field] = value
    method = rec.get("null_method")
    if method is not None and method not in NULL_METHODS:
        raise RecordError(f"{where}: field 'null_method' is {method!r}, expected one of {NULL_METHODS} or null")
    out["null_method"] = method
    return out


def read_records(path: str | os.PathLike) -> list[dict]:
    """The validated records of one metric JSON file ``{"records": [...]}``."""
    path = Path(path)
    try:
        records = read_metric_records(path)
    except SchemaError as err:
        raise RecordError(str(err)) from None
    return [_check_record(rec, path, i) for i, rec in enumerate(records)]


def attach_params(df: pd.DataFrame, params: Mapping[str, int] | None) -> pd.DataFrame:
    """Copy of ``df`` with params_a/params_b from ``params`` (kept from ``df`` where ``params`` is None)."""
    df = df.copy()
    if params is not None:
        for side in ("a", "b"):
            df[f"params_{side}"] = df[f"model_{side}"].map(lambda m: params.get(m, math.nan)).astype(float)
    return df


def require_params(df: pd.DataFrame, sides: str = "ab") -> None:
    """Refuse to order models without a parameter count (on the given sides of the comparisons)."""
    missing = sorted({m for s in sides for m in df.loc[df[f"params_{s}"].isna(), f"model_{s}"]})
    if missing:
        raise KeyError(f"no parameter count for model(s) {missing}; pass params={{model_key: count}}")


def gather(metric_json_paths: Iterable[str | os.PathLike], params: Mapping[str, int] | None = None) -> pd.DataFrame:
    """One row per (comparison, metric) from the compare jobs' JSON files.

    Adds family (of model_b: the image model on the reference side for crossmodal records),
    size_a/size_b and params_a/params_b (NaN where ``params`` is None or lacks the model).
    """
    rows, sources = [], []
    for path in metric_json_paths:
        recs = read_records(path)
        rows += recs
        sources += [str(path)] * len(recs)
    if not rows:
        raise RecordError("no metric records found in the given files")
    df = pd.DataFrame(rows, columns=[*FIELDS, *CALIBRATION_FIELDS, "null_method"])
    for field in (set(FIELDS) - set(TEXT_FIELDS)) | set(CALIBRATION_FIELDS):
        df[field] = pd.to_numeric(df[field])
    df["source"] = sources
    dup = df.duplicated(list(KEY), keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        files = sorted(set(df.loc[dup & (df[list(KEY)] == first[list(KEY)]).all(axis=1), "source"]))
        raise RecordError(f"duplicate record for {dict(first[list(KEY)])} in {files}")
    df["family"] = df["model_b"].map(lambda m: split_model(m)[0])
    df["size_a"] = df["model_a"].map(lambda m: split_model(m)[1])
    df["size_b"] = df["model_b"].map(lambda m: split_model(m)[1])
    df["params_a"] = math.nan
    df["params_b"] = math.nan
    return attach_params(df, params)
