"""Fixtures for the real-servers suite: Redis on loopback, worker processes against PostgreSQL."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from .servers import Redis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def redis_server():
    port = int(os.environ["BROKER_URL"].rsplit(":", 1)[1].split("/")[0])
    server = Redis(port).start()
    yield server
    server.stop()


@pytest.fixture
def server_env(redis_server, transactional_db, tmp_path, settings, shared_dir):
    """The environment worker processes need to share this test's database, broker and files."""
    db = django_settings.DATABASES["default"]
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "BROKER_URL": redis_server.url,
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
        log = open(self.logs / f"{args[0]}-{len(self.started)}.log", "w")
        argv = [*prefix, sys.executable, str(ROOT / "manage.py"), *args]
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
