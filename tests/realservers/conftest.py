"""Fixtures for the real-servers suite: Redis, RabbitMQ and an S3 server on loopback, worker processes against PostgreSQL.

``broker_server`` is the broker a test's worker processes and the test
itself use: Redis unless the test asks for RabbitMQ too, with
``@pytest.mark.parametrize("broker_server", BROKERS, indirect=True)``.
Each server starts once per run, the first time a test needs it.
"""
import hashlib
import os
import uuid
import signal
import subprocess
import sys
import time
from pathlib import Path

import dramatiq
import pytest
from django.conf import settings as django_settings

from config import storage
from execution import broker as broker_module
from execution.actors import run_node

from .servers import MotoS3, RabbitMQ, Redis

ROOT = Path(__file__).resolve().parents[2]
# The brokers the key distributed tests run on (docs/operations.md, "Testing").
BROKERS = ["redis", "rabbitmq"]


@pytest.fixture(scope="session")
def redis_server():
    port = int(os.environ["BROKER_URL"].rsplit(":", 1)[1].split("/")[0])
    server = Redis(port).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq_server():
    server = RabbitMQ().start()
    yield server
    server.stop()


@pytest.fixture
def broker_server(request, settings):
    """The broker of this test (``request.param``: "redis" or "rabbitmq"; Redis when not parametrized).

    This process sends messages too (``dispatch.start``), so its Dramatiq
    broker is switched to the same server for the test and back after it.
    """
    name = getattr(request, "param", "redis")
    server = request.getfixturevalue(f"{name}_server")
    server.name = name
    if settings.BROKER_URL == server.url:
        yield server
        return
    previous = dramatiq.get_broker()
    settings.BROKER_URL = server.url
    current = broker_module.setup()
    current.declare_actor(run_node)
    run_node.broker = current
    try:
        yield server
    finally:
        current.close()
        dramatiq.set_broker(previous)
        run_node.broker = previous


@pytest.fixture
def server_env(broker_server, transactional_db, tmp_path, settings, shared_dir):
    """The environment worker processes need to share this test's database, broker and files."""
    db = django_settings.DATABASES["default"]
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "BROKER_URL": broker_server.url,
        "SLUICE_DATA_DIR": str(tmp_path),
        "SLUICE_WORK_DIR": str(settings.SLUICE_WORK_DIR),
        "SLUICE_SANDBOX_WRITE_PATHS": str(shared_dir),
        "SLUICE_LEASE_SECONDS": "2",
        "SLUICE_HEARTBEAT_SECONDS": "0.2",
        "SLUICE_REQUEUE_SECONDS": "2",
        "SLUICE_RETRY_BACKOFF": "0",
        "DATABASE_CONN_MAX_AGE": "0",
        "SLUICE_LOG_LEVEL": "INFO",
    }


class Processes:
    """Start manage.py commands as real processes; stop whatever is left at the end."""

    def __init__(self, env, logs):
        self.env = env
        self.logs = logs
        self.started = []

    def start(self, *args, env=None, prefix=()):
        """Start ``manage.py *args``; ``env`` adds to the shared environment, ``prefix`` runs the command through another."""
        return self.start_argv([*prefix, sys.executable, str(ROOT / "manage.py"), *args], env=env, name=args[0])

    def start_argv(self, argv, env=None, name="process"):
        """Start ``argv`` with the shared environment plus ``env``; its output goes to a log named after ``name``."""
        log = open(self.logs / f"{name}-{len(self.started)}.log", "w")
        process = subprocess.Popen(argv, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        process.log_path = log.name
        self.started.append(process)
        return process

    def stop_all(self):
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.started:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes(server_env, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    started = Processes(server_env, logs)
    yield started
    started.stop_all()


@pytest.fixture(autouse=True)
def shared_storage(settings, tmp_path):
    """Read results where the worker processes write them (their SLUICE_DATA_DIR is tmp_path, their work dir this test's)."""
    settings.MEDIA_ROOT = tmp_path / "media"


MB = 1024 * 1024
EXPIRE = 60  # seconds a signed download URL lasts in these tests (AWS_QUERYSTRING_EXPIRE)


@pytest.fixture(scope="session")
def s3_server():
    server = MotoS3().start()
    yield server
    server.stop()


class Bucket:
    """One test's bucket on the shared S3 server, and the environment that points Sluice at it."""

    def __init__(self, server, name):
        self.server, self.name = server, name
        self.env = server.environ(bucket=name, AWS_QUERYSTRING_EXPIRE=str(EXPIRE))

    def keys(self, prefix=""):
        return self.server.keys(prefix, bucket=self.name)

    def read(self, key):
        return self.server.client().get_object(Bucket=self.name, Key=key)["Body"].read()

    def digest(self, key):
        """sha256 of an object, read in chunks."""
        digest = hashlib.sha256()
        with self.server.client().get_object(Bucket=self.name, Key=key)["Body"] as body:
            for chunk in iter(lambda: body.read(MB), b""):
                digest.update(chunk)
        return digest.hexdigest()


@pytest.fixture
def bucket(s3_server, settings, tmp_path):
    """A fresh bucket, used by this process (settings) and by the workers the test starts (``bucket.env``)."""
    made = Bucket(s3_server, s3_server.create_bucket(f"sluice-{uuid.uuid4().hex[:16]}"))
    settings.STORAGES = {**settings.STORAGES, "default": storage.default_storage(made.env)}
    yield made
    media = tmp_path / "media"
    stray = [str(path) for path in media.rglob("*") if path.is_file()] if media.exists() else []
    assert not stray, f"files were written to MEDIA_ROOT although storage is a bucket: {stray}"
