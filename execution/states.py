"""The statuses of submissions and nodes, and their named groups.

Only ``execution.lifecycle`` writes them.
"""
from django.db import models

__all__ = ["NodeStatus", "SubmissionStatus"]


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
