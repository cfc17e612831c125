"""Find work the broker or a dead worker lost, and set it going again.

Safe to run anywhere, any number of times at once: every change is a
conditional update, and a re-sent message for a node that has meanwhile
started is ignored by the claim.
"""
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from . import dispatch, engine, executors, lifecycle, workdirs
from .models import Message, Node, Submission
from .states import NodeStatus, SubmissionStatus

log = logging.getLogger(__name__)

__all__ = ["Report", "reconcile", "recover"]


@dataclass
class Report:
    rerun: list = field(default_factory=list)  # running nodes whose worker died, queued again
    adopted: list = field(default_factory=list)  # running nodes whose followed run (a cluster job) a live worker is asked to take over
    crashed: list = field(default_factory=list)  # submissions ended because a node was lost too often
    resent: list = field(default_factory=list)  # queued nodes whose message was sent again
    advanced: list = field(default_factory=list)  # nodes queued for submissions nobody was moving
    expired: list = field(default_factory=list)  # submissions that waited for people longer than SLUICE_IDLE_EXPIRY
    swept: int = 0  # working directories no running attempt owned

    def __bool__(self):
        return bool(self.rerun or self.adopted or self.crashed or self.resent or self.advanced or self.expired or self.swept)


def reconcile(now=None):
    """Re-run nodes with lapsed leases, re-send stale queued nodes, advance stalled submissions."""
    now = now or timezone.now()
    report = Report()
    lost = Node.objects.filter(status=NodeStatus.RUNNING, lease_expires_at__lt=now)
    for node in lost.select_related("task__backend__queue_type", "submission"):
        if _followed(node):
            dispatch.adopt(node)  # a live worker takes the run over; it is not started again
            report.adopted.append(node.pk)
            continue
        _rerun(node, f"its worker {node.worker or '(unknown)'} stopped renewing its lease", report)
    stale = Node.objects.filter(status=NodeStatus.QUEUED, queued_at__lt=now - timedelta(seconds=settings.SLUICE_REQUEUE_SECONDS))
    _resend(stale.exclude(not_before__gt=now), now, report)
    _advance_stalled(report)
    _expire_idle(now, report)
    report.swept = workdirs.sweep()
    if report:
        log.warning(
            "Reconciler: re-ran %s, asked workers to take over %s, crashed %s, re-sent %s, advanced %s, expired %s, removed %s working directories.",
            report.rerun, report.adopted, report.crashed, report.resent, report.advanced, report.expired, report.swept,
        )
    return report


def recover():
    """On start of the embedded mode: nothing from a previous process is still running."""
    report = Report()
    for node in Node.objects.filter(status=NodeStatus.RUNNING).select_related("task__backend__queue_type", "submission"):
        if _followed(node):
            dispatch.adopt(node)  # a cluster job outlives the server: follow it again
            report.adopted.append(node.pk)
            continue
        _rerun(node, "the server stopped while it ran", report)
    _resend(Node.objects.filter(status=NodeStatus.QUEUED), timezone.now(), report)
    _advance_stalled(report)
    report.swept = workdirs.sweep()
    return report


def _followed(node):
    """Is ``node``'s run a followed one (a cluster job) that can outlive its worker?"""
    try:
        return bool(node.handle) and executors.get(node.task.backend.queue_type.execution_behaviour).followed
    except executors.ExecutorError:
        return False


def lose(node, reason):
    """A running node's run is lost (``reason``): queue it again or give up, as for a dead worker's node."""
    report = Report()
    _rerun(node, reason, report)
    return report


def _rerun(node, reason, report):
    """Take a lost attempt's node back, stop what is left of its run, then queue it again (or give up).

    The fenced ``lose`` comes first, so that a run which was only slow finds
    its node taken and records nothing when it is stopped; the message goes
    last, so that two attempts never run side by side.
    """
    attempt = lifecycle.attempt_of(node)
    limit = max(node.task.retries, settings.SLUICE_LOST_NODE_RETRIES)
    if node.attempt <= limit:
        if lifecycle.lose(attempt, give_up=False, message=reason):
            _stop_orphan(node)
            engine.record(node.submission_id, f"step '{node.key}' attempt {node.attempt} was lost ({reason}); running it again", Message.Level.WARNING, node)
            dispatch.send([node.pk])
            report.rerun.append(node.pk)
        return
    text = f"step '{node.key}' was lost {node.attempt} times ({reason}); giving up"
    if lifecycle.lose(attempt, give_up=True, message=text):
        _stop_orphan(node)
        if engine.stop(node.submission_id, SubmissionStatus.CRASH, text):
            report.crashed.append(node.submission_id)


def _stop_orphan(node):
    """Stop the lost attempt's run, and remove its directory, if its executor can reach it from here.

    A local process group is reachable on its host; elsewhere, the sweep of
    that host's reconciler or next worker removes the directory.
    """
    if not node.handle:
        return
    executor = executors.get(node.task.backend.queue_type.execution_behaviour)
    if not executor.reaches(node.handle):
        return
    if executor.poll(node.handle) is None:
        executor.cancel(node.handle)
    if executor.attached:
        workdirs.remove(workdirs.path_for(node))


def _resend(nodes, now, report):
    ids = list(nodes.values_list("pk", flat=True))
    if ids:
        Node.objects.filter(pk__in=ids, status=NodeStatus.QUEUED).update(queued_at=now)
        dispatch.send(ids)
        report.resent.extend(ids)


def _expire_idle(now, report):
    """End submissions that have waited for input, or stayed paused, longer than SLUICE_IDLE_EXPIRY."""
    if not settings.SLUICE_IDLE_EXPIRY:
        return
    cutoff = now - timedelta(seconds=settings.SLUICE_IDLE_EXPIRY)
    idle = Submission.objects.filter(status__in=[SubmissionStatus.WAITING, SubmissionStatus.PAUSED], idle_since__lt=cutoff)
    for submission_id, status in idle.values_list("pk", "status"):
        why = "waited for input" if status == SubmissionStatus.WAITING else "stayed paused"
        text = f"expired: it {why} longer than {_duration(settings.SLUICE_IDLE_EXPIRY)} (SLUICE_IDLE_EXPIRY)"
        released = []
        if engine.stop(submission_id, SubmissionStatus.CANCELLED, text, released=released, idle_before=cutoff):
            dispatch.send(released)
            report.expired.append(submission_id)


def _duration(seconds):
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} seconds"


def _advance_stalled(report):
    """Advance active submissions with no node queued, running or waiting (a crash between steps)."""
    moving = Node.objects.filter(status__in=[NodeStatus.QUEUED, NodeStatus.RUNNING, NodeStatus.WAITING]).values("submission_id")
    stalled = Submission.objects.filter(status__in=[SubmissionStatus.SUBMITTED, SubmissionStatus.RUNNING]).exclude(pk__in=moving)
    for submission_id in stalled.values_list("pk", flat=True):
        ids = engine.advance(submission_id)
        dispatch.send(ids)
        report.advanced.extend(ids)
