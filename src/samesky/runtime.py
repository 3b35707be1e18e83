"""Process-level helpers shared by the workflow scripts."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def setup_logging(log_path: str | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log to the rule's log file (if any) and to stderr, with timestamps."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("samesky")
    sys.excepthook = _log_uncaught(log)
    return log


def _log_uncaught(log: logging.Logger):
    """An excepthook that writes the traceback through ``log``, so a crashed job's log ends with it.

    Without it the traceback reaches only stderr, which Snakemake does not put in the rule's log.
    """
    def hook(exc_type, exc, tb):
        log.critical("uncaught %s, the job fails", exc_type.__name__, exc_info=(exc_type, exc, tb))
    return hook


def setup_job(smk) -> logging.Logger:
    """Start a rule's script: log to its log file, and use exactly the threads the rule was given.

    Without this, every torch/OpenMP job takes all of the node's cores, and parallel jobs on
    one machine oversubscribe it (Snakemake sets OMP_NUM_THREADS only for ``shell:`` rules).
    """
    use_threads(smk.threads)
    return setup_logging(smk.log[0] if smk.log else None)


def use_threads(n: int) -> None:
    """Limit intra-op CPU threads to ``n``: torch now if it is loaded, and any later import."""
    n = max(int(n), 1)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
