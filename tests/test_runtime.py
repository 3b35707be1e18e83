"""Job runtime: a crashed job's log ends with its traceback, under a real Snakemake script: rule."""
import os
import subprocess
import sys
from pathlib import Path

from samesky.runtime import USAGE

ROOT = Path(__file__).resolve().parents[1]

SNAKEFILE = """
rule crash:
    output: "out.txt"
    log: "logs/crash.log"
    threads: 1
    script: "crash.py"
"""

SCRIPT = """
from samesky.runtime import setup_job
log = setup_job(snakemake)
log.info("starting")
{{"a": 1}}["missing_key_for_test"]
"""


def test_uncaught_exception_ends_the_rule_log(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "crash.py").write_text(SCRIPT.replace("{{", "{").replace("}}", "}"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "-d", str(tmp_path),
                           "-s", str(tmp_path / "Snakefile")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode != 0
    log = (tmp_path / "logs" / "crash.log").read_text()
    assert "starting" in log
    assert "CRITICAL samesky: uncaught KeyError, the job fails" in log
    tail = log.rstrip().splitlines()
    assert tail[0].endswith("starting") and tail[-1] == "KeyError: 'missing_key_for_test'", log
    assert any(line.startswith("Traceback (most recent call last):") for line in tail)


QUIET_SNAKEFILE = """
rule chatty:
    output: "out.txt"
    log: "logs/chatty.log"
    script: "chatty.py"
"""

QUIET_SCRIPT = """
import logging, sys, warnings
from samesky.runtime import setup_job
log = setup_job(snakemake)
log.info("detail for the log")
print("a library's message", file=sys.stderr)
warnings.warn("a library's warning")
logging.getLogger("transformers").warning("a backend warning")
log.warning("a real problem")
open(snakemake.output[0], "w").close()
"""


def test_a_job_s_detail_stays_in_its_log(tmp_path):
    """The terminal gets samesky's warnings (naming the log); the log gets everything."""
    (tmp_path / "Snakefile").write_text(QUIET_SNAKEFILE)
    (tmp_path / "chatty.py").write_text(QUIET_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "-d", str(tmp_path),
                           "-s", str(tmp_path / "Snakefile")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    terminal = proc.stdout + proc.stderr
    assert "WARNING samesky (logs/chatty.log): a real problem" in terminal
    for detail in ("detail for the log", "a library's message", "a library's warning", "a backend warning"):
        assert detail not in terminal
        assert detail in (tmp_path / "logs" / "chatty.log").read_text()
    # its last line: the job's exact peak memory and CPU time (samesky.cost's measurements read it)
    last = (tmp_path / "logs" / "chatty.log").read_text().rstrip().splitlines()[-1]
    used = USAGE.search(last)
    assert used and last.endswith(f"INFO samesky: {used.group(0)}"), last
    assert 10 < float(used["peak_mb"]) < 2000 and 0 < float(used["cpu_s"]) < 60
