"""A throwaway single-node Slurm for tests: Debian packages, one node, a fake GPU.

`SlurmCluster(workdir).start()` installs slurmctld/slurmd/slurm-client/munge (if missing), writes
/etc/slurm/slurm.conf and gres.conf (backing up what was there), starts munged (if no munge
daemon answers yet), slurmctld and slurmd, and waits until the node is idle; `stop()` stops only
the daemons it started (by pid file) and restores /etc/slurm. Every wait is bounded.
`ensure_installed()` returns a reason to skip (not root, no apt-get, repositories unreachable).

Partitions `cpu` (default) and `gpu` share the one node, which has `Gres=gpu:1` backed by
/dev/null: Slurm allocates and accounts it like a real GPU and sets CUDA_VISIBLE_DEVICES in the
job, and torch (which finds no CUDA) falls back to the CPU.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
BINARIES = ["slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "munged", "munge"]
SLURM_ETC = Path("/etc/slurm")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
SLURMCTLD_PORT = 6817

# `print ...` lines of a TaskProlog go to the task's stdout, i.e. into the job's Slurm log: the
# test reads from there what Slurm gave each job.
TASK_PROLOG = """#!/bin/sh
echo "print slurm-test-env: SLURM_JOB_ID=$SLURM_JOB_ID SLURM_JOB_PARTITION=$SLURM_JOB_PARTITION \
SLURM_JOB_GPUS=${SLURM_JOB_GPUS:-} CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-}"
"""


def sh(cmd: list[str], timeout: float = 30, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command with a timeout, capturing text output; raise with its output on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def ensure_installed() -> str | None:
    """Install the Slurm and munge Debian packages if missing; return a reason to skip, or None."""
    if all(shutil.which(b) for b in BINARIES):
        return None
    if os.geteuid() != 0:
        return "installing Slurm needs root"
    if not shutil.which("apt-get"):
        return "no apt-get to install Slurm with"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        update = sh(["apt-get", "update", "-q"], timeout=300, check=False, env=env)
    except subprocess.TimeoutExpired:
        return "apt-get update timed out: package repositories unreachable"
    unreachable = update.returncode != 0 or "Err:" in update.stdout
    # keep package scripts from starting the daemons (the usual container policy)
    policy = Path("/usr/sbin/policy-rc.d")
    added_policy = not policy.exists()
    if added_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        sh(["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=120", "--no-install-recommends", *PACKAGES], timeout=600, env=env)
    except (RuntimeError, subprocess.TimeoutExpired):
        if unreachable:  # no network to the repositories: skip; otherwise a real failure
            return f"cannot install {PACKAGES}: apt-get update failed:\n{update.stdout[-1500:]}{update.stderr[-1500:]}"
        raise
    finally:
        if added_policy:
            policy.unlink()
    missing = [b for b in BINARIES if not shutil.which(b)]
    assert not missing, f"installed {PACKAGES} but {missing} are still not on PATH"
    return None


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_pidfile(pidfile: Path, timeout: float = 20):
    """SIGTERM the process named in a pid file, wait (bounded), then SIGKILL."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if not _pid_alive(pid):
        return
    os.kill(pid, 15)
    try:
        _wait(lambda: not _pid_alive(pid), timeout, f"pid {pid} ({pidfile.name}) to exit")
    except TimeoutError:
        os.kill(pid, 9)


class SlurmAlreadyRunning(RuntimeError):
    pass


class SlurmCluster:
    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.host = socket.gethostname().split(".")[0]
        self.cpus = len(os.sched_getaffinity(0))  # what `nproc` says
        mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        self.mem_mb = int(min(mem_mb * 0.9, mem_mb - 1024))
        self._backups: dict[Path, Path | None] = {}
        self._pidfiles: list[Path] = []  # daemons we started, stopped in reverse order

    # ---- configuration ----
    def slurm_conf(self) -> str:
        d = self.dir
        return f"""\
ClusterName=samesky-test
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SlurmctldPort={SLURMCTLD_PORT}
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
TaskProlog={d}/task_prolog.sh
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmdParameters=config_overrides
DefMemPerCPU=1000
MinJobAge=3600
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
GresTypes=gpu
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.mem_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={self.host} Default=NO MaxTime=INFINITE State=UP
"""

    def _install_file(self, path: Path, text: str):
        if path not in self._backups:
            backup = None
            if path.exists():
                backup = self.dir / "etc-backup" / path.name
                backup.parent.mkdir(exist_ok=True)
                shutil.copy2(path, backup)
            self._backups[path] = backup
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def _restore_files(self):
        for path, backup in self._backups.items():
            if backup is None:
                path.unlink(missing_ok=True)
            else:
                shutil.copy2(backup, path)
        self._backups.clear()

    # ---- daemons ----
    def _munge_works(self) -> bool:
        try:
            cred = sh(["munge", "-n"], timeout=10, check=False)
            return cred.returncode == 0 and sh(["unmunge"], input=cred.stdout, timeout=10, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _start_munge(self):
        if self._munge_works():
            return  # a munge daemon is already running: use it, leave it alone
        if not MUNGE_KEY.exists():
            MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
            MUNGE_KEY.write_bytes(os.urandom(1024))
        MUNGE_RUN.mkdir(parents=True, exist_ok=True)
        for path in (MUNGE_KEY.parent, MUNGE_KEY, MUNGE_RUN, Path("/var/lib/munge"), Path("/var/log/munge")):
            if path.exists():
                shutil.chown(path, "munge", "munge")
        MUNGE_KEY.chmod(0o400)
        MUNGE_KEY.parent.chmod(0o700)
        MUNGE_RUN.chmod(0o755)
        pidfile = MUNGE_RUN / "munged.pid"
        sh(["runuser", "-u", "munge", "--", "munged", f"--pid-file={pidfile}"], timeout=30)
        self._pidfiles.append(pidfile)
        _wait(self._munge_works, 30, "munged to answer")

    def _node_state(self) -> str:
        try:
            # one line per partition the node is in
            states = sh(["sinfo", "-h", "-N", "-n", self.host, "-o", "%t"], timeout=10, check=False).stdout.split()
        except subprocess.TimeoutExpired:
            return ""
        return ",".join(sorted(set(states)))

    def start(self, timeout: float = 60):
        if _port_open(SLURMCTLD_PORT):
            raise SlurmAlreadyRunning(f"port {SLURMCTLD_PORT} is in use: a slurmctld is already running here")
        for sub in ("state", "spool"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        prolog = self.dir / "task_prolog.sh"
        prolog.write_text(TASK_PROLOG)
        prolog.chmod(0o755)
        self._install_file(SLURM_ETC / "slurm.conf", self.slurm_conf())
        self._install_file(SLURM_ETC / "gres.conf", f"NodeName={self.host} Name=gpu File=/dev/null\n")
        self._start_munge()
        try:
            # both daemonize and write their pid files; -i: ignore errors in (absent) saved state
            self._pidfiles.append(self.dir / "slurmctld.pid")
            sh(["slurmctld", "-i"], timeout=30)
            _wait(lambda: _port_open(SLURMCTLD_PORT), timeout, "slurmctld to listen")
            self._pidfiles.append(self.dir / "slurmd.pid")
            sh(["slurmd"], timeout=30)
            _wait(lambda: self._node_state() == "idle", timeout, f"node {self.host} to be idle in sinfo", 1)
        except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as e:
            raise RuntimeError(f"starting Slurm failed: {e}\nsinfo says {self._node_state()!r}\n{self.logs()}") from None
        return self

    def cancel_jobs(self):
        """Cancel every job of this (throwaway) cluster; never raises."""
        try:
            sh(["scancel", "--user", str(os.geteuid()), "--full"], timeout=15, check=False)
        except (subprocess.TimeoutExpired, OSError):
            pass

    def stop(self):
        """Cancel the jobs, stop the daemons we started (newest first), restore /etc/slurm."""
        if self._pidfiles:
            self.cancel_jobs()
        for pidfile in reversed(self._pidfiles):
            _kill_pidfile(pidfile)
        self._pidfiles.clear()
        self._restore_files()

    # ---- diagnostics ----
    def logs(self, tail: int = 4000) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.dir / name
            if path.exists():
                out.append(f"--- {name} (tail) ---\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def diagnostics(self) -> str:
        """squeue, sinfo and the daemon logs, for failure messages."""
        out = []
        for cmd in (["sinfo"], ["squeue", "-a", "-t", "all", "-o", "%i %P %j %T %r %k"]):
            try:
                proc = sh(cmd, timeout=15, check=False)
                out.append(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
            except (subprocess.TimeoutExpired, OSError) as e:
                out.append(f"$ {' '.join(cmd)}: {e}")
        return "\n".join(out) + "\n" + self.logs()
