"""Our embeddings as parquet files in the Platonic Universe authors' layout, for their readers.

Each (crossmatch, model) of ``results/<run_name>/embeddings/{crossmatch}/{survey}/{model}.h5`` becomes
``{out}/{mode}/{alias}_{size}.parquet``, ``mode`` being the crossmatch's survey other than the
reference (``jwst`` for jwst_hsc), as the authors' hub upload lays out ``pu run``'s
``data/{mode}_{alias}_{size}.parquet``. It holds one vector column per survey the model embedded,
named ``{alias}_{size}_{survey}`` (the reference's first, as ``pu run`` writes them), rows in the
same object order on every column, and ``object_id`` last (the authors' readers take their model,
size and surveys from the column names and ignore it; ``samesky compare`` joins on it).
``{out}/README.md`` gets the ``configs`` block of the authors' hub README (one
``{mode}_{alias}_{size}`` config per file), so the folder uploads as a Hugging Face dataset.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from .schema import SchemaError, atomic_path, read_embeddings

log = logging.getLogger(__name__)


def column_name(alias: str, size: str, survey: str) -> str:
    """The authors' column name (``pu run``: ``f"{alias}_{size.lstrip('0')}_{survey}".lower()``)."""
    return f"{alias}_{size.lstrip('0')}_{survey}".lower()


def _split(model: str, path) -> tuple[str, str]:
    alias, sep, size = model.rpartition("-")
    if not (sep and alias and size):
        raise SchemaError(f"{path}: model {model!r} is not of the form '{{family}}-{{size}}'")
    if "_" in alias or "_" in size:
        raise SchemaError(f"{path}: model {model!r} has '_' in its name; the authors' readers split column "
                          f"names at '_' into model, size and survey")
    return alias, size


def embedding_files(paths) -> dict[tuple[str, str], dict[str, Path]]:
    """{(crossmatch, model): {survey: file}} of the given files and directories (searched for
    ``{crossmatch}/{survey}/{model}.h5``)."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.h5") if len(f.relative_to(p).parts) >= 3)
            if not found:
                raise SchemaError(f"{p}: no embedding files {{crossmatch}}/{{survey}}/{{model}}.h5 under it")
            files += found
        elif p.suffix == ".h5":
            if len(p.parts) < 3:
                raise SchemaError(f"{p}: expected a path .../{{crossmatch}}/{{survey}}/{{model}}.h5")
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: not a samesky embedding file (.h5) or directory of them")
    groups: dict[tuple[str, str], dict[str, Path]] = defaultdict(dict)
    for f in files:
        groups[(f.parts[-3], f.stem)][f.parts[-2]] = f
    return dict(groups)


def _mode(crossmatch: str, surveys, reference: str) -> str:
    others = sorted(set(surveys) - {reference})
    return others[0] if len(others) == 1 else crossmatch


def export(paths, out, reference: str = "hsc") -> list[Path]:
    """Write every (crossmatch, model) of ``paths`` under ``out`` (see the module docstring);
    returns the written parquet files and README."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    groups = embedding_files(paths)
    surveys_of = defaultdict(set)
    for (xm, _), files in groups.items():
        surveys_of[xm] |= set(files)
    written = []
    for (xm, model), files in sorted(groups.items()):
        alias, size = _split(model, next(iter(files.values())))
        order = sorted(files, key=lambda s: (s != reference, s))
        sides = {s: read_embeddings(files[s])[:2] for s in order}
        ids = sides[order[0]][0]
        for s in order[1:]:
            ids = ids[np.isin(ids, sides[s][0])]
        columns = {}
        for s in order:
            sid, emb = sides[s]
            if len(sid) != len(ids):
                log.warning("%s: %d of its %d objects are not in every survey's file of %s/%s; left out",
                            files[s], len(sid) - len(ids), len(sid), xm, model)
            sorter = np.argsort(sid)
            rows = sorter[np.searchsorted(sid, ids, sorter=sorter)]
            columns[column_name(alias, size, s)] = pa.FixedSizeListArray.from_arrays(
                pa.array(np.ascontiguousarray(emb[rows], dtype=np.float32).ravel()), emb.shape[1])
        columns["object_id"] = pa.array(ids.tolist(), type=pa.string())
        mode = _mode(xm, surveys_of[xm], reference)
        path = out / mode / f"{alias}_{size}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            pq.write_table(pa.table(columns), tmp)
        log.info("%s: %d objects, columns %s", path, len(ids), list(columns))
        written.append(path)
    readme = out / "README.md"
    with atomic_path(readme) as tmp:
        tmp.write_text(hub_readme(out))
    return written + [readme]


def hub_readme(out: Path) -> str:
    """README front matter with a ``configs`` entry per ``{mode}/{alias}_{size}.parquet`` under
    ``out``, as the authors' hub upload writes it (sorted by config name)."""
    import yaml

    configs = [{"config_name": f"{p.parent.name}_{p.stem}",
                "data_files": [{"split": "train", "path": f"{p.parent.name}/{p.name}"}]}
               for p in sorted(Path(out).glob("*/*.parquet"))]
    configs.sort(key=lambda c: c["config_name"])
    body = ("\nEmbeddings exported by samesky (`samesky export`), in the Platonic Universe layout: one vector "
            "column per survey, `{model}_{size}_{survey}`, rows in the same object order, `object_id` last.\n")
    return f"---\n{yaml.dump({'configs': configs}, default_flow_style=False, sort_keys=False)}---\n{body}"
