"""The hot path's hand-built statements store what the ORM would, and the fast path routes correctly."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from execution import engine, lifecycle, statements
from execution.engine import _advance_after
from execution.models import Message, Node, Submission
from execution.statements import Add
from tests.factories import make_backend, make_job, make_queue_type, make_task

pytestmark = pytest.mark.django_db


def submitted(job, **kwargs):
    """A running submission whose nodes are all still pending."""
    submission = engine.submit(job, **kwargs)
    Submission.objects.filter(pk=submission.pk).update(status="running")
    submission.nodes.update(status="pending", queued_at=None)
    return submission


def test_a_conditional_update_writes_each_kind_of_value_as_the_orm_reads_it():
    submission = submitted(make_job(steps=[make_task("a")]))
    node = submission.nodes.get()
    when = timezone.now() - timedelta(minutes=3)
    changed = statements.conditional_update(
        Node, node.pk, ["pending"],
        {"status": "queued", "queued_at": when, "outputs": {"n": 3, "names": ["x", "é"]}, "exit_code": None, "message": "it's \"quoted\"", "attempt": Add(2)},
    )
    assert changed == 1
    node.refresh_from_db()
    assert (node.status, node.queued_at, node.outputs, node.exit_code, node.message, node.attempt) == (
        "queued", when, {"n": 3, "names": ["x", "é"]}, None, "it's \"quoted\"", 2,
    )
    assert Node.objects.filter(queued_at=when).count() == 1  # the stored form is the one ORM lookups compare with


def test_a_conditional_update_changes_nothing_when_the_status_has_moved_on():
    submission = submitted(make_job(steps=[make_task("a")]))
    node = submission.nodes.get()
    assert statements.conditional_update(Node, node.pk, ["queued", "running"], {"status": "failed"}) == 0
    assert lifecycle.fail(lifecycle.Attempt(node.pk, 0, 1), "failed") is False
    assert Node.objects.get(pk=node.pk).status == "pending"
    assert lifecycle.queue(node.pk) == node.pk
    node.refresh_from_db()
    assert lifecycle.claim(node, "here:1") == lifecycle.Attempt(node.pk, 1, 1)
    node.refresh_from_db()
    assert (node.status, node.attempt) == ("running", 1) and node.started_at is not None


def test_submit_queues_plain_first_steps_and_knows_their_queues():
    make_backend("gpu", queue_type=make_queue_type("gpu"))
    job = make_job(steps=[("a", make_task("a"), {"ordering": 0}), ("b", make_task("b", backend=make_backend("gpu")), {"ordering": 0}), ("c", make_task("c"), {"ordering": 1})])
    submission = engine.submit(job, priority="low")
    assert sorted((node.key, node.status) for node in submission.nodes.all()) == [("a", "queued"), ("b", "queued"), ("c", "pending")]
    assert sorted(ready.queue for ready in submission.ready) == ["low_gpu", "low_localhost"]


def test_submit_leaves_special_first_steps_to_advance():
    job = make_job(steps=[("a", make_task("a"), {"ordering": 0, "enabled": False}), ("b", make_task("b"), {"ordering": 1})])
    submission = engine.submit(job)
    assert {node.key: node.status for node in submission.nodes.all()} == {"a": "skipped", "b": "queued"}
    assert submission.ready == [submission.nodes.get(key="b").pk] and submission.ready[0].queue is None


def test_expressions_still_go_through_the_orm():
    submission = engine.submit(make_job(steps=[make_task("a")]))
    assert lifecycle.start(submission.pk)  # started_at = Coalesce(started_at, now)
    first = Submission.objects.get(pk=submission.pk).started_at
    assert lifecycle.pause(submission.pk) and lifecycle.resume(submission.pk)
    assert Submission.objects.get(pk=submission.pk).started_at == first


def test_insert_fills_defaults_and_auto_now_add():
    submission = submitted(make_job(steps=[make_task("a")]))
    before = timezone.now()
    statements.insert(Message, submission_id=submission.pk, text="hello")
    message = Message.objects.get(submission=submission, text="hello")
    assert message.level == "info" and message.node is None and message.created_at >= before
    statements.insert(Message, submission=submission, node=submission.nodes.get(), level="error", text="by instance")
    assert Message.objects.get(text="by instance").node.key == "a"


def test_the_fast_path_queues_a_lone_successor_and_knows_its_queue():
    make_backend("gpu", queue_type=make_queue_type("gpu"))
    first, second = make_task("first"), make_task("second", backend=make_backend("gpu"))
    submission = submitted(make_job(steps=[first, second]), priority="high")
    a, b = (submission.nodes.get(key=key) for key in ("first", "second"))
    Node.objects.filter(pk=a.pk).update(status="succeeded")
    ready = _advance_after(a.pk)
    assert ready == [b.pk] and ready[0].queue == "high_gpu"
    assert Node.objects.get(pk=b.pk).status == "queued"
    assert _advance_after(a.pk) == []  # already queued: nothing more to do


def test_the_fast_path_waits_for_every_predecessor():
    tasks = [make_task(name) for name in ("left", "right", "join")]
    job = make_job(steps=[("left", tasks[0], {"ordering": 0}), ("right", tasks[1], {"ordering": 0}), ("join", tasks[2], {"ordering": 1})])
    submission = submitted(job)
    left, right, join = (submission.nodes.get(key=key).pk for key in ("left", "right", "join"))
    Node.objects.filter(pk=left).update(status="succeeded")
    assert _advance_after(left) == []
    assert Node.objects.get(pk=join).status == "pending"
    Node.objects.filter(pk=right).update(status="skipped")  # skipped counts as done
    assert _advance_after(right) == [join]


@pytest.mark.parametrize("step_fields", [{"enabled": False}, {"when": "1 == 1"}, {"foreach": {"lines": ".txt"}}])
def test_the_fast_path_leaves_special_successors_to_the_full_rules(step_fields):
    first, second = make_task("first"), make_task("second")
    submission = submitted(make_job(steps=[("first", first), ("second", second, step_fields)]))
    a = submission.nodes.get(key="first")
    Node.objects.filter(pk=a.pk).update(status="succeeded")
    assert _advance_after(a.pk) is None
    assert submission.nodes.get(key="second").status == "pending"


def fan_in(width):
    """A running submission: ``width`` parallel nodes m0.. into one join."""
    tasks = [make_task(f"m{index}") for index in range(width)]
    steps = [(f"m{index}", task, {"ordering": 0}) for index, task in enumerate(tasks)] + [("join", make_task("join"), {"ordering": 1})]
    return submitted(make_job(steps=steps))


def test_a_node_that_finishes_while_others_run_costs_two_statements_whatever_the_width():
    submission = fan_in(50)
    Node.objects.filter(submission=submission, key="m1").update(status="running")
    done = submission.nodes.get(key="m0")
    Node.objects.filter(pk=done.pk).update(status="succeeded")
    with CaptureQueriesContext(connection) as queries:
        assert engine.advance(submission.pk, finished=done.pk) == []
    assert len(queries) == 2  # the successor query and "is anything else queued or running?"


def test_the_last_of_the_fan_in_queues_the_join_and_a_lone_waiter_makes_the_submission_wait():
    submission = fan_in(3)
    Node.objects.filter(submission=submission, key__in=["m0", "m1", "m2"]).update(status="succeeded")
    join = submission.nodes.get(key="join")
    assert engine.advance(submission.pk, finished=submission.nodes.get(key="m2").pk) == [join.pk]
    # Nothing queued or running, one step waiting for a person: the full rules see the submission waits.
    ask = make_task("ask", input_prompt="go?")
    waiting = submitted(make_job("w", steps=[("ask", ask, {"ordering": 0}), ("a", make_task("a2"), {"ordering": 0}), ("j", make_task("j2"), {"ordering": 1})]))
    Node.objects.filter(submission=waiting, key="ask").update(status="waiting")
    Node.objects.filter(submission=waiting, key="a").update(status="succeeded")
    assert engine.advance(waiting.pk, finished=waiting.nodes.get(key="a").pk) == []
    assert Submission.objects.get(pk=waiting.pk).status == "waiting"


def test_load_reads_a_row_and_its_foreign_keys_as_the_orm_does():
    task = make_task("a", "echo $P1", retries=2, timeout=5, backend=make_backend("gpu", queue_type=make_queue_type("gpu", "python")))
    submission = engine.submit(make_job(steps=[task]), params={}, submission_name="named")
    node = submission.nodes.get()
    Node.objects.filter(pk=node.pk).update(outputs={"n": [1, 2.5, None, True]}, started_at=timezone.now(), enabled=False, exit_code=-9)
    paths = ("submission__job", "task__backend__queue_type")
    mine, theirs = statements.load(Node, node.pk, *paths), Node.objects.select_related(*paths).get(pk=node.pk)

    def fields(instance):
        return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}

    for path in ("", "submission", "submission.job", "task", "task.backend", "task.backend.queue_type"):
        a, b = mine, theirs
        for name in filter(None, path.split(".")):
            a, b = getattr(a, name), getattr(b, name)
        assert fields(a) == fields(b), path
    assert mine.outputs == {"n": [1, 2.5, None, True]} and mine.enabled is False
    assert mine.task.backend.queue_type.execution_behaviour == "python"
    assert statements.load(Node, node.pk + 1000) is None
    with pytest.raises(ValueError, match="not a non-null foreign key"):
        statements.load(Node, node.pk, "step")


def test_a_submission_and_its_document_take_a_fixed_number_of_statements():
    """The front door's statements, counted (bench/intake.py measures their time): a one-step JSON
    submission, its 201 document, and polling it. Growing these costs every submission."""
    from rest_framework.test import APIClient

    make_job("one", steps=[make_task("t")])
    client = APIClient()
    client.post("/api/submissions/", {"job": "one"}, format="json")  # warm: sessions, content types
    with CaptureQueriesContext(connection) as posted:
        response = client.post("/api/submissions/", {"job": "one"}, format="json")
    assert response.status_code == 201 and response.json()["nodes"][0]["status"] == "queued"
    with CaptureQueriesContext(connection) as polled:
        assert client.get(response.json()["url"]).status_code == 200
    # The catalogue's revision (the job itself is held in memory, jobs/catalogue.py); the quota count
    # (on PostgreSQL after the submitter's advisory lock); insert submission, node, message (with the
    # transaction's statements). The document is built from the rows just written.
    limit = 10 if connection.vendor == "postgresql" else 9
    assert len(posted) <= limit, [query["sql"][:80] for query in posted.captured_queries]
    assert len(polled) <= 4, [query["sql"][:80] for query in polled.captured_queries]


@pytest.mark.parametrize("job_kind", ["plain", "decided first", "with upload"])
def test_the_201_document_built_from_the_rows_written_is_the_document_read_back(job_kind):
    """The answer to a submission is built from what engine.submit wrote, not read back: it must be
    exactly what a poll reads straight after (nothing runs here: the stub broker has no worker)."""
    from rest_framework.test import APIClient

    if job_kind == "decided first":
        steps = [("a", make_task("a"), {"enabled": False}), ("b", make_task("b"))]
    elif job_kind == "with upload":
        steps = [make_task("a", in_glob=".input")]
    else:
        steps = [make_task("a"), make_task("b")]
    make_job("one", steps=steps)
    body = {"job": "one", "submission_name": "twice"}
    if job_kind == "with upload":
        body["input_data"] = "some text"
    response = APIClient().post("/api/submissions/", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == APIClient().get(response.json()["url"]).json()
    assert response.json()["nodes"] and response.json()["messages"]


def test_create_stores_and_numbers_rows_as_bulk_create_would():
    job = make_job(steps=[make_task("a"), make_task("b")])
    before = timezone.now()
    [submission] = statements.create(Submission, [Submission(job=job, params={"n": 1, "é": ["x"]}, ip="10.0.0.7", last_message="made")])
    stored = Submission.objects.get(pk=submission.pk)
    assert (stored.uuid, stored.params, stored.ip, stored.status, stored.priority) == (submission.uuid, {"n": 1, "é": ["x"]}, "10.0.0.7", "submitted", "normal")
    assert stored.created_at == submission.created_at and stored.created_at >= before  # auto_now_add, on the instance too
    assert not submission._state.adding
    steps = list(job.steps.all())
    nodes = statements.create(Node, [Node(submission=submission, key=step.key, task=step.task, step=step) for step in steps])
    assert [node.pk for node in nodes] == list(Node.objects.filter(submission=submission).order_by("id").values_list("pk", flat=True))
    assert [Node.objects.get(pk=node.pk).key for node in nodes] == ["a", "b"]
    assert statements.create(Node, []) == []


def test_create_splits_what_one_statement_cannot_hold():
    job = make_job(steps=[make_task("a")])
    submission = engine.submit(job)
    task = job.steps.get().task
    count = 5003  # some 125,000 parameters: more than either SQLite or PostgreSQL (65,535) takes in one statement
    assert count * len(statements._insert_columns(Node, connection.vendor)) > statements.MAX_PARAMETERS
    nodes = statements.create(Node, [Node(submission=submission, key=f"n{index}", task=task) for index in range(count)])
    assert len({node.pk for node in nodes}) == count
    assert Node.objects.filter(submission=submission).count() == count + 1
    assert Node.objects.get(pk=nodes[-1].pk).key == f"n{count - 1}"


def test_count_counts_what_the_orm_counts():
    job = make_job(steps=[make_task("a")])
    for ip in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        engine.submit(job, ip=ip)
    Submission.objects.filter(ip="10.0.0.2").update(status="complete")
    active = sorted(("submitted", "running", "paused", "waiting"))
    assert statements.count(Submission, active, user_id=None, ip="10.0.0.1") == 2
    assert statements.count(Submission, active, user_id=None, ip="10.0.0.2") == 0
    assert statements.count(Submission, ["complete"], user_id=None, ip="10.0.0.2") == 1
    assert statements.count(Submission, active, user_id=12345) == 0


def test_insert_then_update_writes_both_rows():
    submission = submitted(make_job(steps=[make_task("a")]))
    node = submission.nodes.get()
    assert statements.insert_then_update(Message, {"submission_id": submission.pk, "node_id": node.pk, "level": "warning", "text": "both"}, Submission, submission.pk, last_message="both") == 1
    assert Message.objects.get(text="both").node_id == node.pk and Message.objects.get(text="both").level == "warning"
    assert Submission.objects.get(pk=submission.pk).last_message == "both"
    assert statements.insert_then_update(Message, {"submission_id": submission.pk, "text": "no such row"}, Submission, submission.pk + 1000, last_message="x") == 0
    assert Message.objects.filter(text="no such row").count() == 1  # the insert stands on its own


def test_a_large_submissions_document_and_its_pages_take_as_many_statements_as_a_small_ones(settings):
    """The document lists SLUICE_DOCUMENT_LIMIT entries of each list and counts the rest in the same
    statements; a page of a list is a count and the page (and, for nodes, their logs)."""
    from rest_framework.test import APIClient

    from execution.local import SynchronousRunner

    each = make_task("each", "echo $VALUE", stdout_glob=".out")
    job = make_job("fan", steps=[("each", each, {"foreach": {"lines": ".input"}}), ("after", make_task("after_all", "true"), {"ordering": 1})])
    # Both have entries past the page asked for, so that both pages count their lists (a last page
    # knows its count without one, api/pagination.py).
    small, large = (SynchronousRunner(job, input=b"".join(b"%d\n" % n for n in range(8))).init().process(), SynchronousRunner(job, input=b"".join(b"%d\n" % n for n in range(40))).init().process())
    settings.SLUICE_DOCUMENT_LIMIT = 3
    client = APIClient()
    client.get(f"/api/submissions/{small.uuid}/")  # warm: content types
    counted = {}
    for submission in (small, large):
        for path in ("", "nodes/?offset=3", "results/?offset=3", "messages/?offset=3"):
            with CaptureQueriesContext(connection) as queries:
                assert client.get(f"/api/submissions/{submission.uuid}/{path}").status_code == 200
            counted[submission.uuid, path] = len(queries)
    for path in ("", "nodes/?offset=3", "results/?offset=3", "messages/?offset=3"):
        assert counted[large.uuid, path] == counted[small.uuid, path], path
    # submission, nodes, their logs, results, messages; a page: submission, count, page (nodes: and logs).
    assert counted[large.uuid, ""] <= 5 and counted[large.uuid, "nodes/?offset=3"] <= 4 and counted[large.uuid, "messages/?offset=3"] <= 3


@pytest.mark.parametrize("limit, keyed", [(0, False), (3, False), (0, True)])
def test_a_submitters_requests_take_turns_only_when_a_quota_or_a_key_is_to_be_kept(settings, limit, keyed):
    """On PostgreSQL the quota count and an Idempotency-Key's first use are kept true by an advisory
    lock on the submitter; with no QUEUE_HARD_LIMIT and no key one submitter's requests run side by side."""
    from execution import idempotency, intake

    settings.QUEUE_HARD_LIMIT = limit
    make_job("one", steps=[make_task("t")])
    key = idempotency.parse("retry-1", None, "10.0.0.9", idempotency.fingerprint({"job": "one"}, {}, None)) if keyed else None
    with CaptureQueriesContext(connection) as queries:
        intake.accept("one", ip="10.0.0.9", key=key)
    locked = any("pg_advisory_xact_lock" in query["sql"] for query in queries.captured_queries)
    assert locked == (connection.vendor == "postgresql" and (limit > 0 or keyed))
