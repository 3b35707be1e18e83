"""Process-level helpers shared by the workflow scripts."""
from __future__ import annotations

import atexit
import logging
import os
import re
import resource
import sys
from pathlib import Path

# Progress bars of the libraries jobs call (tqdm, Hugging Face hub and datasets): off, as a job's
# log is read after the fact and a bar there is one long line of carriage returns.
NO_PROGRESS_BARS = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def setup_logging(log_path: str | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log with timestamps to the rule's log file, if any, else to stderr.

    With a log file the terminal (the process's stderr as it started) gets only samesky's
    warnings and anyone's errors, each naming the log, and the process's stderr becomes the log
    file: what libraries print there (transformers' and Python's warnings, C libraries) stays
    with the job's detail instead of interleaving on the terminal of a run of many jobs."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        terminal = os.fdopen(os.dup(2), "w", buffering=1)
        log_file = open(log_path, "w", buffering=1)
        os.dup2(log_file.fileno(), 2)
        sys.stderr = log_file
        loud = logging.StreamHandler(terminal)
        loud.setLevel(logging.WARNING)
        loud.addFilter(lambda record: record.levelno >= logging.ERROR or record.name.startswith("samesky"))
        loud.setFormatter(logging.Formatter(f"%(levelname)s %(name)s ({log_path}): %(message)s"))
        handlers: list[logging.Handler] = [logging.StreamHandler(log_file), loud]
    else:
        handlers = [logging.StreamHandler(sys.stderr)]
    handlers[0].setFormatter(logging.Formatter(fmt))
    logging.basicConfig(level=level, handlers=handlers, force=True)
    log = logging.getLogger("samesky")
    sys.excepthook = _log_uncaught(log)
    return log


def _log_uncaught(log: logging.Logger):
    """An excepthook that writes the traceback through ``log``, so a crashed job's log ends with it.

    Without it the traceback reaches only stderr, which Snakemake does not put in the rule's log.
    """
    def hook(exc_type, exc, tb):
        log.critical("uncaught %s, the job fails", exc_type.__name__, exc_info=(exc_type, exc, tb))
        sys.excepthook = sys.__excepthook__  # called: nothing more is logged (setup_job's usage line)
    return hook


def setup_job(smk) -> logging.Logger:
    """Start a rule's script: log to its log file, and use exactly the threads the rule was given;
    its last line says what it used (``USAGE``).

    Without this, every torch/OpenMP job takes all of the node's cores, and parallel jobs on
    one machine oversubscribe it (Snakemake sets OMP_NUM_THREADS only for ``shell:`` rules).
    """
    use_threads(smk.threads)
    for var, value in NO_PROGRESS_BARS.items():
        os.environ.setdefault(var, value)
    log = setup_logging(smk.log[0] if smk.log else None)
    crash_hook = sys.excepthook
    atexit.register(lambda: sys.excepthook is crash_hook and log.info(usage()))  # a crash's log ends with it
    return log


# A job's last log line: its exact peak memory and CPU time (a benchmark: file samples both every
# 30 s once a job has run 15 s, so it misses peaks and the last interval's CPU of a long job)
USAGE = re.compile(r"job usage: peak RSS (?P<peak_mb>[0-9.]+) MB, CPU (?P<cpu_s>[0-9.]+) s")


def usage() -> str:
    """This process's peak resident memory and user + system CPU time so far, as ``USAGE`` reads them."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return f"job usage: peak RSS {r.ru_maxrss / 1024:.0f} MB, CPU {r.ru_utime + r.ru_stime:.1f} s"


def use_threads(n: int) -> None:
    """Limit intra-op CPU threads to ``n``: torch now if it is loaded, and any later import."""
    n = max(int(n), 1)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "numba" in sys.modules:
        sys.modules["numba"].set_num_threads(min(n, sys.modules["numba"].config.NUMBA_NUM_THREADS))
