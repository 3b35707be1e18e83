"""What ``make demo`` shows on the terminal: Snakemake's run, one line per finished job.

Snakemake (with ``--quiet rules``) still prints five lines a job: its scheduling round ("Select
jobs to execute...", "Execute 1 jobs..."), a date, "Finished jobid: 12 (Rule: embed)" and
"5 of 69 steps (7%) done". ``condense`` drops the scheduling rounds and folds the other three into
"[19:49:27] 5/69 embed"; every other line (the header, the job table, warnings, errors,
tracebacks) passes as Snakemake printed it. The full log stays in .snakemake/log/.

    python -m samesky.console snakemake --cores 2 --quiet rules
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator

SCHEDULING = re.compile(r"^(Select jobs to execute\.\.\.|Execute \d+ jobs\.\.\.)$")
DATE = re.compile(r"^\[\w{3} \w{3} [ \d]\d ([\d:]{8}) \d{4}\]$")
FINISHED = re.compile(r"^Finished jobid: \d+ \(Rule: (\w+)\)$")
STEPS = re.compile(r"^(\d+) of (\d+) steps \(\d+%\) done$")


def condense(lines: Iterable[str]) -> Iterator[str]:
    """Snakemake's output lines (without newlines), one line per finished job (see module doc)."""
    held: list[str] = []  # a date line, then its "Finished" line, until the step count completes them
    for line in lines:
        if SCHEDULING.match(line):
            continue
        if not held and DATE.match(line) or len(held) == 1 and FINISHED.match(line):
            held.append(line)
            continue
        if len(held) == 2 and (steps := STEPS.match(line)):
            time, rule = DATE.match(held[0])[1], FINISHED.match(held[1])[1]
            held = []
            yield f"[{time}] {steps[1]}/{steps[2]} {rule}"
            continue
        yield from held
        held = []
        if DATE.match(line):
            held.append(line)
        else:
            yield line
    yield from held


def main(argv: list[str]) -> int:
    """Run ``argv`` (stdout and stderr together), print its condensed lines, return its exit status."""
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        # Ctrl-C reaches Snakemake as well (one process group): relay its shutdown, not a traceback.
        # Ignored only after the start, as a child would inherit the ignoring.
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for line in condense(raw.rstrip("\n") for raw in proc.stdout):
                print(line, flush=True)
        finally:
            signal.signal(signal.SIGINT, interrupt)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
