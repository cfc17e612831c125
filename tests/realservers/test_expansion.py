"""A foreach step is expanded exactly once, whoever gets there and whatever dies meanwhile."""
import os
import signal

import pytest
from django.db import connection, transaction

from execution.models import Edge, Node
from tests.factories import make_job, make_parameter, make_task

from .test_distributed import finished, start, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ITEMS = ["a", "b", "c", "d"]


def together(directory, here, there):
    """A step that ends as soon as the other one has started: both end within a few milliseconds.

    Names carry the submission's file id, so that consecutive submissions do not meet each other's files.
    """
    return f"touch {directory}/$ID.{here}; for i in $(seq 20000); do [ -e {directory}/$ID.{there} ] && exit 0; sleep 0.002; done; exit 1"


def scatter_job(tmp_path):
    left = make_task("left", together(tmp_path, "left", "right"))
    right = make_task("right", together(tmp_path, "right", "left"))
    shout = make_task("shout", "echo $ITEM", stdout_glob=".shout")
    make_parameter(shout, "things")
    return make_job("scatter", steps=[
        ("left", left, {"ordering": 0}),
        ("right", right, {"ordering": 0}),
        ("shout", shout, {"ordering": 1, "foreach": {"param": "shout_things"}}),
    ])


def instances(submission):
    return sorted(Node.objects.filter(submission=submission, key__startswith="shout_").values_list("key", "status"))


EXPECTED = [(f"shout_{index}", "succeeded") for index in range(len(ITEMS))]


def test_predecessors_finishing_together_on_two_workers_expand_a_foreach_once(processes, tmp_path):
    processes.start("worker", "--processes", "1", "--threads", "1")
    processes.start("worker", "--processes", "1", "--threads", "1")
    processes.start("reconcile", "--every", "0.5")
    job = scatter_job(tmp_path)
    outcomes = []
    for _ in range(40):
        submission = finished(start(job, params={"shout_things": ",".join(ITEMS)}), timeout=120)
        nodes = dict(Node.objects.filter(submission=submission, key__in=["left", "right"]).values_list("key", "worker"))
        assert nodes["left"] != nodes["right"], "left and right should have run on the two workers"
        outcomes.append((submission.status, submission.last_message, instances(submission)))
    bad = [outcome for outcome in outcomes if outcome[0] != "complete" or outcome[2] != EXPECTED]
    assert not bad, f"{len(bad)} of {len(outcomes)} submissions went wrong, e.g. {bad[0]}"


def blocked_by(backend_pid):
    """Database backends waiting for a lock that ``backend_pid`` holds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # within a transaction, the view is otherwise read once
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [backend_pid])
        return [row[0] for row in cursor.fetchall()]


def test_a_worker_killed_while_expanding_a_foreach_leaves_it_to_be_expanded_once(processes, tmp_path):
    """Hold writes to the edge table, so the worker that expands the foreach is stuck in the middle; kill it there.

    The instances' edges are written in the same expansion as the instances, so a worker waiting to
    write edges is in the middle of it: today, after the instances were stored and before the step was marked.
    """
    first = processes.start("worker", "--processes", "1", "--threads", "1")
    step = make_task("first", f"for i in $(seq 1200); do [ -e {tmp_path}/go ] && exit 0; sleep 0.05; done; exit 1")
    shout = make_task("shout", "echo $ITEM", stdout_glob=".shout")
    make_parameter(shout, "things")
    job = make_job("scatter", steps=[("first", step), ("shout", shout, {"ordering": 1, "foreach": {"param": "shout_things"}})])
    submission = start(job, params={"shout_things": ",".join(ITEMS)})
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(Edge._meta.db_table)} IN EXCLUSIVE MODE")
            cursor.execute("SELECT pg_backend_pid()")
            holder = cursor.fetchone()[0]
        (tmp_path / "go").touch()
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
