"""The ``samesky`` command: score your own embeddings, list the measures, export ours.

    samesky compare A B [--metrics mknn cka_linear] [-k 10] [--output scores.csv]
    samesky metrics
    samesky export results/demo/embeddings --out export/
    samesky cost --configfile config/config.yaml
    samesky --version

``main(argv)`` returns the exit status (0 done, 1 bad input, 2 bad usage); ``python -m samesky``
runs it too. Tables go to stdout, progress and errors to stderr.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from . import __version__

DESCRIPTION = """\
Do two sets of embeddings of the same objects see the same sky? samesky scores them with
representational-alignment measures (by default the mutual k-nearest-neighbour overlap, MKNN, of
the Platonic Universe paper, and CKA, CKNNA and mutual information), each with a permutation null
(which score unrelated embeddings would get), an interval, and a calibrated score (0 at the null,
1 at perfect alignment)."""

COMPARE_HELP = """\
Score embeddings A against embeddings B: one row per measure with its score, an interval, the
mean of its permutation null (B's rows shuffled: what unrelated embeddings would score), the
p-value against that null, tau (the null's 1 - alpha quantile) and the calibrated score
max(0, (score - tau) / (max - tau)): 0 at the null, 1 at perfect alignment. Pairing-free
measures (e.g. mmd, frechet; 'samesky metrics' marks them 'null: none') compare the two
distributions and ignore which row of A goes with which row of B, so shuffling B leaves them
unchanged: they have only a score and its interval (null_method 'pairing_free').

A and B are files of embeddings, one vector per object:
  .h5 / .hdf5  samesky embedding files (results/<run_name>/embeddings/...; ids in /object_id)
  .npy         a 2-D array (objects x dimensions), rows in object order
  .npz         its 'embedding' array (or --column), ids from 'object_id' (or --id-column)
  .parquet     its one column of vectors (or --column), ids from 'object_id' (or --id-column):
               the Platonic Universe authors' files (pu run's data/{mode}_{model}_{size}.parquet,
               one column per survey: name it with --column; their hub files: 'embeddings')
  directory    a local Hugging Face dataset snapshot (its parquet files, or save_to_disk)
Objects are matched by id when both sides have ids; otherwise row i of A is row i of B (the
output's 'pairing' column says which). Giving the same file twice scores the shuffled-self null.

The defaults are the workflow's (config 'metrics'), so two of the workflow's embedding files
score exactly as their row of results/<run_name>/tables/scores.csv."""

EXAMPLES = """\
examples:
  samesky compare results/demo/embeddings/desi_hsc/hsc/vit-base.h5 results/demo/embeddings/desi_hsc/desi/specformer-base.h5
  samesky compare ours.npy theirs.npy --metrics mknn -k 10 --null-draws 1000 --output mknn.json
  samesky compare data/jwst_vit_base.parquet data/jwst_vit_base.parquet --column vit_base_jwst --column-b vit_base_hsc
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samesky", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"samesky {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)

    cmp = sub.add_parser("compare", help="score embeddings A against embeddings B", description=COMPARE_HELP,
                         epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmp.add_argument("a", metavar="A", help="embeddings A (file or dataset directory)")
    cmp.add_argument("b", metavar="B", help="embeddings B (file or dataset directory)")
    cmp.add_argument("--metrics", nargs="+", metavar="NAME",
                     help="measures to compute (see 'samesky metrics'; default: the workflow's set)")
    cmp.add_argument("-k", "--k", type=int, help="neighbours per object of the neighbourhood measures (default 10)")
    cmp.add_argument("--null-draws", type=int, metavar="N", help="permutations of B for the null (default 1000)")
    cmp.add_argument("--subsampling-splits", type=int, metavar="N",
                     help="random half/quarter splits for the interval (default 1000; 0: no interval)")
    cmp.add_argument("--feature-space-draws", type=int, metavar="N",
                     help="at most this many draws of the costly feature-space measures (default 100)")
    cmp.add_argument("--ci", type=float, help="interval level (default 0.95)")
    cmp.add_argument("--alpha", type=float,
                     help="level of the null threshold tau of the calibrated score (default 0.05)")
    cmp.add_argument("--seed", type=int, help="seed of the permutations and splits (default 0, as the workflow)")
    cmp.add_argument("--cka-null", choices=("closed_form", "permutation"), help="CKA's null (default closed_form)")
    cmp.add_argument("--param", action="append", default=[], metavar="METRIC.NAME=VALUE",
                     help="a measure's parameter other than k, e.g. mutual_info.components=64 (repeatable)")
    cmp.add_argument("--column", help="A's vector column (and B's, unless --column-b)")
    cmp.add_argument("--id-column", help="A's id column (and B's, unless --id-column-b; default: object_id if present)")
    cmp.add_argument("--column-b", help="B's vector column")
    cmp.add_argument("--id-column-b", help="B's id column")
    cmp.add_argument("-o", "--output", metavar="FILE", help="also write the records: .json or .csv")
    cmp.add_argument("-q", "--quiet", action="store_true", help="no progress messages on stderr")

    sub.add_parser("metrics", help="list the measures and what they measure",
                   description="List the measures 'samesky compare --metrics' accepts, with their parameters.")

    cost = sub.add_parser("cost", help="what a workflow config's run will cost, before it starts",
                          description="Per rule of a workflow config's run: jobs, predicted CPU-hours, GPU-hours, "
                                      "the largest peak memory and the disk its outputs take; the total and the "
                                      "critical path; as configured and with the other choice of embed.layers "
                                      "(final or all). The metric jobs' figures come from samesky.cost's model.")
    cost.add_argument("--configfile", required=True, help="the workflow config, e.g. config/config.yaml")

    exp = sub.add_parser("export", help="write embeddings as parquet in the Platonic Universe authors' layout",
                         description=_export_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    exp.add_argument("embeddings", nargs="+", metavar="PATH",
                     help="a run's embeddings folder, results/<run_name>/embeddings "
                          "(or some of its {crossmatch}/{survey}/{model}.h5 files)")
    exp.add_argument("--out", required=True, metavar="DIR", help="where to write {mode}/{model}_{size}.parquet "
                     "and README.md")
    exp.add_argument("--reference", default="hsc", help="the reference survey every crossmatch shares (default hsc)")
    exp.add_argument("-q", "--quiet", action="store_true", help="no progress messages on stderr")
    return parser


def _export_help() -> str:
    from .export import __doc__ as doc

    return doc


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
                        format="samesky: %(message)s", stream=sys.stderr, force=True)
    from .schema import SchemaError

    try:
        if args.command == "metrics":
            return _metrics()
        if args.command == "export":
            return _export(args)
        if args.command == "cost":
            return _cost(args)
        return _compare(args, parser)
    except (SchemaError, FileNotFoundError, KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"samesky {args.command}: error: {message}", file=sys.stderr)
        return 1


def _metrics() -> int:
    from .api import defaults
    from .metrics.registry import METRICS

    chosen = defaults()["names"]
    width = max(map(len, METRICS))
    for name, m in METRICS.items():
        params = ", ".join(f"{key}={value}" for key, value in m.defaults.items())
        mark = "*" if name in chosen else " "
        print(f"{mark} {name:<{width}}  {m.summary}" + (f" [{params}]" if params else "")
              + f" ({m.direction}, {m.scale}; null: {'none, pairing-free' if m.pairing_free else m.nulls[0].replace('_', ' ')})")
    print("\n* computed by default (the workflow's config metrics.names); a similarity is more aligned when "
          "higher, a distance when lower")
    return 0


def _params(items: list[str], parser) -> dict[str, dict]:
    import yaml

    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        metric, dot, name = key.partition(".")
        if not (sep and dot and metric and name):
            parser.error(f"--param {item!r}: expected METRIC.NAME=VALUE, e.g. mutual_info.components=64")
        out.setdefault(metric, {})[name] = yaml.safe_load(value)
    return out


def _compare(args, parser) -> int:
    from .api import compare

    df = compare(args.a, args.b, metrics=args.metrics, k=args.k, null_draws=args.null_draws,
                 subsampling_splits=args.subsampling_splits, feature_space_draws=args.feature_space_draws, ci=args.ci,
                 alpha=args.alpha, seed=args.seed, cka_null=args.cka_null, params=_params(args.param, parser) or None,
                 column=args.column, id_column=args.id_column, column_b=args.column_b, id_column_b=args.id_column_b)
    print(format_table(df))
    if args.output:
        write_records(df, Path(args.output))
        logging.getLogger(__name__).info("wrote %s", args.output)
    return 0


def _number(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"


def format_table(df) -> str:
    """The records as a plain-text table: score, interval, null mean, p, calibrated score and tau,
    then a line naming the pairing-free measures, which have none of the last four."""
    from .metrics.registry import NULLS, PAIRING_FREE

    head = ("metric", "k", "score", f"{_level(df)} interval", "null mean", "p", "calibrated", "tau")
    rows = [head]
    for rec in df.to_dict("records"):
        k = rec["k"]
        rows.append((rec["metric"], "-" if k is None or k != k else str(int(k)), _number(rec["score"]),
                     f"[{_number(rec['ci_low'])}, {_number(rec['ci_high'])}]", _number(rec["null_mean"]),
                     _number(rec["p_value"]), _number(rec["calibrated"]), _number(rec["tau"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    first = df.iloc[0]
    note = (f"{int(first['n'])} objects paired by {'object id' if first['pairing'] == 'id' else 'row (positional)'}"
            + (f", {int(first['n_excluded'])} on one side only left out" if first["n_excluded"] else "")
            + f"; {first['source']}")
    free = [rec["metric"] for rec in df.to_dict("records") if rec["null_method"] == PAIRING_FREE]
    tail = [f"{', '.join(free)}: {NULLS[PAIRING_FREE][1]} (pairing-free: no p, calibrated score or tau)"] if free else []
    return "\n".join([note, *lines, *tail])


def _level(df) -> str:
    alpha_ci = df.attrs.get("ci")
    return f"{alpha_ci:.0%}" if alpha_ci else "CI"


def write_records(df, path: Path) -> None:
    """``.json``: ``{"records": [...]}`` as the compare jobs write them; ``.csv``: the table."""
    from .schema import atomic_path

    if path.suffix == ".json":
        records = [{key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in rec.items()}
                   for rec in df.to_dict("records")]
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"records": records}, indent=1, default=_plain))
    elif path.suffix == ".csv":
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False)
    else:
        raise ValueError(f"--output {path}: write .json or .csv")


def _plain(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _export(args) -> int:
    from .export import export

    written = export(args.embeddings, args.out, reference=args.reference)
    for path in written:
        print(path)
    return 0


def _cost(args) -> int:
    import yaml

    from .cost import config_cost

    print(config_cost(yaml.safe_load(Path(args.configfile).read_text())))
    return 0
