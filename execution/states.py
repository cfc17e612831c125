"""Statuses and every status transition, each a conditional update.

A transition names the statuses it may leave from; the UPDATE matches only
rows still in one of them. "0 rows updated" means another process (a
duplicate message, a reconciler, a cancel) got there first, and the caller
must not act as if it had made the change.
"""
from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import statements

__all__ = ["Add", "NodeStatus", "SubmissionStatus", "move_node", "move_submission"]

Add = statements.Add  # move_node(..., attempt=Add(1)): the column plus one


class SubmissionStatus(models.TextChoices):
    SUBMITTED = "submitted"
    RUNNING = "running"
    PAUSED = "paused"
    WAITING = "waiting"
    COMPLETE = "complete"
    ERROR = "error"
    CRASH = "crash"
    CANCELLED = "cancelled"


SubmissionStatus.ACTIVE = frozenset({"submitted", "running", "paused", "waiting"})
SubmissionStatus.TERMINAL = frozenset({"complete", "error", "crash", "cancelled"})


class NodeStatus(models.TextChoices):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CACHED = "cached"
    CANCELLED = "cancelled"


NodeStatus.ACTIVE = frozenset({"pending", "queued", "running", "waiting"})
NodeStatus.TERMINAL = frozenset({"succeeded", "failed", "skipped", "cached", "cancelled"})
# A node in one of these lets the nodes after it start.
NodeStatus.DONE = frozenset({"succeeded", "skipped", "cached"})


def move_node(node_id, from_statuses, to, **fields):
    """Set node ``node_id`` to status ``to`` if it is in one of ``from_statuses``.

    Sets ``started_at`` on entering running and ``finished_at`` on entering a
    terminal status. Returns True when this call made the change.
    """
    from .models import Node

    fields["status"] = to
    now = timezone.now()
    if to == NodeStatus.RUNNING:
        fields.setdefault("started_at", now)
    if to in NodeStatus.TERMINAL:
        fields.setdefault("finished_at", now)
    return _update(Node, node_id, from_statuses, fields)


def move_submission(submission_id, from_statuses, to, **fields):
    """Set submission ``submission_id`` to ``to`` if it is in one of ``from_statuses``.

    Returns True when this call made the change.
    """
    from .models import Submission

    fields["status"] = to
    now = timezone.now()
    if to == SubmissionStatus.RUNNING:
        # Back to running after a pause, an answer or a restart keeps the first start.
        fields.setdefault("started_at", Coalesce(F("started_at"), Value(now)))
    if to in SubmissionStatus.TERMINAL:
        fields.setdefault("finished_at", now)
    return _update(Submission, submission_id, from_statuses, fields)


def _update(model, pk, from_statuses, fields):
    statuses = sorted(_as_set(from_statuses))
    if statements.plain(fields):
        return statements.conditional_update(model, pk, statuses, fields) == 1
    values = {name: F(name) + value.amount if isinstance(value, statements.Add) else value for name, value in fields.items()}
    return model.objects.filter(pk=pk, status__in=statuses).update(**values) == 1


def _as_set(statuses):
    return {statuses} if isinstance(statuses, str) else set(statuses)
