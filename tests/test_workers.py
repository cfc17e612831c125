"""Steps run on Dramatiq workers: the stub broker and an in-process worker, a real SQLite file."""
import os
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from execution import dispatch, engine, lifecycle, reconcile, retention, schedules, workers
from execution.models import Node, PeriodicSubmission, Result, Submission
from execution.states import NodeStatus
from tests.conftest import wait_for
from tests.factories import make_job, make_task

pytestmark = pytest.mark.django_db(transaction=True)


def start(job, **kwargs):
    submission = engine.submit(job, **kwargs)
    dispatch.start(submission)
    return submission


def test_a_submission_runs_to_complete_on_workers(worker):
    first = make_task("first", "echo hello", stdout_glob=".txt")
    second = make_task("second", "tr a-z A-Z < $I1", in_glob=".txt", stdout_glob=".up")
    submission = wait_for(start(make_job(steps=[first, second])))
    assert submission.status == "complete"
    with Result.objects.get(submission=submission, ending=".up").file.open("rb") as handle:
        assert handle.read() == b"HELLO\n"
    assert all(node.worker == dispatch.WORKER_ID for node in submission.nodes.all())


def meet(here, there):
    """A step that says it started, then waits (20 s at most) until the other one has too.

    Run side by side, both steps end soon after both started; run one after the other, the
    first waits in vain and ends before the second starts. A fixed sleep would instead need
    the second to start within that sleep, which a loaded machine does not promise.
    """
    return f"touch {here}; for i in $(seq 400); do [ -e {there} ] && exit 0; sleep 0.05; done"


def test_independent_nodes_run_at_the_same_time(worker, tmp_path):
    a = make_task("a", "true")
    b = make_task("b", meet(tmp_path / "b", tmp_path / "c"))
    c = make_task("c", meet(tmp_path / "c", tmp_path / "b"))
    job = make_job(steps=[("a", a, {"ordering": 0}), ("b", b, {"ordering": 1}), ("c", c, {"ordering": 1})])
    submission = wait_for(start(job))
    nodes = {node.key: node for node in submission.nodes.all()}
    assert submission.status == "complete"
    assert nodes["b"].started_at < nodes["c"].finished_at and nodes["c"].started_at < nodes["b"].finished_at


@pytest.mark.parametrize("priority, queue", [("low", "low_localhost"), ("normal", "localhost"), ("high", "high_localhost")])
def test_a_submission_priority_picks_the_queue(broker, priority, queue):
    submission = start(make_job(steps=[make_task("t", "true")]), priority=priority)
    assert broker.recorder.queues == [queue]
    assert broker.queues[queue].qsize() == 1
    assert submission.nodes.get().status == "queued"


def test_the_fast_path_runs_a_chain_with_one_message(worker):
    tasks = [make_task(name, "true") for name in ("one", "two", "three")]
    submission = wait_for(start(make_job(steps=tasks)))
    assert submission.status == "complete"
    assert worker.broker.recorder.queues == ["localhost"]


def test_fan_out_sends_a_message_per_branch(worker):
    a, b, c = make_task("a", "true"), make_task("b", "true"), make_task("c", "true")
    job = make_job(steps=[("a", a, {"ordering": 0}), ("b", b, {"ordering": 1}), ("c", c, {"ordering": 1})])
    assert wait_for(start(job)).status == "complete"
    assert worker.broker.recorder.queues == ["localhost"] * 3


def test_cancel_kills_the_running_process_tree_within_two_seconds(worker, shared_dir):
    marker = shared_dir / "child.pid"
    task = make_task("sleeper", f"sh -c 'echo $$ > {marker}; sleep 30' & sleep 30; wait")
    submission = start(make_job(steps=[task]))
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(marker.read_text())
    while not submission.nodes.filter(handle__gt="").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the watchdog records the process group on its next beat
    node = submission.nodes.get()
    assert node.status == "running" and node.handle
    cancelled_at = time.monotonic()
    assert engine.cancel(submission.pk)
    while _alive(child) and time.monotonic() - cancelled_at < 5:
        time.sleep(0.02)
    assert not _alive(child), "the grandchild sleep survived the cancel"
    assert time.monotonic() - cancelled_at < 2
    submission = wait_for(submission)
    assert submission.status == "cancelled"
    assert submission.nodes.get().status == "cancelled"
    assert not submission.results.exists()


def _alive(pid):
    # A killed child of another process lingers as a zombie until reaped; it may be reaped
    # (its /proc entry gone) at any moment, also between two looks.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_retry_waits_for_its_backoff(worker, settings, shared_dir):
    settings.SLUICE_RETRY_BACKOFF = 0.5
    counter = shared_dir / "count"
    task = make_task("flaky", f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 2 ]", retries=1)
    submission = wait_for(start(make_job(steps=[task])))
    node = submission.nodes.get()
    assert (submission.status, node.attempt) == ("complete", 2)
    assert "retrying in 0.5 s" in " ".join(submission.messages.values_list("text", flat=True))


def claimed(node_id, attempt=1, worker="", lease_expires_at=None):
    """Leave a node as a worker that claimed it would (a dead one, when its lease has passed)."""
    assert lifecycle.claim(Node.objects.get(pk=node_id), worker)
    Node.objects.filter(pk=node_id).update(attempt=attempt, lease_expires_at=lease_expires_at)


def test_the_reconciler_reruns_a_node_whose_worker_died(worker):
    submission = engine.submit(make_job(steps=[make_task("t", "echo done", stdout_glob=".txt")]))
    node_id = submission.ready[0]
    # As a worker would leave it after kill -9: running, with a lease nobody renews.
    claimed(node_id, attempt=1, worker="gone:1", lease_expires_at=timezone.now() - timedelta(seconds=1))
    report = reconcile.reconcile()
    assert report.rerun == [node_id]
    submission = wait_for(submission)
    node = submission.nodes.get()
    assert (submission.status, node.status, node.attempt) == ("complete", "succeeded", 2)
    assert submission.results.count() == 1


def test_a_node_lost_too_often_crashes_the_submission(broker, settings):
    settings.SLUICE_LOST_NODE_RETRIES = 1
    submission = engine.submit(make_job(steps=[make_task("t", "true")]))
    node_id = submission.ready[0]
    claimed(node_id, attempt=2, worker="gone:1", lease_expires_at=timezone.now() - timedelta(seconds=1))
    report = reconcile.reconcile()
    submission.refresh_from_db()
    assert report.crashed == [submission.pk]
    assert submission.status == "crash"
    assert "was lost 2 times" in submission.last_message


def test_a_live_lease_is_left_alone(broker):
    submission = engine.submit(make_job(steps=[make_task("t", "true")]))
    node_id = submission.ready[0]
    claimed(node_id, attempt=1, lease_expires_at=timezone.now() + timedelta(seconds=30))
    assert not reconcile.reconcile()
    assert Node.objects.get(pk=node_id).status == "running"


def test_a_queued_node_whose_message_was_lost_is_sent_again(worker, settings):
    settings.SLUICE_REQUEUE_SECONDS = 0
    submission = engine.submit(make_job(steps=[make_task("t", "true")]))
    assert submission.ready  # queued, but never sent: as if the broker lost it
    time.sleep(0.01)
    assert reconcile.reconcile().resent
    assert wait_for(submission).status == "complete"


def test_a_stalled_submission_is_advanced(worker):
    submission = engine.submit(make_job(steps=[make_task("t", "true")]))
    submission.nodes.update(status="pending", queued_at=None)  # as if the first advance never happened
    assert reconcile.reconcile().advanced
    assert wait_for(submission).status == "complete"


def test_recover_reruns_what_a_previous_process_left_running(worker):
    submission = engine.submit(make_job(steps=[make_task("t", "true")]))
    node_id = submission.ready[0]
    claimed(node_id, attempt=1, lease_expires_at=timezone.now() + timedelta(seconds=30))
    assert reconcile.recover().rerun == [node_id]
    assert wait_for(submission).status == "complete"


def test_worker_shutdown_hands_running_steps_back(broker):
    running = workers.start_worker(None, threads=1)
    submission = start(make_job(steps=[make_task("t", "sleep 30")]))
    deadline = time.monotonic() + 30
    while not Node.objects.filter(submission=submission, status="running", handle__gt="").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    workers.stop_worker(running, grace=0.2)
    node = submission.nodes.get()
    assert node.status == "queued"
    assert "interrupted by a worker shutdown" in submission.messages.last().text


def test_periodic_submissions_are_made_once_when_due(worker):
    job = make_job(steps=[make_task("t", "true")])
    periodic = PeriodicSubmission.objects.create(job=job, every_minutes=5, next_run_at=timezone.now() - timedelta(seconds=1))
    first = schedules.submit_due()
    again = schedules.submit_due()
    assert len(first) == 1 and again == []
    periodic.refresh_from_db()
    assert periodic.next_run_at > timezone.now() + timedelta(minutes=4)
    assert wait_for(Submission.objects.get(pk=first[0])).status == "complete"


def test_a_refused_periodic_submission_records_why(broker):
    job = make_job(steps=[make_task("t", "true")], runnable=False)
    periodic = PeriodicSubmission.objects.create(job=job, every_minutes=5)
    assert schedules.submit_due(timezone.now() + timedelta(seconds=1)) == []
    periodic.refresh_from_db()
    assert "not runnable" in periodic.last_error


def test_migrate_creates_the_django_q_schedules():
    from django_q.models import Schedule

    schedules.ensure_schedules()
    assert set(Schedule.objects.values_list("func", flat=True)) >= {"execution.schedules.tick", "execution.schedules.purge"}


def test_retention_deletes_old_finished_submissions_and_their_files(settings):
    task = make_task("t", "echo x", stdout_glob=".txt")
    job = make_job(steps=[task])
    from execution.local import SynchronousRunner

    old, recent = SynchronousRunner(job).run(n=2)
    Submission.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=40))
    path = old.results.get().file.path
    assert retention.purge(days=30) == 1
    assert not Submission.objects.filter(pk=old.pk).exists() and not os.path.exists(path)
    assert Submission.objects.filter(pk=recent.pk).exists()
    assert retention.purge(days=0) == 0


def test_a_broken_promise_kills_the_nodes_still_running(worker, shared_dir):
    marker = shared_dir / "sleeper.pid"
    make_task("M", "true")
    sleeper = make_task("sleeper", f"sh -c 'echo $$ > {marker}; exec sleep 30'")
    # The breaker breaks the promise only once the sleeper runs (has written its pid; 20 s at most):
    # a fixed head start would leave a slow sleeper not yet started, or started without a pid file.
    breaker = make_task(
        "breaker",
        f"for i in $(seq 400); do [ -s {marker} ] && break; sleep 0.05; done; "
        "printf '{\"op\": \"add_node\", \"key\": \"x\", \"task\": \"M\"}\\n' >> \"$SLUICE_CONTROL\"",
        dynamic=True,
    )
    job = make_job("breaking", steps=[("sleeper", sleeper, {"ordering": 0}), ("breaker", breaker, {"ordering": 0})])
    job.promises.create(kind="no_new_nodes", spec={})
    submission = wait_for(start(job))
    assert submission.status == "error" and "no_new_nodes" in submission.last_message
    assert submission.nodes.get(key="sleeper").status == "cancelled"
    pid = int(marker.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_a_sub_job_that_ends_early_lets_its_parent_go_on(worker):
    from tests.factories import make_backend, make_queue_type

    jobs = make_backend("subjobs", queue_type=make_queue_type("jobs", "job"))
    check = make_task("check", "exit 70", custom_exit_status="70", custom_exit_behaviour="terminate")
    make_job("child", steps=[check, make_task("never", "true")])
    submission = wait_for(start(make_job("parent", steps=[make_task("sub", "child", backend=jobs), make_task("after", "true")])), timeout=20)
    assert submission.status == "complete", submission.last_message
    assert {node.key: node.status for node in submission.nodes.all()} == {"sub": "succeeded", "after": "succeeded"}
    child = Submission.objects.get(parent_node__submission=submission)
    assert {node.key: node.status for node in child.nodes.all()} == {"check": "succeeded", "never": "skipped"}
