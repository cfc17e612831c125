"""Steps on a real single-node Slurm cluster, followed by real worker processes.

The cluster (slurmctld, slurmd and a munged of its own, on private ports) is
started once for the module; worker processes find it through ``SLURM_CONF``.
The backend's root_path stands for the cluster's shared file system.
"""
import os
import signal
import subprocess

import pytest
from rest_framework.test import APIClient

from execution import engine
from execution.models import Node, NodeLog, Submission
from tests.factories import make_backend, make_job, make_parameter, make_queue_type, make_task

from .servers import Slurm
from .test_distributed import finished, start, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SLURM_WORKER_ENV = {
    "SLUICE_LEASE_SECONDS": "4",
    "SLUICE_FOLLOW_SECONDS": "0.5",
    "SLUICE_RECONCILE_SECONDS": "0.5",
}


@pytest.fixture(scope="module")
def slurm():
    cluster = Slurm().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster(slurm, processes, tmp_path, monkeypatch):
    """Worker processes that reach the cluster, and a Slurm backend whose root_path is the "shared" file system."""
    processes.env.update({**SLURM_WORKER_ENV, **slurm.env})
    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])  # this test process asks squeue too
    shared = tmp_path / "cluster"
    shared.mkdir()
    backend = make_backend("cluster", queue_type=make_queue_type("slurm", "slurm"), root_path=str(shared))
    return processes, backend


def squeue(*args):
    done = subprocess.run(["squeue", "--noheader", "--states=all", *args], capture_output=True, text=True, check=True)
    return done.stdout.split()


def job_state(handle):
    """squeue's state of the job behind a node's handle ("" when squeue no longer knows it)."""
    return "".join(squeue("--format=%T", f"--jobs={handle.removeprefix('slurm:')}"))


def running_node(submission, timeout=60):
    return wait_until(
        lambda: Node.objects.filter(submission=submission, status="running", handle__startswith="slurm:").first(),
        timeout=timeout, message="the step to be submitted to Slurm",
    )


def log_text(node, stream):
    log = NodeLog.objects.filter(node=node, stream=stream).first()
    return log.file.read().decode() if log else ""


def test_a_rest_submission_runs_as_a_slurm_job(cluster, shared_dir):
    processes, backend = cluster
    processes.start("worker", "--threads", "2")
    task = make_task("where", "echo $SLURM_JOB_ID > $O1; printf '%s\\n' $P1 >> $O1", backend=backend, out_glob=".out", resources={"cpus": 1, "memory_mb": 64})
    make_parameter(task, "text", switchless=True)
    make_job("onslurm", steps=[task])
    pwned = shared_dir / "pwned"
    hostile = f"$(touch {pwned}) `touch {pwned}` ; exit 9"

    response = APIClient().post("/api/submissions/", {"job": "onslurm", "where_text": hostile}, format="json")

    assert response.status_code == 201, response.content
    submission = finished(Submission.objects.get(uuid=response.json()["uuid"]), timeout=90)
    node = submission.nodes.get()
    assert submission.status == "complete", submission.last_message
    job_id = node.handle.removeprefix("slurm:")
    assert job_id.isdigit()
    assert submission.results.get().file.read().decode() == f"{job_id}\n{hostile}\n"
    assert job_state(node.handle) == "COMPLETED"
    assert not pwned.exists()


def test_a_failure_a_timeout_and_a_cancel_on_slurm(cluster):
    processes, backend = cluster
    processes.start("worker", "--threads", "2")
    failing = start(make_job("fails", steps=[make_task("fails", "echo 'no such sample' >&2; exit 3", backend=backend)]))
    slow = start(make_job("slow", steps=[make_task("slow", "sleep 120", backend=backend, timeout=3)]))
    cancelled = start(make_job("cancelled", steps=[make_task("waits", "sleep 120", backend=backend)]))

    failing = finished(failing, timeout=90)
    node = failing.nodes.get()
    assert (failing.status, node.status, node.exit_code) == ("error", "failed", 3)
    assert "exited with status 3" in node.message and "no such sample" in node.message
    assert "no such sample" in log_text(node, "stderr")

    target = running_node(cancelled)
    wait_until(lambda: job_state(target.handle) == "RUNNING", timeout=60, message="the job to run on Slurm")
    assert engine.cancel(cancelled.pk)
    wait_until(lambda: job_state(target.handle) not in ("RUNNING", "PENDING", "COMPLETING"), timeout=20, message="the cancelled job to leave squeue's queue")
    assert job_state(target.handle) == "CANCELLED"

    slow = finished(slow, timeout=90)
    node = slow.nodes.get()
    assert (slow.status, node.status) == ("error", "failed")
    assert "timed out after 3 s" in node.message
    wait_until(lambda: job_state(node.handle) in ("CANCELLED", "TIMEOUT"), timeout=20, message="the timed-out job to be stopped")

    cancelled.refresh_from_db()
    assert cancelled.status == "cancelled"
    assert cancelled.nodes.get().status == "cancelled"


def test_slurm_jobs_outlive_kill_9_of_their_worker_and_each_runs_once(cluster, shared_dir):
    """Two jobs in flight when their worker is killed: one ends while nobody follows it, one runs on after the takeover."""
    processes, backend = cluster
    first = processes.start("worker", "--threads", "2")
    submissions = {}
    for name in ("meanwhile", "after"):
        directory = shared_dir / name
        directory.mkdir()
        task = make_task(
            name, f"echo $SLURM_JOB_ID >> {directory}/runs; for i in $(seq 1200); do [ -e {directory}/go ] && break; sleep 0.1; done; echo $SLURM_JOB_ID > $O1",
            backend=backend, out_glob=".out",
        )
        submissions[name] = start(make_job(name, steps=[task]))
    nodes = {name: running_node(submission) for name, submission in submissions.items()}
    assert all(node.worker.endswith(f":{first.pid}") for node in nodes.values())
    for name in submissions:
        wait_until(lambda: (shared_dir / name / "runs").exists(), timeout=60, message=f"the Slurm job of '{name}' to start")

    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    (shared_dir / "meanwhile" / "go").touch()
    wait_until(lambda: job_state(nodes["meanwhile"].handle) == "COMPLETED", timeout=60, message="the first job to end while nobody follows it")
    second = processes.start("worker", "--threads", "1")
    processes.start("reconcile", "--every", SLURM_WORKER_ENV["SLUICE_RECONCILE_SECONDS"])
    wait_until(lambda: Node.objects.filter(pk=nodes["after"].pk, worker__endswith=f":{second.pid}").exists(), timeout=60, message="the second worker to take the run over")
    (shared_dir / "after" / "go").touch()

    for name, submission in submissions.items():
        submission = finished(submission, timeout=90)
        node = submission.nodes.get()
        job_id = node.handle.removeprefix("slurm:")
        assert submission.status == "complete", submission.last_message
        assert (node.status, node.attempt) == ("succeeded", 1)
        assert node.worker.endswith(f":{second.pid}")
        assert (shared_dir / name / "runs").read_text().split() == [job_id], f"'{name}' must have run as one Slurm job only"
        assert squeue("--format=%i", f"--name=sluice-{submission.file_id}") == [job_id]
        assert submission.results.get().file.read().decode() == f"{job_id}\n"
        assert any("took over its run" in text for text in submission.messages.values_list("text", flat=True))


def test_a_stopping_worker_hands_its_slurm_job_over_without_cancelling_it(cluster, shared_dir):
    processes, backend = cluster
    first = processes.start("worker", "--threads", "1", "--grace", "1")
    go = shared_dir / "go"
    task = make_task("handed", f"echo $SLURM_JOB_ID >> {shared_dir}/runs; for i in $(seq 1200); do [ -e {go} ] && break; sleep 0.1; done; echo ok > $O1", backend=backend, out_glob=".out")
    submission = start(make_job("handed", steps=[task]))
    node = running_node(submission)
    wait_until(lambda: (shared_dir / "runs").exists(), timeout=60, message="the Slurm job to start")
    second = processes.start("worker", "--threads", "1")

    first.send_signal(signal.SIGTERM)  # no reconciler runs: the stopping worker itself asks for the takeover
    assert first.wait(30) == 0
    wait_until(lambda: Node.objects.filter(pk=node.pk, worker__endswith=f":{second.pid}").exists(), timeout=60, message="the second worker to take the run over")
    assert job_state(node.handle) == "RUNNING"
    go.touch()

    submission = finished(submission, timeout=90)
    node.refresh_from_db()
    assert submission.status == "complete", submission.last_message
    assert (node.status, node.attempt) == ("succeeded", 1)
    assert (shared_dir / "runs").read_text().split() == [node.handle.removeprefix("slurm:")]


def test_fifty_slurm_jobs_in_flight_from_one_worker_process(cluster, shared_dir):
    processes, backend = cluster
    worker = processes.start("worker", "--threads", "4")
    go = shared_dir / "go"
    task = make_task("wait", f"for i in $(seq 1200); do [ -e {go} ] && break; sleep 0.1; done; echo $SLURM_JOB_ID > $O1", backend=backend, out_glob=".out")
    job = make_job("fifty", steps=[task])
    submissions = [start(job) for _ in range(50)]

    wait_until(lambda: Node.objects.filter(status="running", handle__startswith="slurm:").count() == 50, timeout=120, message="50 jobs in flight")
    threads = int(next(line for line in open(f"/proc/{worker.pid}/status") if line.startswith("Threads:")).split()[1])
    go.touch()

    assert threads < 25, f"the worker runs {threads} threads for 50 jobs in flight: one per job?"
    assert all(name.endswith(f":{worker.pid}") for name in Node.objects.filter(submission__in=submissions).values_list("worker", flat=True))
    for submission in submissions:
        assert finished(submission, timeout=180).status == "complete", submission.last_message
    handles = set(Node.objects.filter(submission__in=submissions).values_list("handle", flat=True))
    assert len(handles) == 50


def test_the_synchronous_runner_waits_for_its_slurm_steps(cluster):
    """`runjob`'s runner: a Slurm step is followed by this process, and the steps after it run once it has ended."""
    from execution.local import SynchronousRunner

    _, backend = cluster
    first = make_task("first", "echo $SLURM_JOB_ID > $O1", backend=backend, out_glob=".id")
    second = make_task("second", "cat $I1 > $O1; echo local >> $O1", in_glob=".id", out_glob=".out")
    submission = SynchronousRunner(make_job("mixed", steps=[first, second])).run()[0]

    assert submission.status == "complete", submission.last_message
    job_id = submission.nodes.get(key="first").handle.removeprefix("slurm:")
    assert submission.results.get(ending=".out").file.read().decode() == f"{job_id}\nlocal\n"
