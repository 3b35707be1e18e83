"""The paper's two tables as numeric wide frames, shared by the table writers, trends and figures.

Both frames have rows indexed by (family, row label), ordered by family (smallest model first)
and then parameter count, and columns indexed by (survey, column label), ordered as the paper
(JWST, Legacy, DESI, SDSS, then HSC).

Column choice: intramodal scores exist for every (survey, crossmatch), and the reference survey
(HSC) is in every crossmatch. We keep one column per (survey, crossmatch); a survey found in one
crossmatch is labelled plainly ("JWST"), one found in several is labelled with the partner survey
of each crossmatch ("HSC (Legacy crossmatch)"). Nothing is silently dropped or averaged.
"""
from __future__ import annotations

import pandas as pd

from ..plan import TRUTH_SURVEY
from .records import family_label, require_params, size_label, split_model, survey_label, survey_rank

FIELDS = ("score", "ci_low", "ci_high")
NULL_SIGMA = 2  # the null band/column range: null_mean +- 2 null_std


def family_order(df: pd.DataFrame) -> list[str]:
    """Families ordered by their smallest model's parameter count, then by name."""
    sides = [df[[f"model_{s}", f"params_{s}"]].set_axis(["model", "params"], axis=1) for s in "ab"]
    both = pd.concat(sides)
    both["family"] = both["model"].map(lambda m: split_model(m)[0])
    smallest = both.groupby("family")["params"].min().fillna(float("inf"))
    return sorted(smallest.index, key=lambda f: (smallest[f], f))


def _partners(df: pd.DataFrame, crossmatch: str, survey: str) -> list[str]:
    """The other surveys of ``survey``'s crossmatch (the latent truth is not a survey)."""
    xm = df[df["crossmatch"] == crossmatch]
    found = set(xm["survey_a"]) | set(xm["survey_b"])
    return sorted(found - {survey, TRUTH_SURVEY}, key=survey_rank)


def column_labels(df: pd.DataFrame, sub: pd.DataFrame, kind: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(survey_a, crossmatch) -> (survey, label), in display order."""
    keys = sorted(set(zip(sub["survey_a"], sub["crossmatch"])),
                  key=lambda k: (survey_rank(k[0]), [survey_rank(p) for p in _partners(df, k[1], k[0])], k[1]))
    ref = {k: survey_label(s) for k, s in zip(zip(sub["survey_a"], sub["crossmatch"]), sub["survey_b"])}
    labels = {}
    for survey, xm in keys:
        base = survey_label(survey) if kind == "intramodal" else f"{survey_label(survey)} vs {ref[survey, xm]}"
        shared = sum(s == survey for s, _ in keys) > 1
        if shared and kind == "intramodal":
            partners = "/".join(survey_label(p) for p in _partners(df, xm, survey))
            base += f" ({partners} crossmatch)" if partners else f" ({xm})"
        elif shared:
            base += f" ({xm})"
        labels[survey, xm] = (survey, base)
    return labels


def _pivot(long: pd.DataFrame | None, rows: list[tuple[str, str]], columns: list[tuple[str, str]]) -> pd.DataFrame:
    index = pd.MultiIndex.from_tuples(rows, names=["family", "row"])
    cols = pd.MultiIndex.from_tuples(columns, names=["survey", "column"])
    if long is None:
        return pd.DataFrame(index=index, columns=cols, dtype=float)
    table = long.pivot(index=["family", "row"], columns=["survey", "column"], values="value")
    return table.reindex(index=index, columns=cols).astype(float)


def _value(sub: pd.DataFrame, field: str, null: bool) -> pd.Series:
    if field not in FIELDS:
        raise ValueError(f"field must be one of {FIELDS}, got {field!r}")
    if not null:
        return sub[field]
    if field == "score":
        return sub["null_mean"]
    return sub["null_mean"] + (-1 if field == "ci_low" else 1) * NULL_SIGMA * sub["null_std"]


def intramodal_table(df: pd.DataFrame, metric: str, field: str = "score") -> pd.DataFrame:
    """Table 1: rows 'Family SizeA vs SizeB' (consecutive sizes), one column per survey."""
    sub = df[(df["kind"] == "intramodal") & (df["metric"] == metric)]
    if sub.empty:
        return _pivot(None, [], [])
    require_params(sub)
    rank = {f: i for i, f in enumerate(family_order(df))}
    cols = column_labels(df, sub, "intramodal")
    row = [f"{family_label(f)} {size_label(split_model(a)[1])} vs {size_label(split_model(b)[1])}"
           for f, a, b in zip(sub["family"], sub["model_a"], sub["model_b"])]
    long = pd.DataFrame({
        "family": sub["family"].to_numpy(), "row": row,
        "survey": [cols[k][0] for k in zip(sub["survey_a"], sub["crossmatch"])],
        "column": [cols[k][1] for k in zip(sub["survey_a"], sub["crossmatch"])],
        "value": _value(sub, field, null=False).to_numpy(),
        "sort": list(zip(sub["family"].map(rank), sub["params_a"], sub["params_b"])),
    })
    rows = long.drop_duplicates(["family", "row"]).sort_values("sort")
    return _pivot(long, list(zip(rows["family"], rows["row"])), list(cols.values()))


def crossmodal_table(df: pd.DataFrame, metric: str, field: str = "score", null_column: bool = False) -> pd.DataFrame:
    """Table 2: rows 'Family Size' (the reference-side image model), one column per survey pair.

    With ``null_column``, a last column 'π(HSC) vs HSC' (survey key 'null') from the ``self``
    records' permutation null: null_mean for 'score', null_mean -+ 2 null_std for the CI fields.
    """
    parts = [(df[(df["kind"] == "crossmodal") & (df["metric"] == metric)], False)]
    if null_column:
        parts.append((df[(df["kind"] == "self") & (df["metric"] == metric)], True))
    rank = {f: i for i, f in enumerate(family_order(df))}
    longs, columns = [], []
    for sub, null in parts:
        if sub.empty:
            continue
        require_params(sub, "b")  # rows are the reference-side model
        if null:
            ref = survey_label(sub["survey_b"].iloc[0])
            cols = {k: ("null", f"π({ref}) vs {ref}") for k in zip(sub["survey_a"], sub["crossmatch"])}
        else:
            cols = column_labels(df, sub, "crossmodal")
        columns += [c for c in cols.values() if c not in columns]
        longs.append(pd.DataFrame({
            "family": sub["family"].to_numpy(),
            "row": [f"{family_label(f)} {size_label(s)}" for f, s in zip(sub["family"], sub["size_b"])],
            "survey": [cols[k][0] for k in zip(sub["survey_a"], sub["crossmatch"])],
            "column": [cols[k][1] for k in zip(sub["survey_a"], sub["crossmatch"])],
            "value": _value(sub, field, null).to_numpy(),
            "sort": list(zip(sub["family"].map(rank), sub["params_b"])),
        }))
    if not longs:
        return _pivot(None, [], [])
    long = pd.concat(longs, ignore_index=True)
    rows = long.drop_duplicates(["family", "row"]).sort_values("sort")
    return _pivot(long, list(zip(rows["family"], rows["row"])), columns)
