import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from dramatiq.middleware import Middleware

from execution import broker as broker_module
from execution import sandbox, workers
from execution.actors import run_node


def embedded_env(data_dir, **extra):
    """The environment of a manage.py process in the embedded mode on its own SQLite file in ``data_dir``.

    Whatever database and broker this test run uses (the whole suite also runs on PostgreSQL).
    """
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "BROKER_URL")}
    python = {"SLUICE_PYTHON": step_python()} if step_python() else {}
    return {**env, "SLUICE_DATA_DIR": str(data_dir), "SLUICE_WORK_DIR": str(searchable_dir("work-")), **python, **extra}


@pytest.fixture(scope="session", autouse=True)
def close_stray_connections(django_db_setup, django_db_blocker):
    """Worker and live-server threads hold database connections of their own. On PostgreSQL
    those would keep the test database from being dropped at the end, so end them first."""
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")


_step_root = []


def searchable_dir(prefix):
    """Make a new directory that steps running as SLUICE_STEP_USER can pass through (0711).

    pytest's own temporary root is private (0700, and every pytest run makes it
    so again), so steps' working directories live under a root of their own,
    as they pass through a real data directory (0711).
    """
    if not _step_root:
        _step_root.append(Path(tempfile.mkdtemp(prefix="sluice-tests-")))
        _step_root[0].chmod(0o711)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=_step_root[0]))
    path.chmod(0o711)
    return path


@pytest.fixture(scope="session", autouse=True)
def remove_step_root():
    yield
    if _step_root:
        shutil.rmtree(_step_root[0], ignore_errors=True)


@pytest.fixture
def shared_dir(settings):
    """A directory steps may write besides their own (SLUICE_SANDBOX_WRITE_PATHS): for tests that watch a step."""
    path = searchable_dir("shared-")
    path.chmod(0o1777)
    settings.SLUICE_SANDBOX_WRITE_PATHS = [str(path)]
    return path


def step_python():
    """The interpreter Python steps use in tests: the server's, unless the step user cannot reach it.

    A root server whose virtualenv lies under a private home directory (e.g. /root)
    cannot offer it to steps that run as SLUICE_STEP_USER; the system's python3
    then stands in for it, as an operator would set SLUICE_PYTHON.
    """
    plan = sandbox.current()
    if plan.user is not None and sandbox.unreachable(os.path.realpath(sys.executable), plan.user):
        return shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    return None


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    """Keep each test's media and working directories apart."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SLUICE_WORK_DIR = searchable_dir("work-")
    settings.SLUICE_RETRY_BACKOFF = 0
    settings.SLUICE_PYTHON = settings.SLUICE_PYTHON or step_python()
    return tmp_path


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("owner", password="pw-owner-123")


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("other", password="pw-other-123")


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("staff", password="pw-staff-123", is_staff=True, is_superuser=True)


class Enqueued(Middleware):
    """Record the queue of every message sent, to see where nodes were routed."""

    def __init__(self):
        self.queues = []

    def after_enqueue(self, broker, message, delay):
        self.queues.append(message.queue_name)


@pytest.fixture
def broker(settings):
    """A fresh stub broker per test, so workers' middleware does not pile up on one."""
    settings.SLUICE_HEARTBEAT_SECONDS = 0.1
    current = broker_module.setup()
    current.declare_actor(run_node)
    run_node.broker = current
    current.recorder = Enqueued()
    current.add_middleware(current.recorder)
    yield current
    current.flush_all()


@pytest.fixture
def worker(broker):
    running = workers.start_worker(None, threads=4)
    yield running
    running.stop()


# Deadlines only cost time when a test fails, and CI runs the suite on a loaded machine: be generous.
def wait_for(submission, statuses=("complete", "error", "crash", "cancelled"), timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        submission.refresh_from_db()
        if submission.status in statuses:
            return submission
        time.sleep(0.05)
    raise AssertionError(f"submission stayed {submission.status}: {submission.last_message}")


def settle(worker, timeout=60):
    """Wait until ``worker`` has handled every message sent so far, and every message those sent.

    A submission's status changes before its worker is done with it (the e-mail, the
    parent of a sub-job, the timeline message), so assert on those only once the worker settled.
    """
    broker = worker.broker
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in [name for name in list(broker.queues) if not name.endswith((".DQ", ".XQ"))]:
            broker.join(name, timeout=max(1, int((deadline - time.monotonic()) * 1000)))
        worker.join()
        if not any(queue.unfinished_tasks for queue in list(broker.queues.values())):
            return
    raise AssertionError(f"the worker was still busy after {timeout} s")


# The real-servers suite needs the servers `python -m tests.realservers` starts.
collect_ignore = [] if os.environ.get("SLUICE_REAL_SERVERS") else ["realservers"]
