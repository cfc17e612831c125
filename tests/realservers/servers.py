"""Start real PostgreSQL and Redis servers on loopback for the real-servers suite.

Both run from temporary directories on free ports and are thrown away after
the run. PostgreSQL runs as the ``postgres`` user when we are root (it
refuses to run as root), with durability off: these are test servers.
"""
import os
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
