"""The run on one page (``summary.html``, rule summary): the paper's Table 1, Table 2 and Figure 1
for the headline metric, calibrated beside raw, then what the run was (config, data, software).

The Snakemake report opens on it: ``workflow/report/workflow.rst`` inserts the file (docutils
``raw:: html`` with ``:file:``), so it is self-contained HTML, figures inlined as data URIs.
What the run was comes from ``Plan.summary_params`` (the rule's params: a change of what the page
shows, and nothing else, rewrites it); N from the run's scores.
"""
from __future__ import annotations

import base64
import html
import os
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd

from ..metrics.registry import METRICS
from ..surveys import LAYOUTS, SURVEYS
from .captions import RunFacts
from .records import metric_order

# The packages whose versions decide the numbers (and the one that ran the jobs)
SOFTWARE = ("samesky", "snakemake", "numpy", "scipy", "pandas", "scikit-learn", "torch", "transformers",
            "h5py", "matplotlib")

CALIBRATED_NOTE = ("Read the calibrated scores for trends: raw scores grow with width and depth alone; a "
                   "calibrated score is 0 unless the raw score clears the permutation null's 1 - alpha level.")


def data_source(spec: dict) -> str:
    """How a crossmatch's objects were obtained, from its config entry (``crossmatches.<name>``)."""
    source = spec["source"]
    if "simulate" in source:
        sim = source["simulate"]
        text = f"simulated sky (n {sim['n']}, seed {sim.get('seed', 0)})"
    elif "hf" in source:
        hf = source["hf"]
        where = "Hugging Face Hub dataset" if hf["dataset"] in LAYOUTS else "local snapshot"
        text = f"{where} {hf['dataset']}" + (f", first {hf['limit']} rows" if hf.get("limit") else "")
    else:
        text = f"crossmatch file {source['path']}"
    drop = spec.get("drop_flat") or {}
    return text + "".join(f"; {survey} rows with a flat {band} dropped" for survey, band in drop.items())


def headline_metric(names: list[str]) -> str:
    """The metric the summary and the run's README lead with: MKNN (the paper's) when it runs."""
    return metric_order(names)[0]


def software_versions() -> dict[str, str]:
    """Python and the installed versions of ``SOFTWARE`` (``not installed`` where absent)."""
    versions = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def objects_per_crossmatch(scores: pd.DataFrame) -> dict[str, int]:
    """N, the crossmatched objects each crossmatch's comparisons were scored on (``scores.csv``)."""
    return {xm: int(n) for xm, n in scores.groupby("crossmatch")["n"].max().items()}


def _table(csv: Path) -> str:
    if not csv.exists():
        return "<p><em>not in this run (no comparison of this kind)</em></p>"
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    return frame.to_html(index=False, border=0, classes="samesky-table", escape=True)


def _image(png: Path) -> str:
    if not png.exists():
        return "<p><em>not in this run (no comparison of this kind)</em></p>"
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(png.name)}" style="max-width:100%">'


def _beside(calibrated: str, raw: str) -> str:
    """Two views side by side, calibrated first; they wrap below each other on a narrow screen."""
    cell = '<div style="flex:1 1 0;min-width:22em"><h4>{}</h4>{}</div>'
    return ('<div style="display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start">'
            + cell.format("calibrated", calibrated) + cell.format("raw", raw) + "</div>")


def _rows(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                   f"<td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="samesky-run">{body}</table>'


def _label(name: str, labels: dict) -> str:
    return labels[name].label if name in labels else name


def run_rows(facts: dict, n: dict[str, int]) -> list[tuple[str, str]]:
    """The config (``Plan.summary_params``), data and N of a run as (what, value) rows."""
    rows = [("run_name", facts["run_name"]), ("reference survey", _label(facts["reference_survey"], SURVEYS))]
    for name, xm in facts["crossmatches"].items():
        surveys = " + ".join(_label(s, SURVEYS) for s in xm["surveys"])
        only = "" if xm["image_models"] == facts["models"]["image"] else f"; image models {', '.join(xm['image_models'])}"
        rows.append((f"crossmatch {name}", f"{surveys}, N = {n[name] if name in n else 'not scored'}; "
                                           f"{data_source(xm)}{only}"))
    models = facts["models"]
    rows.append(("image models", ", ".join(models["image"]) or "none"))
    rows.append(("spectrum model", models["spectrum"] or "none"))
    rows.append(("weights", {"hub": "the real checkpoints (hub)",
                             "tiny": "tiny random-weight miniatures (a tour, not a measurement)"}[models["weights"]]))
    metrics = facts["metrics"]
    rows.append(("metrics", ", ".join(_label(m, METRICS) for m in metrics["names"])))
    rows.append(("k, null_draws, subsampling_splits",
                 f"k = {metrics['k']}, null_draws = {metrics['null_draws']}, "
                 f"subsampling_splits = {metrics['subsampling_splits']}"))
    return rows


def write_summary(out: str | os.PathLike, facts: dict, scores_csv: str | os.PathLike,
                  tables_dir: str | os.PathLike, figures_dir: str | os.PathLike,
                  versions: dict[str, str] | None = None) -> Path:
    """Write ``out`` (HTML) for the run ``facts`` describe (``Plan.summary_params``): Tables 1 and 2
    and Figure 1 of the headline metric, calibrated beside raw, then the run's config, data, N
    (``scores_csv``) and software (``versions``, by default those installed now)."""
    metric = headline_metric(facts["metrics"]["names"])
    scores = pd.read_csv(scores_csv)
    label = html.escape(_label(metric, METRICS))
    tables, figures = Path(tables_dir), Path(figures_dir)
    name = html.escape(facts["run_name"])
    notice = RunFacts.of(facts["marking"]).notice
    parts = [
        f'<div class="samesky-summary"><h2>Run <code>{name}</code>: summary</h2>',
        f'<p style="color:#b00;font-weight:bold">{html.escape(notice)}</p>' if notice else "",
        f"<p>{html.escape(CALIBRATED_NOTE)} Headline metric: {label}; every metric's tables and figures "
        "are under Tables and Figures, the layer-wise atlas under Layer atlas.</p>",
        f"<h3>Table 1 – intramodal alignment ({label})</h3>",
        _beside(_table(tables / f"table1_intramodal_{metric}_calibrated.csv"),
                _table(tables / f"table1_intramodal_{metric}.csv")),
        f"<h3>Table 2 – crossmodal alignment ({label})</h3>",
        _beside(_table(tables / f"table2_crossmodal_{metric}_calibrated.csv"),
                _table(tables / f"table2_crossmodal_{metric}.csv")),
        f"<h3>Figure 1 – model size vs crossmodal alignment ({label})</h3>",
        _beside(_image(figures / f"figure1_crossmodal_{metric}_calibrated.png"),
                _image(figures / f"figure1_crossmodal_{metric}.png")),
        "<h3>What ran</h3>",
        _rows(run_rows(facts, objects_per_crossmatch(scores))),
        "<h3>Software</h3>",
        _rows(list((versions or software_versions()).items())),
        "</div>",
    ]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts) + "\n")
    return out
