"""What a committed submission is owed: a 201 whatever the broker does, one run per Idempotency-Key,
a cache that tells nobody what others ran, quotas that controls cannot get round, idle submissions
that end, and working directories that do not pile up."""
import os
import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone
from rest_framework.test import APIClient

from execution import controls, dispatch, documents, engine, reconcile, workdirs
from execution.local import SynchronousRunner
from execution.models import IdempotencyKey, Node, Submission
from tests.clients import client_for, errors
from tests.conftest import settle, wait_for
from tests.factories import make_job, make_parameter, make_task

pytestmark = pytest.mark.django_db

SUBMIT = "/api/submissions/"


def submit(client, body=None, key=None, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(SUBMIT, body or {"job": "j"}, format="json", **headers, **extra)


@pytest.fixture
def one_step(db):
    return make_job("j", steps=[make_task("t", "true")])


# --- a committed submission is answered 201 -------------------------------------------------


class BrokerDown:
    """The broker refusing every message, as the Redis client does when the server is gone."""

    def __init__(self, broker):
        self.down = True
        self.enqueue = broker.enqueue

    def __call__(self, message, *, delay=None):
        if self.down:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return self.enqueue(message, delay=delay)


@pytest.mark.django_db(transaction=True)
def test_a_submission_committed_while_the_broker_is_down_is_a_201_and_runs_once_it_is_back(worker, one_step, settings, caplog, monkeypatch):
    outage = BrokerDown(worker.broker)
    monkeypatch.setattr(worker.broker, "enqueue", outage)
    response = submit(APIClient())
    assert response.status_code == 201, response.content
    submission = Submission.objects.get(uuid=response.json()["uuid"])
    assert submission.nodes.get().status == "queued"
    assert "Could not send 1 queued node(s)" in caplog.text and "the reconciler sends them again" in caplog.text
    outage.down = False
    later = timezone.now() + timedelta(seconds=settings.SLUICE_REQUEUE_SECONDS + 1)
    assert reconcile.reconcile(now=later).resent == [submission.nodes.get().pk]
    assert wait_for(submission).status == "complete"
    assert Submission.objects.count() == 1


def test_a_submission_whose_document_cannot_be_read_after_commit_is_still_a_201(one_step, monkeypatch):
    def database_gone(submission, rows=None):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(documents, "submission_document", database_gone)
    response = submit(APIClient())
    assert response.status_code == 201
    body = response.json()
    assert Submission.objects.filter(uuid=body["uuid"]).exists()
    assert body["url"] == f"/api/submissions/{body['uuid']}/" == response["Location"]
    assert "could not be read just now" in body["detail"]


def test_database_connections_are_health_checked_before_reuse(settings):
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


# --- Idempotency-Key -------------------------------------------------------------------------


def test_a_retry_with_the_same_key_gets_the_first_answer_and_creates_nothing(one_step):
    client = APIClient()
    first = submit(client, key="order-7")
    again = submit(client, key="order-7")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["uuid"] == first.json()["uuid"] and again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Submission.objects.count() == 1 and IdempotencyKey.objects.count() == 1
    assert submit(client, key='"order-7"').json()["uuid"] == first.json()["uuid"]  # the draft standard's quoted form


def test_the_same_key_with_another_request_is_422_and_creates_nothing(one_step):
    client = APIClient()
    submit(client, key="k1")
    response = submit(client, {"job": "j", "submission_name": "another"}, key="k1")
    assert response.status_code == 422
    assert "used before with a different request" in errors(response)["Idempotency-Key"][0]
    assert Submission.objects.count() == 1


def test_a_retried_upload_is_the_same_request_only_with_the_same_bytes(one_step):
    client = APIClient()
    first = client.post(SUBMIT, {"job": "j", "input_data": "a\nb\n"}, format="json", HTTP_IDEMPOTENCY_KEY="up")
    same = client.post(SUBMIT, {"job": "j", "input_data": "a\nb\n"}, format="json", HTTP_IDEMPOTENCY_KEY="up")
    other = client.post(SUBMIT, {"job": "j", "input_data": "a\nc\n"}, format="json", HTTP_IDEMPOTENCY_KEY="up")
    assert same.json()["uuid"] == first.json()["uuid"] and other.status_code == 422
    assert Submission.objects.count() == 1


def test_keys_belong_to_their_submitter(one_step, owner, other_user):
    mine = submit(client_for(owner), key="shared-key").json()["uuid"]
    theirs = submit(client_for(other_user), key="shared-key").json()["uuid"]
    one = submit(APIClient(REMOTE_ADDR="10.0.0.1"), key="shared-key").json()["uuid"]
    two = submit(APIClient(REMOTE_ADDR="10.0.0.2"), key="shared-key").json()["uuid"]
    assert len({mine, theirs, one, two}) == 4
    assert submit(client_for(owner), key="shared-key").json()["uuid"] == mine


@pytest.mark.parametrize("key, problem", [("", "is empty"), ("x" * 256, "at most 255"), ("has space", "visible ASCII"), ("tab\tkey", "visible ASCII")])
def test_a_malformed_key_is_a_400_naming_the_header(one_step, key, problem):
    response = submit(APIClient(), key=key)
    assert response.status_code == 400 and problem in errors(response)["Idempotency-Key"][0]
    assert not Submission.objects.exists()


def test_a_key_is_forgotten_after_its_hours(one_step, settings):
    client = APIClient()
    first = submit(client, key="old").json()["uuid"]
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=settings.SLUICE_IDEMPOTENCY_HOURS + 1))
    second = submit(client, key="old").json()["uuid"]
    assert first != second and IdempotencyKey.objects.get().submission.uuid.hex == second.replace("-", "")


def test_a_batch_is_replayed_as_a_batch(db):
    make_job("a", steps=[make_task("t", "true")])
    make_job("b", steps=[make_task("u", "true")])
    client = APIClient()
    first = submit(client, {"job": "a,b"}, key="batch-1")
    again = submit(client, {"job": "a,b"}, key="batch-1")
    assert again.status_code == 201 and again.json()["uuid"] == first.json()["uuid"] and len(again.json()["submissions"]) == 2
    assert Submission.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_make_one_submission():
    make_job("j", steps=[make_task("t", "true")])
    answers, start = [], threading.Barrier(8)

    def post():
        start.wait()
        answers.append(submit(APIClient(), key="race"))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [answer.status_code for answer in answers] == [201] * 8
    assert len({answer.json()["uuid"] for answer in answers}) == 1
    assert Submission.objects.count() == 1 and sum(answer.has_header("Idempotent-Replayed") for answer in answers) == 7


# --- the run cache stays within a submitter ---------------------------------------------------


@pytest.fixture
def cached_square(db):
    task = make_task("square", "echo $(( $P1 * $P1 ))", stdout_glob=".square", cache=True)
    make_parameter(task, "n", type="int", switchless=True, default="3")
    return make_job("squares", steps=[task])


def run_as(job, user=None, ip=None):
    submission = engine.submit(job, user=user, ip=ip)
    while Node.objects.filter(submission=submission, status="queued").exists():
        for node_id in Node.objects.filter(submission=submission, status="queued").values_list("pk", flat=True):
            engine.run_node(node_id)
    submission.refresh_from_db()
    return submission, submission.nodes.get()


def test_the_cache_is_not_shared_between_submitters(cached_square, owner, other_user):
    first, _ = run_as(cached_square, user=owner)
    _, theirs = run_as(cached_square, user=other_user)
    _, mine = run_as(cached_square, user=owner)
    _, anonymous = run_as(cached_square, ip="10.0.0.1")
    _, same_address = run_as(cached_square, ip="10.0.0.1")
    _, other_address = run_as(cached_square, ip="10.0.0.2")
    assert (theirs.status, mine.status) == ("succeeded", "cached")
    assert (anonymous.status, same_address.status, other_address.status) == ("succeeded", "cached", "succeeded")
    assert str(first.uuid) not in mine.message


def test_sharing_the_cache_across_submitters_is_a_setting_and_names_no_submission(cached_square, owner, other_user, settings):
    settings.SLUICE_CACHE_SHARED = True
    first, _ = run_as(cached_square, user=owner)
    _, theirs = run_as(cached_square, user=other_user)
    assert theirs.status == "cached"
    document = client_for(other_user).get(f"/api/submissions/{theirs.submission.uuid}/").content.decode()
    assert str(first.uuid) not in document and first.file_id not in document


# --- quotas: controls count too ---------------------------------------------------------------


def test_restarting_finished_submissions_counts_against_the_quota(owner, settings):
    job = make_job("j", steps=[make_task("t", "true")])
    finished = [run_as(job, user=owner)[0] for _ in range(3)]
    settings.QUEUE_HARD_LIMIT = 2
    client = client_for(owner)
    answers = [client.post(f"/api/submissions/{submission.uuid}/nodes/t/restart/").status_code for submission in finished]
    assert answers == [200, 200, 429]
    finished[2].refresh_from_db()
    assert finished[2].status == "complete" and finished[2].nodes.get().status == "succeeded"
    client.force_login(owner)
    page = client.post(f"/submissions/{finished[2].uuid}/nodes/t/restart/", follow=True)
    assert "the limit is 2" in page.content.decode()


def test_answering_input_counts_against_the_quota(owner, settings):
    job = make_job("ask", steps=[make_task("approve", "true", input_prompt="Go on? (yes/no)"), make_task("then", "true")])
    waiting = [engine.submit(job, user=owner) for _ in range(3)]
    for submission in waiting:
        dispatch.start(submission)
        submission.refresh_from_db()
        assert submission.status == "waiting"
    settings.QUEUE_HARD_LIMIT = 2  # lowered while three wait
    response = client_for(owner).post(f"/api/submissions/{waiting[0].uuid}/nodes/approve/input/", {"value": "yes"}, format="json")
    assert response.status_code == 429 and "the limit is 2" in response.json()["detail"]
    assert waiting[0].nodes.get(key="approve").status == "waiting"


# --- idle submissions expire --------------------------------------------------------------------


def test_a_submission_left_waiting_expires_and_frees_the_quota(settings):
    settings.QUEUE_HARD_LIMIT = 1
    job = make_job("ask", steps=[make_task("approve", "true", input_prompt="Go on?")])
    client = APIClient(REMOTE_ADDR="10.0.0.9")
    first = Submission.objects.get(uuid=submit(client, {"job": "ask"}).json()["uuid"])
    first.refresh_from_db()
    assert first.status == "waiting" and first.idle_since is not None
    assert submit(client, {"job": "ask"}).status_code == 429
    assert reconcile.reconcile().expired == []  # not yet
    later = timezone.now() + timedelta(seconds=settings.SLUICE_IDLE_EXPIRY + 1)
    assert reconcile.reconcile(now=later).expired == [first.pk]
    first.refresh_from_db()
    assert first.status == "cancelled" and first.last_message == "expired: it waited for input longer than 7 days (SLUICE_IDLE_EXPIRY)"
    assert first.nodes.get().status == "cancelled"
    assert submit(client, {"job": "ask"}).status_code == 201


def test_a_paused_submission_expires_but_one_resumed_since_does_not(settings):
    settings.SLUICE_IDLE_EXPIRY = 3600
    job = make_job("two", steps=[make_task("a", "true"), make_task("b", "true")])
    paused, resumed = engine.submit(job), engine.submit(job)
    for submission in (paused, resumed):
        controls.pause(submission.pk)
    Submission.objects.update(idle_since=timezone.now() - timedelta(hours=2))
    controls.resume(resumed.pk)
    assert reconcile.reconcile().expired == [paused.pk]
    paused.refresh_from_db()
    resumed.refresh_from_db()
    assert paused.status == "cancelled" and "stayed paused longer than 1 hours" in paused.last_message
    assert resumed.status == "running" and resumed.idle_since is None


def test_an_idle_expiry_of_zero_keeps_them(settings):
    settings.SLUICE_IDLE_EXPIRY = 0
    submission = engine.submit(make_job("two", steps=[make_task("a", "true")]))
    controls.pause(submission.pk)
    Submission.objects.update(idle_since=timezone.now() - timedelta(days=400))
    assert reconcile.reconcile().expired == []


# --- working directories ------------------------------------------------------------------------


def entries(root):
    return sorted(os.listdir(root)) if root.exists() else []


def test_a_finished_submission_leaves_no_working_directory(settings, shared_dir):
    # The step makes a directory it cannot be removed from by a plain rmtree.
    task = make_task("messy", "mkdir -p locked/deeper && touch locked/deeper/f && chmod 000 locked/deeper locked && echo done")
    submission, node = run_as(make_job("messy", steps=[task]))
    assert submission.status == "complete", submission.last_message
    assert entries(settings.SLUICE_WORK_DIR) == []


def test_the_sweep_removes_what_no_running_attempt_owns(settings):
    job = make_job("two", steps=[make_task("a", "true"), make_task("b", "true")])
    submission = engine.submit(job)
    a, b = submission.nodes.order_by("key")
    root = settings.SLUICE_WORK_DIR
    Node.objects.filter(pk=a.pk).update(status="running", attempt=2)
    lost, live, fresh = root / str(submission.uuid) / f"{a.pk}-1", root / str(submission.uuid) / f"{a.pk}-2", root / str(submission.uuid) / f"{b.pk}-1"
    for directory in (lost, live, fresh):
        (directory / ".tmp").mkdir(parents=True)
    unrelated = root / "not-ours"
    unrelated.mkdir()
    old = time.time() - workdirs.GRACE_SECONDS - 5
    for directory in (lost, live, unrelated):
        os.utime(directory, (old, old))
    assert workdirs.sweep() == 1
    assert not lost.exists() and live.exists() and fresh.exists() and unrelated.exists()


@pytest.mark.django_db(transaction=True)
def test_the_reconciler_removes_a_lost_attempts_directory(worker, settings, shared_dir):
    gate = shared_dir / "gate"
    job = make_job("slow", steps=[make_task("wait", f"for i in $(seq 600); do [ -e {gate} ] && exit 0; sleep 0.05; done")])
    submission = engine.submit(job)
    dispatch.start(submission)
    node = submission.nodes.get()
    deadline = time.monotonic() + 30
    while not Node.objects.filter(pk=node.pk, status="running").exclude(handle="").exists():
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    node.refresh_from_db()
    directory = workdirs.path_for(node)
    assert directory.is_dir()
    # As if its worker had died: the lease lapses and the reconciler runs it again.
    report = reconcile.reconcile(now=timezone.now() + timedelta(seconds=settings.SLUICE_LEASE_SECONDS + 60))
    node.refresh_from_db()
    assert report.rerun == [node.pk], (node.status, node.lease_expires_at, node.message, report)
    assert not directory.exists()
    gate.touch()
    assert wait_for(submission).status == "complete"
    settle(worker)
    assert entries(settings.SLUICE_WORK_DIR) == []
