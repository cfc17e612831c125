"""Delete finished submissions, and their files, once they are old enough.

Deleting happens in batches of ``SLUICE_RETENTION_BATCH`` submissions, each
in a transaction of its own, so that a purge of a big backlog never holds
the database's write lock (SQLite) or many row locks (PostgreSQL) for long:
writers wait at most one batch. A batch's files are deleted after its
transaction commits; a crash in between leaves files without rows, never
rows without files.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from .models import CacheEntry, Edge, IdempotencyKey, Message, Node, NodeLog, PeriodicSubmission, Result, Submission
from .states import SubmissionStatus

log = logging.getLogger(__name__)


def purge(days=None, now=None, batch=None):
    """Delete finished submissions older than ``days`` (default: the setting); return how many.

    ``days`` of 0 keeps everything. Active submissions are never touched.
    """
    days = settings.SLUICE_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    # Chosen along the finished_at index alone, oldest first; each batch keeps what is not finished
    # (a filter on the status here would have the planner sort every finished submission per batch).
    count = _in_batches(Submission.objects.filter(finished_at__lt=cutoff), "finished_at", batch)
    if count:
        log.info("Retention: deleted %s submissions finished before %s.", count, cutoff.isoformat())
    return count


def delete_submissions(submissions, batch=None):
    """Delete the finished submissions among ``submissions`` with their result and log files; return how many."""
    return _in_batches(submissions.filter(status__in=SubmissionStatus.TERMINAL), "pk", batch)


def _in_batches(submissions, key, batch):
    """Delete the finished ones of ``submissions``, ``batch`` at a time (default SLUICE_RETENTION_BATCH), in the order of ``key``, then ``pk``.

    Each selection starts where the last one ended (``key >= last``), so the
    scan never walks past what was deleted again; what a batch kept (not
    finished) is left out of the later ones.
    """
    size = batch or settings.SLUICE_RETENTION_BATCH
    deleted, since, kept = 0, None, set()
    while True:
        chosen = submissions if since is None else submissions.filter(**{f"{key}__gte": since})
        rows = list(chosen.exclude(pk__in=kept).order_by(key, "pk").values_list("pk", key)[:size])
        if not rows:
            return deleted
        ids = [pk for pk, _ in rows]
        gone = _delete_batch(ids)
        kept.update(set(ids) - set(gone))
        deleted, since = deleted + len(gone), rows[-1][1]


def _delete_batch(ids):
    """Delete the submissions ``ids`` that are finished, in one transaction, then their files; return the ids deleted."""
    with transaction.atomic():
        # Locked (PostgreSQL), so that a restart cannot set one working between this check and the delete.
        finished = list(Submission.objects.filter(pk__in=ids, status__in=SubmissionStatus.TERMINAL).select_for_update().values_list("pk", flat=True))
        if not finished:
            return []
        names = list(Result.objects.filter(submission__in=finished).exclude(file="").values_list("file", flat=True))
        names += NodeLog.objects.filter(node__submission__in=finished).exclude(file="").values_list("file", flat=True)
        _delete_rows(finished)
    for name in names:  # after the commit: the write lock is not held while storage answers
        default_storage.delete(name)
    return finished


def _delete_rows(ids):
    """Delete submissions ``ids`` and every row that hangs off them, one statement per table, no rows loaded.

    What Django's cascade would do, without loading each node to look up what
    refers to it (which costs more than the deletes). Every relation to a
    Submission or a Node is handled here; tests/test_retention.py fails when
    a new one appears.
    """
    nodes = Node.objects.filter(submission__in=ids)
    Submission.objects.filter(parent_node__in=nodes).update(parent_node=None)  # sub-jobs those nodes ran
    PeriodicSubmission.objects.filter(last_submission__in=ids).update(last_submission=None)
    Message.objects.filter(node__in=nodes).exclude(submission__in=ids).update(node=None)
    for leaf in (
        CacheEntry.objects.filter(node__in=nodes), NodeLog.objects.filter(node__in=nodes), Result.objects.filter(submission__in=ids),
        Message.objects.filter(submission__in=ids), Edge.objects.filter(submission__in=ids), IdempotencyKey.objects.filter(submission__in=ids),
    ):
        leaf.delete()  # nothing refers to these: one DELETE each
    # Nothing refers to the nodes and submissions any more: Django's own single-statement delete,
    # which QuerySet.delete takes only for a model that nothing can refer to.
    nodes._raw_delete(nodes.db)
    Submission.objects.filter(pk__in=ids)._raw_delete(Submission.objects.db)
