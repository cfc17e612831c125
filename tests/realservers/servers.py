"""Start real PostgreSQL, Redis and RabbitMQ servers on loopback for the real-servers suite.

All run from temporary directories on free ports and are thrown away after
the run. PostgreSQL runs as the ``postgres`` user when we are root (it
refuses to run as root), with durability off: these are test servers.
RabbitMQ runs as the ``rabbitmq`` user, with its Erlang port mapper (epmd)
and distribution port private too, so it meets no other RabbitMQ node.
"""
import os
import signal
import shutil
import socket
import subprocess
import sys
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
    def __init__(self, max_connections=None):
        self.max_connections = max_connections  # None: PostgreSQL's default (100)
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
        if self.max_connections:
            options += f" -c max_connections={int(self.max_connections)}"
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


RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class RabbitMQ:
    """A RabbitMQ node of its own: private ports, data and logs in a temp dir, user ``sluice`` on vhost ``sluice``.

    ``restart`` kills the node (SIGKILL) and starts it again on the same data
    directory, as a crashed broker comes back: durable queues and the
    persistent messages RabbitMQ confirmed are still there.
    """

    user, password, vhost = "sluice", "sluice-test", "sluice"

    def __init__(self):
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.root = Path(tempfile.mkdtemp(prefix="sluice-rabbitmq-"))
        self.process = None

    @property
    def url(self):
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.vhost}"

    def _env(self):
        root = self.root
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(root),  # where Erlang writes the node's cookie
            "RABBITMQ_NODENAME": f"sluice{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_PID_FILE": str(root / "pid"),
            # No system-wide configuration or plugins: the node is exactly what this class says.
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            # Made on the first boot only; a restart finds them in the data directory.
            "RABBITMQ_DEFAULT_USER": self.user,
            "RABBITMQ_DEFAULT_PASS": self.password,
            "RABBITMQ_DEFAULT_VHOST": self.vhost,
        }

    def start(self, timeout=60.0):
        if not RABBITMQ_SERVER.exists():
            raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        (self.root / "enabled_plugins").write_text("[].\n")
        as_rabbitmq = {"user": "rabbitmq", "group": "rabbitmq", "extra_groups": []} if os.geteuid() == 0 else {}
        if as_rabbitmq:
            shutil.chown(self.root, "rabbitmq", "rabbitmq")
            shutil.chown(self.root / "enabled_plugins", "rabbitmq", "rabbitmq")
        log = open(self.root / "console.log", "ab")
        self.process = subprocess.Popen(
            [str(RABBITMQ_SERVER)], env=self._env(), cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **as_rabbitmq,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.process.returncode}:\n{self.console()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"RabbitMQ did not accept AMQP connections within {timeout} s:\n{self.console()}")
            time.sleep(0.2)
        return self

    def _accepts(self):
        """True once the node takes an AMQP login (its port opens a little before it does)."""
        import logging

        import pika

        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        quiet = logging.getLogger("pika")
        level, quiet.level = quiet.level, logging.CRITICAL
        try:
            pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2")).close()
            return True
        except Exception:
            return False
        finally:
            quiet.setLevel(level)

    def console(self):
        path = self.root / "console.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill(self):
        """Kill the node at once (the shell wrapper and the Erlang VM: one process group)."""
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    def stop(self):
        self.kill()
        epmd = shutil.which("epmd")
        # The port mapper daemonizes out of the node's process group: ask it to exit. It refuses
        # while it still lists the node, which it forgets a moment after the node dies.
        deadline = time.monotonic() + 10
        while epmd and time.monotonic() < deadline:
            done = subprocess.run([epmd, "-port", str(self.epmd_port), "-kill"], capture_output=True, text=True, timeout=10)
            if done.returncode == 0 or "Cannot connect" in done.stdout + done.stderr:
                break
            time.sleep(0.2)
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self, down_for=0.5):
        """Kill the node and start it again on the same ports and data directory."""
        self.kill()
        time.sleep(down_for)
        self.start()


class MotoS3:
    """An S3-compatible server (moto's ``moto_server``, a real HTTP server process) on a free loopback port.

    ``start()`` creates ``bucket``; ``environ`` is what Sluice's processes need to use it
    (SLUICE_STORAGE=s3 and the AWS_* settings, with a made-up key pair: moto accepts any).
    """

    REGION = "us-east-1"
    ACCESS_KEY = "sluice-test-access-key"
    SECRET_KEY = "sluice-test-secret-key"

    def __init__(self, bucket="sluice-test"):
        self.port = free_port()
        self.bucket = bucket
        self.process = None
        self.root = Path(tempfile.mkdtemp(prefix="sluice-s3-"))

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def environ(self, bucket=None, **extra):
        return {
            "SLUICE_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": bucket or self.bucket,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_S3_REGION_NAME": self.REGION,
            "AWS_ACCESS_KEY_ID": self.ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.SECRET_KEY,
            **extra,
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=self.REGION, aws_access_key_id=self.ACCESS_KEY, aws_secret_access_key=self.SECRET_KEY,
        )

    def start(self):
        binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        if not Path(binary).exists():
            raise RuntimeError("moto_server is not installed (pip install 'moto[server]', see requirements-test.txt)")
        log = open(self.root / "moto.log", "w")
        self.process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        wait_for_port(self.port)
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def create_bucket(self, name):
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, prefix="", bucket=None):
        """Every key in the bucket (under ``prefix``), sorted."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket or self.bucket, Prefix=prefix)
        return sorted(entry["Key"] for page in pages for entry in page.get("Contents", ()))

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


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
