"""Distributed mode on real servers: PostgreSQL, Redis or RabbitMQ, worker processes killed for real.

The tests marked ``on_each_broker`` run once on Redis and once on RabbitMQ.
"""
import os
import signal
import time

import pytest

from execution import dispatch, engine
from execution.models import Node, Result
from tests.factories import make_job, make_task

from .conftest import BROKERS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
on_each_broker = pytest.mark.parametrize("broker_server", BROKERS, indirect=True)


def wait_until(predicate, timeout=60, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


def finished(submission, timeout=60):
    def done():
        submission.refresh_from_db()
        return submission.status in ("complete", "error", "crash", "cancelled")

    wait_until(done, timeout, f"submission {submission.uuid} to finish")
    return submission


def start(job, **kwargs):
    submission = engine.submit(job, **kwargs)
    dispatch.start(submission)
    return submission


def meet(here, there):
    """A step that says it started, then waits (30 s at most) until the other one has too.

    Side by side, both end soon after both started; one after the other, the first waits in
    vain and ends before the second starts. (A fixed sleep would need the second worker
    process to be up and take its step within that sleep, which a loaded machine does not promise.)
    """
    return f"touch {here}; for i in $(seq 600); do [ -e {there} ] && exit 0; sleep 0.05; done"


@on_each_broker
def test_independent_steps_run_in_parallel_on_separate_processes(processes, shared_dir):
    processes.start("worker", "--processes", "1", "--threads", "1")
    processes.start("worker", "--processes", "1", "--threads", "1")
    root = make_task("root", "true")
    left, right = make_task("left", meet(shared_dir / "left", shared_dir / "right")), make_task("right", meet(shared_dir / "right", shared_dir / "left"))
    job = make_job(steps=[("root", root, {"ordering": 0}), ("left", left, {"ordering": 1}), ("right", right, {"ordering": 1})])
    submission = finished(start(job))
    nodes = {node.key: node for node in submission.nodes.all()}
    assert submission.status == "complete"
    assert nodes["left"].started_at < nodes["right"].finished_at and nodes["right"].started_at < nodes["left"].finished_at
    assert nodes["left"].worker != nodes["right"].worker


@on_each_broker
def test_priorities_route_to_their_own_queues(processes):
    processes.start("worker", "--queues", "high_localhost", "--threads", "1")
    job = make_job(steps=[make_task("t", "true")])
    high = start(job, priority="high")
    normal = start(job, priority="normal")
    assert finished(high).status == "complete"
    time.sleep(1)
    normal.refresh_from_db()
    assert normal.nodes.get().status == "queued", "a worker on high_localhost only must not take a normal-priority node"
    processes.start("worker", "--queues", "localhost", "--threads", "1")
    assert finished(normal).status == "complete"


@on_each_broker
def test_high_priority_work_overtakes_a_backlog_of_normal_work(processes):
    """One worker thread, a backlog of normal submissions waiting before it starts, then a high one.

    The high one is sent once the first normal step runs; it must finish right after the step
    running then, and at most one more the worker had already taken, not after the backlog.
    """
    backlog = 10
    job = make_job(steps=[make_task("t", "sleep 0.3")])
    normals = [start(job) for _ in range(backlog)]
    processes.start("worker", "--processes", "1", "--threads", "1")
    wait_until(lambda: Node.objects.filter(submission__in=normals, status__in=["running", "succeeded"]).exists(), message="the backlog to start")
    done_when_sent = Node.objects.filter(submission__in=normals, status="succeeded").count()
    high = start(job, priority="high")
    assert finished(high).status == "complete"
    high_done = high.nodes.get().finished_at
    before = Node.objects.filter(submission__in=normals, status="succeeded", finished_at__lt=high_done).count()
    assert before <= done_when_sent + 2, f"{before} of {backlog} normal steps finished before the high one ({done_when_sent} had when it was sent)"
    assert before < backlog // 2
    for submission in normals:
        assert finished(submission).status == "complete"


def test_a_worker_started_while_redis_is_down_waits_for_it_and_then_runs(processes, redis_server):
    redis_server.stop()
    worker = processes.start("worker", "--threads", "1")
    # The worker is up and says it waits (SLUICE_BROKER_WAIT, 30 s by default), rather than exiting.
    wait_until(lambda: "Waiting up to" in open(worker.log_path).read(), 25, "the worker to say it waits for Redis")
    redis_server.start()
    submission = finished(start(make_job("after_the_broker", steps=[make_task("a", "true")])))
    assert submission.status == "complete", submission.last_message
    assert worker.poll() is None


@on_each_broker
def test_a_step_survives_kill_9_of_its_worker(processes, shared_dir):
    first = processes.start("worker", "--processes", "1", "--threads", "1")
    # The first attempt outlasts any delay before the kill; the second (the rerun) ends at once.
    tried = shared_dir / "tried"
    task = make_task("slow", f"[ -e {tried} ] || {{ touch {tried}; sleep 60; }}; echo done > $O1", out_glob=".out")
    submission = start(make_job(steps=[task]))
    node = wait_until(lambda: Node.objects.filter(submission=submission, status="running", handle__gt="").first(), message="the step to start")
    victim_pid = int(node.worker.rsplit(":", 1)[1])
    assert victim_pid == first.pid
    processes.start("worker", "--processes", "1", "--threads", "1")
    processes.start("reconcile", "--every", "0.5")
    os.kill(victim_pid, signal.SIGKILL)
    submission = finished(submission)
    node = submission.nodes.get()
    assert submission.status == "complete"
    assert node.attempt == 2 and node.worker != f"{node.worker.rsplit(':', 1)[0]}:{victim_pid}"
    assert Result.objects.filter(submission=submission).count() == 1
    assert "was lost" in " ".join(submission.messages.values_list("text", flat=True))


@on_each_broker
def test_every_submission_completes_across_a_broker_restart(processes, broker_server):
    """Redis comes back empty (no persistence here), RabbitMQ with what it had confirmed: either way nothing is lost."""
    processes.start("worker", "--processes", "2", "--threads", "2")
    processes.start("reconcile", "--every", "0.5")
    steps = [make_task(name, "sleep 0.3") for name in ("a", "b", "c")]
    job = make_job(steps=steps)
    submissions = [start(job) for _ in range(6)]
    wait_until(lambda: Node.objects.filter(status="succeeded").exists(), message="the first step to finish")
    broker_server.restart(down_for=1.0)
    for submission in submissions:
        assert finished(submission, timeout=90).status == "complete", submission.last_message
        assert submission.nodes.filter(status="succeeded").count() == 3


def test_cancel_kills_a_running_sleep_tree_on_another_process(processes, shared_dir):
    processes.start("worker", "--threads", "1")
    marker = shared_dir / "grandchild.pid"
    task = make_task("sleeper", f"sh -c 'echo $$ > {marker}; exec sleep 60' & sleep 60; wait")
    submission = start(make_job(steps=[task]))
    wait_until(lambda: marker.exists() and marker.read_text().strip(), message="the sleep tree to start")
    grandchild = int(marker.read_text())
    cancelled_at = time.monotonic()
    assert engine.cancel(submission.pk)
    wait_until(lambda: not _alive(grandchild), timeout=5, message="the grandchild to die")
    assert time.monotonic() - cancelled_at < 2
    submission.refresh_from_db()
    assert submission.status == "cancelled"


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_the_django_q2_cluster_runs_the_tick_schedule(processes):
    """`manage.py qcluster` (ORM broker) runs Sluice's tick: a due periodic submission is made and run.

    django-q2's sentinel looks at the schedules about every 30 s, so this takes up to a minute.
    """
    from django.utils import timezone
    from django_q.models import Schedule

    from execution import schedules
    from execution.models import PeriodicSubmission

    schedules.ensure_schedules()  # the test database is flushed between tests, schedules too
    assert Schedule.objects.filter(func="execution.schedules.tick").exists()
    periodic = PeriodicSubmission.objects.create(job=make_job("hourly", steps=[make_task("t", "true")]), every_minutes=60, next_run_at=timezone.now())
    processes.start("worker", "--threads", "1")
    processes.start("qcluster")

    def made():
        periodic.refresh_from_db()
        return periodic.last_submission

    submission = wait_until(made, timeout=150, message="qcluster to make the periodic submission")
    assert finished(submission).status == "complete"
    assert periodic.next_run_at > timezone.now()  # claimed: the next one is an hour away
