"""make demo's terminal (samesky.console): one line per finished job, everything else verbatim."""
import sys

from samesky.console import condense, main

# Snakemake 9.27's output of `--quiet rules` (from a demo run), with a failure and a warning between
RUN = """Job stats:
job                  count
-----------------  -------
embed                    1
all                      1
total                    2

Select jobs to execute...
Execute 2 jobs...
Select jobs to execute...
[Sun Dec  6 19:49:27 2026]
Finished jobid: 39 (Rule: embed)
1 of 2 steps (50%) done
Execute 1 jobs...
WARNING samesky.embed: something worth seeing (logs/embed/x.log)
[Sun Dec  6 19:50:25 2026]
Error in rule all:
    jobid: 0
[Sun Dec  6 20:04:52 2026]
Finished jobid: 0 (Rule: all)
2 of 2 steps (100%) done
Complete log(s): /tmp/demo/.snakemake/log/2026-12-06T194908.818530.snakemake.log"""


def test_condense_folds_each_finished_job_into_one_line_and_keeps_the_rest():
    assert list(condense(RUN.splitlines())) == [
        *RUN.splitlines()[:7],
        "[19:49:27] 1/2 embed",
        "WARNING samesky.embed: something worth seeing (logs/embed/x.log)",
        "[Sun Dec  6 19:50:25 2026]",
        "Error in rule all:",
        "    jobid: 0",
        "[20:04:52] 2/2 all",
        "Complete log(s): /tmp/demo/.snakemake/log/2026-12-06T194908.818530.snakemake.log",
    ]


def test_condense_keeps_an_unfinished_block_at_the_end():
    assert list(condense(["[Sun Dec  6 19:49:27 2026]", "Finished jobid: 3 (Rule: embed)"])) == [
        "[Sun Dec  6 19:49:27 2026]", "Finished jobid: 3 (Rule: embed)"]


def test_main_relays_the_output_and_the_exit_status(capfd):
    code = "import sys; print('Execute 1 jobs...'); print('oops', file=sys.stderr); sys.exit(3)"
    assert main([sys.executable, "-c", code]) == 3
    assert capfd.readouterr().out == "oops\n"
