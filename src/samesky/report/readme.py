"""The run's map (``results/<run_name>/README.md``, rule run_readme): what each folder holds, what
to read first, and why the calibrated scores are the ones to read; and the lines the end of a run
prints (``next_steps``)."""
from __future__ import annotations

import os
from pathlib import Path

from ..paths import RunPaths
from .summary import CALIBRATED_NOTE, headline_metric

DEMO_CONFIG = "config/demo.yaml"  # the Makefile's default CONFIG

# Each entry the workflow writes at a run's root (the first part of every RunPaths pattern, and the
# jobs' benchmarks), in reading order, with what it holds.
ENTRIES = {
    "summary.html": "the run on one page: Tables 1 and 2 and Figure 1 of the headline metric, calibrated "
                    "beside raw, and what ran (config, data, N, software); the Snakemake report opens on it",
    "tables": "`scores.csv`, the tidy table (one row per metric x comparison: score, interval, null, p-value, "
              "calibrated score); `paper/`, Table 1 (intramodal), Table 2 (crossmodal), the latent-truth table "
              "and the trend statistics per metric (CSV, Markdown, LaTeX; `*_calibrated` beside each); "
              "`layers.csv` and `layers_best.csv` (layer-wise atlas), `probes.csv` and `probes/` (probes), `physics.csv` and `physics.md` (the physics tests), `physics_layers.csv` (the physics tests of every block, with the layer-wise atlas), `physics_pairs.csv` and `physics_pairs.md` (the physics tests of two embeddings: the Wasserstein neighbourhood distance per compared pair), `alignment_physics.csv`, `alignment_physics.md` and "
              "`alignment_physics_trend.csv` (each crossmodal comparison's calibrated alignment beside what its "
              "embeddings know, and the trend test: do models that align more know more?)",
    "figures": "Figure 1 (crossmodal) and the intramodal figure per metric, PNG and PDF, `*_calibrated` beside each",
    "layer_figures": "the layer-wise atlas: a block x block heatmap per metric and pair "
                     "(`{metric}/{crossmatch}_{survey_a}_{model_a}__{survey_b}_{model_b}.png`) and the best "
                     "block pair against parameter count (`best_vs_params_{metric}.png`)",
    "probe_figures": "probe score against parameter count, one figure per probed property; calibrated alignment "
                     "against what the embeddings know, one figure per probed crossmatch "
                     "(`alignment_physics_{crossmatch}.png`); with the layer-wise atlas, the physics tests' scores "
                     "against depth, one figure per crossmatch (`physics_depth_{crossmatch}.png`)",
    "umap_figures": "UMAP maps (`probes.umap`): one figure per probed crossmatch and continuous property "
                    "(`{crossmatch}_{property}.png`), one panel per embedding coloured by the property, its kNN "
                    "purity in the panel title",
    "metrics": "the compare jobs' records, one JSON per comparison "
               "(`{crossmatch}/{survey_a}/{model_a}/{survey_b}/{model_b}.json`)",
    "layers_metrics": "the block x block scores, one CSV per compared pair",
    "probes": "the probe jobs' records, one JSON per embedding",
    "physics": "the physics jobs' records (probes.physics), one JSON per embedding",
    "physics_layers": "the physics jobs' records of every block (probes.physics.per_block), one JSON per embedding",
    "physics_pairs": "the physics_pair jobs' records (probes.physics: neighbourhood_wasserstein), one JSON per "
                     "compared pair",
    "embeddings": "every embedding, keyed by object id (`{crossmatch}/{survey}/{model}.h5`; "
                  "`truth/latent-truth.h5`: a simulation's latent properties)",
    "layers": "every selected block's embedding (`embed.layers`), per embedding",
    "knn": "each embedding's kNN graph, computed once and reused by every comparison and null draw",
    "knn_layers": "each block's kNN graph",
    "preprocessed": "model-ready images and spectra per crossmatch and survey, and the image percentiles",
    "preprocessed_flux": "raw fluxes for the models that tokenise them",
    "benchmarks": "per-job runtime and memory (Snakemake benchmark TSVs), by rule",
}


def headline_files(metric: str) -> list[tuple[str, str]]:
    """The files to read first, as (path under the run's root, why)."""
    return [
        ("summary.html", "everything below on one page (or `report.html`, see the end)"),
        (f"tables/paper/table2_crossmodal_{metric}_calibrated.md",
         f"Table 2: each survey against HSC, calibrated {metric} (raw: the same name without `_calibrated`)"),
        (f"tables/paper/table1_intramodal_{metric}_calibrated.md",
         f"Table 1: consecutive sizes of one family, calibrated {metric}"),
        (f"figures/figure1_crossmodal_{metric}_calibrated.png", "Figure 1: crossmodal score against model size"),
        ("tables/scores.csv", "every number, one row per metric and comparison"),
    ]


def report_command(configfiles: list[str]) -> str:
    """The command that builds the run's Snakemake report (Makefile target report)."""
    if not configfiles or Path(configfiles[-1]).resolve() == Path(DEMO_CONFIG).resolve():
        return "make report"
    return f"make report CONFIG={configfiles[-1]}"


def run_readme(run: RunPaths, metric: str, present: list[str]) -> str:
    """The README of ``run``: its headline files, the calibrated-scores note, and those of
    ``ENTRIES`` that are in ``present`` (names at the run's root), in ``ENTRIES`` order."""
    lines = [f"# Run `{run.run_name}`", "",
             f"Written by the workflow (rule run_readme) for the config with `run_name: {run.run_name}`; every "
             f"file of this run is under `{run.root}/`, its jobs' logs under `{run.log('')}`.", "",
             "## Read first", ""]
    lines += [f"{i}. `{path}`: {why}" for i, (path, why) in enumerate(headline_files(metric), 1)]
    lines += ["", CALIBRATED_NOTE, "", "## What each folder holds", "", "| entry | holds |", "|:--|:--|"]
    lines += [f"| `{name}{'' if '.' in name else '/'}` | {ENTRIES[name]} |" for name in ENTRIES if name in present]
    lines += ["", "## The report", "",
              f"`make report` (with `CONFIG=` the run's config file, unless it is `{DEMO_CONFIG}`) builds "
              f"`{run.report}`: one HTML file that opens on the summary, "
              "with every table and figure by category (the layer atlas grouped by crossmatch, pair and metric), "
              "the jobs' code, runtimes and the config.", ""]
    return "\n".join(lines)


def write_run_readme(out: str | os.PathLike, run: RunPaths, metrics: list[str]) -> Path:
    """Write ``run_readme`` for the entries now at the run's root into ``out``, leading with the
    headline metric of ``metrics`` (config metrics.names)."""
    present = sorted(p.name for p in Path(run.root).iterdir())
    out = Path(out)
    out.write_text(run_readme(run, headline_metric(metrics), present))
    return out


def next_steps(run: RunPaths, configfiles: list[str]) -> str:
    """What the end of a run prints: where its README is and how to build its report."""
    return (f"samesky run {run.run_name!r}: read {run.README} first (what each folder holds, which tables "
            f"and figures to open)\nthe Snakemake report: {report_command(configfiles)}  ->  {run.report}")
