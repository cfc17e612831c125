"""The lifecycle of a node: fenced attempts, atomic expansion, unexpected errors recorded with their cause."""
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from execution import engine, executors, lifecycle, logs, reconcile, verdicts
from execution.local import SynchronousRunner
from execution.models import Message, Node, Submission
from execution.processes import LocalExecutor
from execution.watchdog import Watchdog
from tests.factories import make_job, make_parameter, make_task

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(predicate, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def texts(submission):
    return list(Message.objects.filter(submission=submission).values_list("text", flat=True))


def test_a_claim_fences_off_every_write_of_the_attempt_before_it():
    submission = engine.submit(make_job(steps=[make_task("t", "true")]))
    node = Node.objects.get(submission=submission)
    first = lifecycle.claim(node, "one:1")
    assert lifecycle.hand_back(first)
    node.refresh_from_db()
    second = lifecycle.claim(node, "two:2")
    assert (first.number, second.number) == (1, 2) and second.fence == first.fence + 1
    # The first attempt wakes up: nothing it writes changes the node.
    assert not lifecycle.succeed(first, "stale", exit_code=0)
    assert not lifecycle.record_handle(first, "one:99")
    assert lifecycle.renew([first]) == 0
    with pytest.raises(lifecycle.Fenced) as raised:
        lifecycle.hold(first)
    assert raised.value.now == ("running", 2, second.fence)
    node.refresh_from_db()
    assert (node.status, node.attempt, node.worker, node.handle, node.message) == ("running", 2, "two:2", "", "")
    assert lifecycle.succeed(second, "", exit_code=0)


def test_two_claimants_of_one_loaded_row_cannot_both_win():
    submission = engine.submit(make_job(steps=[make_task("t", "true")]))
    mine, theirs = Node.objects.get(submission=submission), Node.objects.get(submission=submission)
    assert lifecycle.claim(mine, "a:1") is not None
    assert lifecycle.claim(theirs, "b:2") is None
    assert Node.objects.get(pk=mine.pk).worker == "a:1"


def test_a_stale_attempt_that_finishes_after_a_takeover_records_nothing(shared_dir):
    marker, release = shared_dir / "first-started", shared_dir / "release"
    # Attempt 1 waits to be released, then writes "one"; later attempts write "two" at once.
    line = f"if [ ! -e {marker} ]; then touch {marker}; for i in $(seq 1500); do [ -e {release} ] && break; sleep 0.02; done; echo one > $O1; else echo two > $O1; fi"
    submission = engine.submit(make_job(steps=[make_task("t", line, out_glob=".out")]))
    node_id = submission.ready[0]
    # A worker whose watchdog cannot beat (as when the whole process is stopped) runs attempt 1.
    stale = threading.Thread(target=engine.run_node, args=(node_id,), kwargs={"worker": "stale:1", "watch": False})
    stale.start()
    wait_until(marker.exists, what="attempt 1 to start")
    Node.objects.filter(pk=node_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert reconcile.reconcile().rerun == [node_id]
    engine.run_node(node_id, worker="fresh:2")  # attempt 2 runs to the end
    release.touch()
    stale.join(30)
    node = Node.objects.get(pk=node_id)
    submission.refresh_from_db()
    assert (submission.status, node.status, node.attempt, node.worker) == ("complete", "succeeded", 2, "fresh:2")
    assert [result.file.read() for result in node.results.all()] == [b"two\n"]
    assert "step 't' attempt 1 was taken over by attempt 2; what attempt 1 did was discarded" in texts(submission)
    assert "[sluice] this attempt was taken over by attempt 2" in logs.find(node, attempt=1, stream="stderr").file.read().decode()


def test_the_watchdog_stops_a_run_whose_node_was_taken_over_even_while_it_runs_again(settings):
    submission = engine.submit(make_job(steps=[make_task("t", "sleep 30")]))
    node = Node.objects.get(submission=submission)
    mine = lifecycle.claim(node, "here:1")
    executor = LocalExecutor("localhost")
    run = executors.NodeRun(behaviour="localhost", executable="sleep 30", workdir=settings.SLUICE_WORK_DIR / "run", file_id="x", in_endings=[], out_endings=[])
    handle = executor.start(run)
    watchdog = Watchdog()
    watchdog.add(mine, executor)
    watchdog.started(mine, handle)
    watchdog.beat(list(watchdog._watched.values()), renew=True)
    assert executor.poll(handle) is None and Node.objects.get(pk=node.pk).handle == handle
    # The reconciler hands the node to another worker, which claims it: running again, new fence.
    assert lifecycle.hand_back(mine)
    node.refresh_from_db()
    assert lifecycle.claim(node, "there:2")
    watchdog.beat(list(watchdog._watched.values()), renew=True)
    wait_until(lambda: executor.poll(handle) is not None, what="the stale run to be stopped")
    assert executor.poll(handle).exit_code == -15
    assert Node.objects.get(pk=node.pk).handle == ""  # the new attempt's row was not touched


def foreach_job():
    """One step run once per word of its parameter ``shout_words``."""
    task = make_task("shout", "echo $ITEM")
    make_parameter(task, rest_alias="words", flag="--words")
    return make_job(steps=[("shout", task, {"foreach": {"param": "shout_words"}})])


def test_a_foreach_step_is_expanded_once_by_two_racers_that_both_saw_it_ready():
    job = foreach_job()
    submission = Submission.objects.create(job=job, params={"shout_words": "a,b"}, status="running")
    Node.objects.create(submission=submission, key="shout", task=job.steps.get().task, step=job.steps.get())
    row = engine._load(submission.pk)[0]["shout"]
    # Both loaded the step as pending and ready; each expands it.
    first = engine._start(submission, row, engine._Context(submission))
    second = engine._start(submission, row, engine._Context(submission))
    assert (first, second) == ("expand", "expand")
    submission.refresh_from_db()
    assert submission.status == "running"
    assert sorted(Node.objects.filter(submission=submission).values_list("key", "status")) == [("shout", "skipped"), ("shout_0", "pending"), ("shout_1", "pending")]
    assert Node.objects.get(submission=submission, key="shout").message == "expanded into 2 instances"


def test_an_expansion_that_dies_half_way_leaves_nothing_behind(monkeypatch):
    job = foreach_job()
    real = engine.apply_changes

    def dies_after_writing(node, changes):
        real(node, changes)
        raise KeyboardInterrupt  # the worker is stopped right after writing the instances

    monkeypatch.setattr(engine, "apply_changes", dies_after_writing)
    with pytest.raises(KeyboardInterrupt):
        engine.submit(job, params={"shout_words": "a,b"})
    submission = Submission.objects.get()
    assert list(Node.objects.filter(submission=submission).values_list("key", "status")) == [("shout", "pending")]
    monkeypatch.setattr(engine, "apply_changes", real)
    reconcile.reconcile()  # a stalled submission is advanced again
    assert sorted(Node.objects.filter(submission=submission).values_list("key", flat=True)) == ["shout", "shout_0", "shout_1"]


def test_an_unexpected_error_after_the_claim_fails_the_attempt_with_its_cause(monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("the judge is out\nsecond line")

    monkeypatch.setattr(verdicts, "judge", broken)
    submission = SynchronousRunner(make_job(steps=[make_task("t", "true")])).init().process()
    node = submission.nodes.get()
    assert (submission.status, node.status) == ("error", "failed")
    assert node.message == "internal error: RuntimeError: the judge is out" and node.lease_expires_at is None
    log = logs.find(node, stream="stderr").file.read().decode()
    assert log.startswith("[sluice] internal error after the step was claimed:\n[sluice] Traceback") and "RuntimeError: the judge is out" in log
    assert submission.last_message == "step 't' failed: internal error: RuntimeError: the judge is out"


def test_an_unexpected_error_follows_the_tasks_retry_policy(monkeypatch):
    calls = []
    real = verdicts.judge

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(**kwargs)

    monkeypatch.setattr(verdicts, "judge", flaky)
    submission = SynchronousRunner(make_job(steps=[make_task("t", "true", retries=1)])).init().process()
    node = submission.nodes.get()
    assert (submission.status, node.status, node.attempt) == ("complete", "succeeded", 2)
    assert any("attempt 1 failed: internal error: OSError: [Errno 28] No space left on device; retrying" in text for text in texts(submission))


def test_a_label_longer_than_its_column_is_refused_before_anything_is_written():
    line = """printf '%s\\n' '{"op": "add_node", "key": "b", "task": "t2"}' '{"op": "style", "from": "a", "to": "b", "label": "%s"}' >> $SLUICE_CONTROL"""
    grower = make_task("a", line.replace("%s\"}", "x" * 129 + "\"}", 1), dynamic=True)
    make_task("t2", "true")
    submission = SynchronousRunner(make_job(steps=[grower])).init().process()
    node = submission.nodes.get(key="a")
    assert (submission.status, node.status) == ("error", "failed")
    assert "'label' is 129 characters; at most 128" in node.message
    assert not Node.objects.filter(submission=submission, key="b").exists()


def test_the_style_limits_are_the_widths_of_the_columns_that_store_them():
    from execution.models import Edge
    from execution.mutations import STYLE_LIMITS

    assert STYLE_LIMITS == {name: Edge._meta.get_field(name).max_length for name in ("color", "label")}
