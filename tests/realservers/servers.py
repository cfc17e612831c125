"""Start real PostgreSQL and Redis servers on loopback for the real-servers suite.

Both run from temporary directories on free ports and are thrown away after
the run. PostgreSQL runs as the ``postgres`` user when we are root (it
refuses to run as root), with durability off: these are test servers.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def _pg_bin(name):
    for directory in PG_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


def _as_postgres(argv):
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class Postgres:
    def __init__(self):
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="sluice-pg-"))
        self.data = self.root / "data"
        self.user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")

    @property
    def url(self):
        return f"postgres://{self.user}@127.0.0.1:{self.port}/sluice"

    def start(self):
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        run = lambda argv: subprocess.run(_as_postgres(argv), check=True, capture_output=True)  # noqa: E731
        run([_pg_bin("initdb"), "-D", str(self.data), "--auth=trust", "-U", self.user, "--no-sync"])
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        run([_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start"])
        wait_for_port(self.port)
        return self

    def stop(self):
        subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


class Redis:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, down_for=0.5):
        """Kill the server (losing every message it held) and start a fresh one on the same port."""
        self.stop()
        time.sleep(down_for)
        self.start()


class Slurm:
    """A single-node Slurm cluster (slurmctld + slurmd, and a munged of its own) on private ports.

    Everything lives in a temporary directory: a generated ``slurm.conf``, the
    state, spool, pid and log files, and munged's socket. ``env`` is what a
    process needs to use it with ``sbatch``/``squeue``/``scancel``: ``SLURM_CONF``.
    The node claims more CPUs and memory than the machine has
    (``SlurmdParameters=config_overrides``) so that many small test jobs run at
    once; nothing enforces them here (no cgroups).
    """

    BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")

    def __init__(self, cpus=64, memory_mb=8192):
        self.root = Path(tempfile.mkdtemp(prefix="sluice-slurm-"))
        self.conf = self.root / "slurm.conf"
        self.cpus, self.memory_mb = cpus, memory_mb
        self.host = socket.gethostname().split(".")[0]
        self.processes = []

    @property
    def env(self):
        return {"SLURM_CONF": str(self.conf)}

    def start(self, timeout=60.0):
        missing = [name for name in self.BINARIES if not (shutil.which(name) or Path(f"/usr/sbin/{name}").exists())]
        if missing:
            raise RuntimeError(f"Slurm is not installed: {', '.join(missing)} missing (apt-get install slurmctld slurmd slurm-client munge)")
        self.root.chmod(0o755)  # munged runs as munge and must reach its directory
        for name in ("state", "spool", "munge"):
            (self.root / name).mkdir()
        self._start_munged()
        self.conf.write_text(self._conf())
        self.processes.append(subprocess.Popen([_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.processes.append(subprocess.Popen([_sbin("slurmd"), "-D", "-f", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self._wait_idle(timeout)
        return self

    def _start_munged(self):
        munge = self.root / "munge"
        if os.geteuid() == 0:
            shutil.chown(munge, "munge")
        argv = [
            _sbin("munged"), f"--socket={munge / 'socket'}", f"--pid-file={munge / 'pid'}", f"--log-file={munge / 'log'}",
            f"--seed-file={munge / 'seed'}", "--key-file=/etc/munge/munge.key", "--foreground",
        ]
        self.munged = subprocess.Popen(["runuser", "-u", "munge", "--", *argv] if os.geteuid() == 0 else argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (munge / "socket").exists():
            if self.munged.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"munged did not start; see {munge / 'log'}")
            time.sleep(0.05)

    def _conf(self):
        root, host = self.root, self.host
        return "\n".join([
            "ClusterName=sluice-test",
            f"SlurmctldHost={host}",
            "SlurmUser=root", "SlurmdUser=root",
            f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={root / 'munge' / 'socket'}",
            f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'slurmctld.log'}", f"SlurmdLogFile={root / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
            "MpiDefault=none", "SwitchType=switch/none",
            # Fast for tests: schedule on every submission, short timeouts, finished jobs kept for squeue.
            # batch_sched_delay=0: a job submitted while another ends starts in ~1 s instead of ~3 s.
            "SchedulerType=sched/builtin", "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
            "SlurmdParameters=config_overrides", "ReturnToService=2",
            "MessageTimeout=10", "KillWait=2", "MinJobAge=600", "SlurmdTimeout=30", "InactiveLimit=0",
            f"NodeName={host} CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ])

    def _wait_idle(self, timeout):
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args[0]} exited with {process.returncode}; see the logs in {self.root}")
            probe = subprocess.run(["sinfo", "--noheader", "--format=%t"], env={**os.environ, **self.env}, capture_output=True, text=True)
            state = probe.stdout.strip()
            if probe.returncode == 0 and state.startswith("idle"):
                return
            time.sleep(0.3)
        raise RuntimeError(f"the Slurm node is not idle after {timeout} s (sinfo says {state!r}); see the logs in {self.root}")

    def stop(self):
        for process in [*reversed(self.processes), getattr(self, "munged", None)]:
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _sbin(name):
    return shutil.which(name) or f"/usr/sbin/{name}"
