"""The compare and compare_layers outputs of tests/metric_fixtures.py's two pairs, as computed by
the code before the metric protocol (issue 26), for tests/test_metric_protocol.py to hold.

    PYTHONPATH=src python tests/golden/make_protocol_golden.py tests/golden/protocol_records.json

Run at daf56d9 (the last commit before the protocol); the records must not change after it."""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from metric_fixtures import COMPARISON, INTERVALS, METRICS, SETTINGS, write_pair  # noqa: E402

from samesky.metrics.compare import compare_files  # noqa: E402
from samesky.metrics.layers import compare_layer_files  # noqa: E402

out = {"commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()}
for exclude in (0, 4):
    with tempfile.TemporaryDirectory() as tmp:
        s = write_pair(Path(tmp), exclude)
        records = compare_files(s["a"]["emb"], s["b"]["emb"], s["a"]["knn"], s["b"]["knn"], comparison=COMPARISON,
                                metrics=METRICS, **SETTINGS, **INTERVALS)
        rows = compare_layer_files(s["a"], s["b"], comparison=COMPARISON, metrics=METRICS, **SETTINGS)
    out[f"exclude{exclude}"] = {"records": records, "layer_rows": rows}
Path(sys.argv[1]).write_text(json.dumps(out, indent=1) + "\n")
