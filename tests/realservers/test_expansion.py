"""A foreach step is expanded exactly once, whoever gets there and whatever dies meanwhile."""
import fcntl
import os
import signal

import pytest
from django.db import connection, transaction

from execution.models import Edge, Node
from tests.factories import make_job, make_parameter, make_task

from .test_distributed import finished, start, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ITEMS = ["a", "b", "c", "d"]


def at_the_gate(directory, name):
    """A step that says it is there, then waits for the gate to open (a shared lock on ``gate``).

    The test holds the gate shut (an exclusive lock) until both steps wait at it; opening it
    wakes both at once, so they end within a fraction of a millisecond of each other.
    Names carry the submission's file id, so consecutive submissions do not see each other's files.
    """
    return f"touch {directory}/$ID.{name}; flock -s {directory}/gate true"


class Gate:
    """An exclusive lock on ``path`` that steps wait behind with ``flock -s``."""

    def __init__(self, path):
        self.path = path
        path.touch()
        self.inode = os.stat(path).st_ino

    def shut(self):
        self.handle = open(self.path)
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def waiting(self):
        """How many processes wait for this lock (blocked requests are the "->" lines of /proc/locks)."""
        with open("/proc/locks") as locks:
            return sum(1 for line in locks if " -> " in f" {line}" and line.split()[6].endswith(f":{self.inode}"))

    def open(self):
        self.handle.close()


PREDECESSORS = ["p0", "p1", "p2", "p3"]  # two per worker: four advances at once make a lost race likely


def scatter_job(shared_dir):
    before = [(key, make_task(key, at_the_gate(shared_dir, key)), {"ordering": 0}) for key in PREDECESSORS]
    shout = make_task("shout", "echo $ITEM", stdout_glob=".shout")
    make_parameter(shout, "things")
    return make_job("scatter", steps=[*before, ("shout", shout, {"ordering": 1, "foreach": {"param": "shout_things"}})])


def instances(submission):
    return sorted(Node.objects.filter(submission=submission, key__startswith="shout_").values_list("key", "status"))


EXPECTED = [(f"shout_{index}", "succeeded") for index in range(len(ITEMS))]


def test_predecessors_finishing_together_on_two_workers_expand_a_foreach_once(processes, shared_dir):
    processes.start("worker", "--processes", "1", "--threads", "2")
    processes.start("worker", "--processes", "1", "--threads", "2")
    processes.start("reconcile", "--every", "0.5")
    job = scatter_job(shared_dir)
    gate = Gate(shared_dir / "gate")
    outcomes = []
    for _ in range(60):  # today between one in eight and one in four goes wrong
        gate.shut()
        submission = start(job, params={"shout_things": ",".join(ITEMS)})
        wait_until(lambda: gate.waiting() == len(PREDECESSORS), timeout=120, message="every predecessor to wait at the gate")
        gate.open()
        submission = finished(submission, timeout=120)
        workers = set(Node.objects.filter(submission=submission, key__in=PREDECESSORS).values_list("worker", flat=True))
        assert len(workers) == 2, f"the predecessors should have run on both workers, not {workers}"
        errors = list(submission.messages.filter(level="error").values_list("text", flat=True))
        outcomes.append((submission.status, errors or submission.last_message, instances(submission)))
    bad = [outcome for outcome in outcomes if outcome[0] != "complete" or outcome[2] != EXPECTED]
    kinds = sorted({(status, (errors[0] if isinstance(errors, list) else errors)[-100:]) for status, errors, _ in bad})
    assert not bad, f"{len(bad)} of {len(outcomes)} submissions went wrong: {kinds}; e.g. instances {bad[0][2]}" if bad else ""


def blocked_by(backend_pid):
    """Database backends waiting for a lock that ``backend_pid`` holds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # within a transaction, the view is otherwise read once
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [backend_pid])
        return [row[0] for row in cursor.fetchall()]


def test_a_worker_killed_while_expanding_a_foreach_leaves_it_to_be_expanded_once(processes, shared_dir):
    """Hold writes to the edge table, so the worker that expands the foreach is stuck in the middle; kill it there.

    The instances' edges are written in the same expansion as the instances, so a worker waiting to
    write edges is in the middle of it: today, after the instances were stored and before the step was marked.
    """
    first = processes.start("worker", "--processes", "1", "--threads", "1")
    step = make_task("first", f"for i in $(seq 1200); do [ -e {shared_dir}/go ] && exit 0; sleep 0.05; done; exit 1")
    shout = make_task("shout", "echo $ITEM", stdout_glob=".shout")
    make_parameter(shout, "things")
    job = make_job("scatter", steps=[("first", step), ("shout", shout, {"ordering": 1, "foreach": {"param": "shout_things"}})])
    submission = start(job, params={"shout_things": ",".join(ITEMS)})
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(Edge._meta.db_table)} IN EXCLUSIVE MODE")
            cursor.execute("SELECT pg_backend_pid()")
            holder = cursor.fetchone()[0]
        (shared_dir / "go").touch()
        waiting = wait_until(lambda: blocked_by(holder), timeout=120, message="the worker to wait for the edge table while it expands the foreach")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
        with connection.cursor() as cursor:
            # The dead worker's connection goes with it (the server would notice at its next read).
            cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [waiting])
    processes.start("worker", "--processes", "1", "--threads", "1")
    processes.start("reconcile", "--every", "0.5")
    submission = finished(submission, timeout=120)
    assert submission.status == "complete", submission.last_message
    assert instances(submission) == EXPECTED
    shout_edges = Edge.objects.filter(submission=submission, target__key__startswith="shout_").values_list("source__key", flat=True)
    assert sorted(shout_edges) == ["shout"] * len(ITEMS)
