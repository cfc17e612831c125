"""Fencing: a worker that was paused past its lease must not write over the attempt that took its node over.

Each test pauses a real worker process with SIGSTOP while it runs a step, waits until the
reconciler has given the node to a second worker (attempt 2), then resumes the first one
with SIGCONT. Whatever attempt 1 does after that (finish, fail, write files), the node
and the submission must end as attempt 2 made them, attempt 1's process must be stopped,
and the timeline must say that attempt 1 was taken over.

Convention the tests hold the engine to: a message on the submission's timeline that
contains both "attempt 1" and "was taken over by attempt".
"""
import os
import signal
import subprocess

import pytest

from execution.models import Node, Result
from tests.factories import make_job, make_task

from .test_distributed import finished, start, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Short enough that a takeover happens within seconds, long enough that a live worker on a
# loaded machine never misses a renewal (the watchdog renews every third of the lease).
FENCING_ENV = {
    "SLUICE_LEASE_SECONDS": "4",
    "SLUICE_HEARTBEAT_SECONDS": "0.25",
    "SLUICE_RECONCILE_SECONDS": "0.5",
}
TAKEN_OVER = "was taken over by attempt"
OTHER_HOST = "sluice-fencing-other-host"


@pytest.fixture
def fencing(processes):
    processes.env.update(FENCING_ENV)
    return processes


def step(directory):
    """A step that knows which attempt it is (a counter file), says so, and waits for ``go-<n>``.

    It writes its shell's pid to ``pid-<n>`` (the leader of its process group), waits up to
    two minutes for ``go-<n>``, then writes "attempt <n>" to its out file and touches ``done-<n>``.
    """
    d = directory
    return (
        f"n=$(( $(cat {d}/count 2>/dev/null || echo 0) + 1 )); echo $n > {d}/count; "
        f"echo $$ > {d}/pid-$n.part && mv {d}/pid-$n.part {d}/pid-$n; "
        f"for i in $(seq 2400); do [ -e {d}/go-$n ] && break; sleep 0.05; done; "
        f'echo "attempt $n" > $O1; touch {d}/done-$n'
    )


def alive(pid):
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, its stat was read
        return False


def eventually(predicate, timeout):
    """Like ``wait_until``, but return False instead of failing: for outcomes asserted later."""
    try:
        return wait_until(predicate, timeout)
    except AssertionError:
        return False


def on_another_host():
    """The command prefix that runs a process under another host name, like a worker on a second machine.

    A reconciler can only kill the process of a lost step on its own host; on another host, a
    paused worker's step keeps running, and only its own worker can stop it when it resumes.
    """
    unshare = ["unshare", "--uts"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--uts"]
    try:
        probe = subprocess.run([*unshare, "hostname", OTHER_HOST], capture_output=True, timeout=30)
    except FileNotFoundError:
        probe = None
    if probe is None or probe.returncode:
        pytest.skip("this machine cannot give a process its own host name (unshare --uts)")
    return [*unshare, "sh", "-c", 'hostname "$0" && exec "$@"', OTHER_HOST]


def taken_over(submission):
    return any("attempt 1" in text and TAKEN_OVER in text for text in submission.messages.values_list("text", flat=True))


def run_on_first_worker(fencing, shared_dir, prefix=()):
    """Start a worker, submit the step, wait until it runs there; return (submission, node, worker process, pid of attempt 1)."""
    first = fencing.start("worker", "--processes", "1", "--threads", "1", prefix=prefix)
    task = make_task("slow", step(shared_dir), out_glob=".out")
    submission = start(make_job(steps=[task]))
    node = wait_until(
        lambda: Node.objects.filter(submission=submission, status="running", attempt=1, handle__gt="").first(), timeout=120, message="attempt 1 to start"
    )
    assert node.worker.endswith(f":{first.pid}")
    pid = int(wait_until(lambda: (shared_dir / "pid-1").exists() and (shared_dir / "pid-1").read_text().strip(), message="attempt 1's pid file"))
    fencing.start("worker", "--processes", "1", "--threads", "1")
    fencing.start("reconcile", "--every", FENCING_ENV["SLUICE_RECONCILE_SECONDS"])
    return submission, node, first, pid


def wait_for_takeover(node, shared_dir):
    """Wait until another worker runs attempt 2 of ``node`` and its step has started; return the node row."""

    def second():
        row = Node.objects.filter(pk=node.pk, status="running", attempt=2).exclude(worker=node.worker).first()
        return row if row and (shared_dir / "pid-2").exists() else None

    return wait_until(second, timeout=120, message="the reconciler to hand the node to the second worker (attempt 2)")


def settle_and_check(fencing, submission, node, retaken, shared_dir):
    """Let attempt 2 finish, stop every process (so late writes have happened), and check the outcome is attempt 2's."""
    (shared_dir / "go-2").touch()
    submission = finished(submission, timeout=120)
    fencing.stop_all()
    submission.refresh_from_db()
    node.refresh_from_db()
    assert submission.status == "complete", submission.last_message
    assert (node.status, node.attempt, node.exit_code) == ("succeeded", 2, 0), node.message
    assert node.worker == retaken.worker
    assert "signal" not in node.message and "attempt 1" not in node.message
    results = [result.file.read() for result in Result.objects.filter(node=node, superseded=False)]
    assert results == [b"attempt 2\n"], f"the node's results are {results!r}, not attempt 2's"


def test_a_paused_worker_whose_step_finished_meanwhile_does_not_record_its_result(fencing, shared_dir):
    submission, node, first, pid = run_on_first_worker(fencing, shared_dir)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        (shared_dir / "go-1").touch()
        wait_until(lambda: (shared_dir / "done-1").exists() and not alive(pid), timeout=60, message="attempt 1 to finish while its worker is paused")
        retaken = wait_for_takeover(node, shared_dir)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    # The resumed worker now does whatever it does with attempt 1's outcome; attempt 2 waits meanwhile.
    wait_until(
        lambda: taken_over(submission) or Node.objects.filter(pk=node.pk).exclude(status="running").exists(),
        timeout=60, message="the resumed worker to deal with attempt 1 (a message that it was taken over)",
    )
    settle_and_check(fencing, submission, node, retaken, shared_dir)
    assert taken_over(submission), list(submission.messages.values_list("text", flat=True))


@pytest.mark.parametrize("host", ["same", "other"])
def test_a_paused_worker_whose_step_still_runs_stops_it_and_leaves_the_node_to_attempt_2(fencing, shared_dir, host):
    """Attempt 1 outlasts the pause. On the same host the reconciler kills its process; on another it cannot."""
    submission, node, first, pid = run_on_first_worker(fencing, shared_dir, prefix=on_another_host() if host == "other" else ())
    os.kill(first.pid, signal.SIGSTOP)
    try:
        retaken = wait_for_takeover(node, shared_dir)
        if host == "other":
            assert alive(pid), "attempt 1's process should still run: nothing on this host may stop it while its worker is paused"
    finally:
        os.kill(first.pid, signal.SIGCONT)
    # The resumed worker has to find out it was fenced off and stop attempt 1 itself.
    stopped = eventually(lambda: not alive(pid), timeout=30)
    if not stopped:
        (shared_dir / "go-1").touch()  # let it finish, to see whether its result is taken
    wait_until(
        lambda: taken_over(submission) or Node.objects.filter(pk=node.pk).exclude(status="running").exists(),
        timeout=60, message="the resumed worker to deal with attempt 1 (a message that it was taken over)",
    )
    settle_and_check(fencing, submission, node, retaken, shared_dir)
    assert stopped, "attempt 1's process still ran 30 s after its worker resumed, though attempt 2 had taken over"
    assert not (shared_dir / "done-1").exists()
    assert taken_over(submission), list(submission.messages.values_list("text", flat=True))
