"""Retention deletes old finished submissions in bounded batches, each its own transaction, with their files."""
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from execution import retention
from execution.local import SynchronousRunner
from execution.models import Edge, Message, Node, NodeLog, Result, Submission
from tests.factories import make_job, make_task

pytestmark = pytest.mark.django_db


def files_of(submissions):
    names = list(Result.objects.filter(submission__in=submissions).values_list("file", flat=True))
    return names + list(NodeLog.objects.filter(node__submission__in=submissions).values_list("file", flat=True))


def test_retention_deletes_everything_old_in_batches_and_keeps_active_and_recent_ones(settings, monkeypatch):
    settings.SLUICE_RETENTION_BATCH = 2
    job = make_job(steps=[("a", make_task("a", "echo x", stdout_glob=".txt"), {"ordering": 0}), ("b", make_task("b", "echo y >&2"), {"ordering": 1})])
    *old, recent, active = SynchronousRunner(job).run(n=7)
    Submission.objects.filter(pk__in=[s.pk for s in old + [active]]).update(finished_at=timezone.now() - timedelta(days=40))
    Submission.objects.filter(pk=active.pk).update(status="running")
    doomed = files_of(old)
    assert len(doomed) == 15 and all(default_storage.exists(name) for name in doomed)  # a result and two logs each
    batches = []
    monkeypatch.setattr(retention, "_delete_batch", lambda ids, real=retention._delete_batch: batches.append(len(ids)) or real(ids))
    assert retention.purge(days=30) == 5
    assert batches == [2, 2, 2]  # the active one, finished long ago before it was set working again, is looked at and kept
    assert set(Submission.objects.values_list("pk", flat=True)) == {recent.pk, active.pk}
    gone = [s.pk for s in old]
    for model in (Node, Edge, Message, Result):
        assert not model.objects.filter(submission__in=gone).exists(), model
    assert not NodeLog.objects.filter(node__submission__in=gone).exists()
    assert not any(default_storage.exists(name) for name in doomed)
    assert all(default_storage.exists(name) for name in files_of([recent, active]))


def test_deleting_a_submission_frees_what_refers_to_its_nodes(settings):
    job = make_job(steps=[make_task("t", "true")])
    finished, child = SynchronousRunner(job).run(n=2)
    Submission.objects.filter(pk=child.pk).update(parent_node=finished.nodes.get())
    assert retention.delete_submissions(Submission.objects.filter(pk=finished.pk)) == 1
    child.refresh_from_db()
    assert child.parent_node is None


def test_retention_handles_every_relation_to_submissions_and_nodes():
    """A new model that refers to a Submission or a Node must be deleted or cleared in retention._delete_rows."""
    relations = {
        (model.__name__, relation.related_model.__name__, relation.field.name)
        for model in (Submission, Node)
        for relation in model._meta.get_fields(include_hidden=True)
        if relation.auto_created and not relation.concrete
    }
    assert relations == {
        ("Submission", "Node", "submission"), ("Submission", "Edge", "submission"), ("Submission", "Result", "submission"),
        ("Submission", "Message", "submission"), ("Submission", "PeriodicSubmission", "last_submission"), ("Submission", "IdempotencyKey", "submission"),
        ("Node", "Submission", "parent_node"), ("Node", "Edge", "source"), ("Node", "Edge", "target"), ("Node", "Result", "node"),
        ("Node", "NodeLog", "node"), ("Node", "Message", "node"), ("Node", "CacheEntry", "node"),
    }
