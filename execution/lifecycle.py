"""The life of nodes and submissions: the only code that writes their status.

Each transition is one named function. It is a conditional update that
names the statuses it may leave from, so "it returned False" means another
process (a duplicate message, a reconciler, a cancel) got there first and the
caller must not act as if it had made the change. The field resets of each
transition are written here, once.

**Fencing.** ``claim`` hands out an ``Attempt``: the node id with the value of
its ``fence`` column, which every claim increments and nothing ever resets.
Every write an attempt makes after its claim (lease renewal, its handle, its
verdict, its results) is conditional on that fence as well as on the status,
so a worker that was paused past its lease, and whose node was meanwhile
handed to another worker, changes nothing when it wakes up. ``hold`` checks
(and on PostgreSQL locks) an attempt's row at the start of a transaction that
writes more than the node row.

Callers wrap several transitions in one ``transaction.atomic()`` where they
must be seen together (a node done and the graph it grew; a submission
stopped and its nodes cancelled).
"""
import functools
import operator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import statements
from .states import NodeStatus, SubmissionStatus

__all__ = [
    "Attempt", "Fenced", "Ready",
    # node, before a claim
    "queue", "unqueue", "skip", "refuse", "wait_for_input", "answer", "reset",
    # node, an attempt
    "claim", "hold", "renew", "record_handle", "defer", "hand_back", "retry", "succeed", "cache", "fail", "cancel", "wait_for_child",
    "child_ended", "lose", "adopt", "attempt_of", "now_of",
    # submission
    "start", "pause", "resume", "wait", "unwait", "finish", "reopen", "end_nodes",
]

RUNNING = (NodeStatus.RUNNING,)
_START_STATUSES = (SubmissionStatus.SUBMITTED, SubmissionStatus.RUNNING)
# Submissions that wait for people (an answer, a resume), and count how long for.
_IDLE = {SubmissionStatus.WAITING, SubmissionStatus.PAUSED}


@dataclass(frozen=True)
class Attempt:
    """One claimed run of a node: what fences its writes."""

    node_id: int
    fence: int
    number: int  # the node's attempt counter (1, 2, ...; starts again after a restart)


class Fenced(Exception):
    """An attempt's node was taken over (or ended) by someone else; nothing it writes counts."""

    def __init__(self, attempt, now):
        self.attempt = attempt
        self.now = now  # (status, attempt number, fence) of the node as it is, or None when gone
        super().__init__(f"node {attempt.node_id} attempt {attempt.number} no longer owns the node (now {now})")


class Ready(int):
    """The id of a node just queued, with the ``queue`` its message goes to when known.

    It is an int so that every caller (the runner, tests, ``dispatch.send``) can
    treat it as the node id; the queue rides along so sending needs no lookup.
    """

    def __new__(cls, node_id, queue=None):
        ready = super().__new__(cls, node_id)
        ready.queue = queue
        return ready


# -- nodes before they run ---------------------------------------------------------------


def queue(node_id, queue_name=None):
    """pending → queued; return a ``Ready`` (or None when the node was not pending)."""
    if _node(node_id, NodeStatus.PENDING, NodeStatus.QUEUED, queued_at=timezone.now()):
        return Ready(node_id, queue_name)
    return None


def unqueue(node_id):
    """queued → pending (a pause): a message already sent finds it pending and does nothing."""
    return _node(node_id, NodeStatus.QUEUED, NodeStatus.PENDING)


def skip(node_id, message):
    """pending → skipped (disabled, a false condition, or expanded into instances)."""
    return _node(node_id, NodeStatus.PENDING, NodeStatus.SKIPPED, message=message)


def refuse(node_id, message):
    """pending → failed: the node cannot start (a bad condition or expansion)."""
    return _node(node_id, NodeStatus.PENDING, NodeStatus.FAILED, message=message)


def wait_for_input(node_id):
    """pending → waiting for a person's answer."""
    return _node(node_id, NodeStatus.PENDING, NodeStatus.WAITING)


def answer(node_id, outputs, message):
    """waiting → succeeded with the answer among its outputs."""
    return _node(node_id, NodeStatus.WAITING, NodeStatus.SUCCEEDED, outputs=outputs, message=message)


def reset(node_id):
    """finished → pending, as if it had never run (a restart): attempts count from 1 again in a new run; the fence keeps counting."""
    return _node(
        node_id, NodeStatus.TERMINAL, NodeStatus.PENDING, attempt=0, restarts=statements.Add(1), exit_code=None, message="restarted", outputs={},
        started_at=None, finished_at=None, not_before=None, worker="", handle="",
    )


# -- attempts ---------------------------------------------------------------------------


def claim(node, worker):
    """queued → running for a new attempt of ``node`` (a row loaded just before); return its ``Attempt`` or None.

    The update also matches the fence that was loaded, so two claimants that
    loaded the same row cannot both win.
    """
    lease = timezone.now() + timedelta(seconds=settings.SLUICE_LEASE_SECONDS)
    fields = dict(
        attempt=statements.Add(1), fence=statements.Add(1), exit_code=None, message="", worker=worker, handle="",
        lease_expires_at=lease, not_before=None, finished_at=None,
    )
    if not _node(node.pk, NodeStatus.QUEUED, NodeStatus.RUNNING, at_fence=node.fence, **fields):
        return None
    node.attempt += 1
    node.fence += 1
    node.status = NodeStatus.RUNNING
    return Attempt(node.pk, node.fence, node.attempt)


def hold(attempt, **fields):
    """Confirm ``attempt`` still owns its running node (writing ``fields``, if any), else raise ``Fenced``.

    Called first in a transaction, the update also locks the row until commit
    on PostgreSQL, so no takeover can slip in between the check and the writes
    that follow it.
    """
    if not _node(attempt.node_id, RUNNING, None, at_fence=attempt.fence, **(fields or {"fence": attempt.fence})):
        raise Fenced(attempt, now_of(attempt.node_id))


def renew(attempts):
    """Extend the lease of every attempt in ``attempts`` that still owns its running node (one statement); return how many."""
    from .models import Node

    if not attempts:
        return 0
    lease = timezone.now() + timedelta(seconds=settings.SLUICE_LEASE_SECONDS)
    owns = functools.reduce(operator.or_, (Q(pk=attempt.node_id, fence=attempt.fence) for attempt in attempts))
    return Node.objects.filter(owns, status=NodeStatus.RUNNING).update(lease_expires_at=lease)


def record_handle(attempt, handle):
    """Store the executor's handle of the attempt's run (so a cancel or a reconciler can reach it)."""
    return _node(attempt.node_id, RUNNING, None, at_fence=attempt.fence, handle=handle)


def defer(attempt):
    """running → pending, undoing the claim (the submission was paused meanwhile)."""
    return _node(
        attempt.node_id, RUNNING, NodeStatus.PENDING, at_fence=attempt.fence,
        attempt=statements.Add(-1), worker="", handle="", lease_expires_at=None, started_at=None,
    )


def hand_back(attempt, queued_at=None):
    """running → queued: the attempt stops (a worker shutdown, a lost worker) and another worker runs it again."""
    return _node(
        attempt.node_id, RUNNING, NodeStatus.QUEUED, at_fence=attempt.fence,
        queued_at=queued_at or timezone.now(), lease_expires_at=None, worker="", handle="",
    )


def retry(attempt, message, exit_code, delay):
    """running → queued after a failed attempt, to run again once ``delay`` seconds have passed."""
    now = timezone.now()
    return _node(
        attempt.node_id, RUNNING, NodeStatus.QUEUED, at_fence=attempt.fence, exit_code=exit_code, message=message,
        finished_at=None, queued_at=now, not_before=now + timedelta(seconds=delay), lease_expires_at=None, handle="",
    )


def succeed(attempt, message="", exit_code=None, **fields):
    """running → succeeded."""
    return _node(attempt.node_id, RUNNING, NodeStatus.SUCCEEDED, at_fence=attempt.fence, exit_code=exit_code, message=message, lease_expires_at=None, **fields)


def cache(attempt, message, outputs):
    """running → cached: an earlier run's results were reused."""
    return _node(attempt.node_id, RUNNING, NodeStatus.CACHED, at_fence=attempt.fence, message=message, outputs=outputs, lease_expires_at=None)


def fail(attempt, message, exit_code=None, **fields):
    """running → failed, for good."""
    return _node(attempt.node_id, RUNNING, NodeStatus.FAILED, at_fence=attempt.fence, exit_code=exit_code, message=message, lease_expires_at=None, **fields)


def cancel(attempt, message):
    """running → cancelled: the claimed node's submission had ended meanwhile."""
    return _node(attempt.node_id, RUNNING, NodeStatus.CANCELLED, at_fence=attempt.fence, message=message, lease_expires_at=None)


def wait_for_child(attempt, message):
    """running → waiting for a sub-job, which holds no worker and no lease."""
    return _node(attempt.node_id, RUNNING, NodeStatus.WAITING, at_fence=attempt.fence, message=message, lease_expires_at=None)


def child_ended(node_id, succeeded, message):
    """waiting → succeeded or failed: the node's sub-job ended."""
    return _node(node_id, NodeStatus.WAITING, NodeStatus.SUCCEEDED if succeeded else NodeStatus.FAILED, message=message)


def lose(attempt, give_up, message):
    """A running attempt's worker is gone: queue it again, or (``give_up``) fail it."""
    if give_up:
        return _node(attempt.node_id, RUNNING, NodeStatus.FAILED, at_fence=attempt.fence, message=message, lease_expires_at=None)
    return hand_back(attempt)


def adopt(node, worker):
    """running → running under ``worker``, keeping the attempt and its handle: a followed run whose follower died.

    The fence moves on, so the old owner (if only slow) changes nothing more;
    ``node`` is the row as loaded, at the fence the caller saw. Returns the
    new ``Attempt``, or None when the node moved on meanwhile.
    """
    lease = timezone.now() + timedelta(seconds=settings.SLUICE_LEASE_SECONDS)
    if not _node(node.pk, RUNNING, None, at_fence=node.fence, fence=statements.Add(1), worker=worker, lease_expires_at=lease):
        return None
    return Attempt(node.pk, node.fence + 1, node.attempt)


def attempt_of(node):
    """The ``Attempt`` a loaded running node row is on (for code that acts on someone else's attempt)."""
    return Attempt(node.pk, node.fence, node.attempt)


# -- submissions -----------------------------------------------------------------------


def start(submission_id):
    """submitted → running, when its first node starts."""
    return _submission(submission_id, SubmissionStatus.SUBMITTED, SubmissionStatus.RUNNING)


def pause(submission_id):
    """Active (but not paused) → paused."""
    return _submission(submission_id, (*_START_STATUSES, SubmissionStatus.WAITING), SubmissionStatus.PAUSED)


def resume(submission_id):
    """paused → running."""
    return _submission(submission_id, SubmissionStatus.PAUSED, SubmissionStatus.RUNNING)


def wait(submission_id):
    """submitted/running → waiting: its only unfinished nodes wait for people."""
    return _submission(submission_id, _START_STATUSES, SubmissionStatus.WAITING)


def unwait(submission_id):
    """waiting → running: a node it waited for was answered, or work is queued again."""
    return _submission(submission_id, SubmissionStatus.WAITING, SubmissionStatus.RUNNING)


def finish(submission_id, status, message, idle_before=None):
    """Active → ``status`` (terminal) with its last message.

    With ``idle_before`` (a time), only a submission that has been waiting or
    paused since before then: the idle expiry, which must not end one that
    was answered or resumed a moment ago.
    """
    if idle_before is None:
        return _submission(submission_id, SubmissionStatus.ACTIVE, status, last_message=message)
    return _submission(submission_id, _IDLE, status, last_message=message, idle_since__lt=idle_before)


def reopen(submission_id):
    """Terminal → running again (a node of it was restarted)."""
    return _submission(submission_id, SubmissionStatus.TERMINAL, SubmissionStatus.RUNNING, finished_at=None)


def end_nodes(submission_id, remaining, message):
    """Every unfinished node of a stopped submission → ``remaining`` (cancelled or skipped).

    Running nodes' workers see it on their next beat and stop their runs.
    Returns the nodes that were running, as (id, key) pairs.
    """
    from .models import Node

    running = []
    for node_id, key, was in Node.objects.filter(submission_id=submission_id, status__in=NodeStatus.ACTIVE).values_list("pk", "key", "status"):
        text = f"{'stopped' if was == NodeStatus.RUNNING else 'not run'}: {message}"
        if _node(node_id, NodeStatus.ACTIVE, remaining, message=text, lease_expires_at=None) and was == NodeStatus.RUNNING:
            running.append((node_id, key))
    return running


# -- the two writers ---------------------------------------------------------------------


def _node(node_id, from_statuses, to, at_fence=None, **fields):
    """Move node ``node_id`` (when in ``from_statuses``, and at fence ``at_fence`` if given) to ``to``; None: keep its status.

    Sets ``started_at`` on entering running and ``finished_at`` on entering a
    terminal status. Returns True when this call changed the row.
    """
    from .models import Node

    now = timezone.now()
    if to is not None:
        fields["status"] = to
        if to == NodeStatus.RUNNING:
            fields.setdefault("started_at", now)
        if to in NodeStatus.TERMINAL:
            fields.setdefault("finished_at", now)
    return statements.conditional_update(Node, node_id, sorted(_as_set(from_statuses)), fields, fence=at_fence) == 1


def _submission(submission_id, from_statuses, to, idle_since__lt=None, **fields):
    from .models import Submission

    fields["status"] = to
    now = timezone.now()
    statuses = sorted(_as_set(from_statuses))
    if to in _IDLE:  # waiting for people since the first of a wait and a pause
        fields["idle_since"] = Coalesce(F("idle_since"), Value(now))
    elif set(statuses) & _IDLE:
        fields["idle_since"] = None
    if to == SubmissionStatus.RUNNING:
        # Back to running after a pause, an answer or a restart keeps the first start.
        fields.setdefault("started_at", Coalesce(F("started_at"), Value(now)))
    if to in SubmissionStatus.TERMINAL:
        fields.setdefault("finished_at", now)
    if statements.plain(fields) and idle_since__lt is None:
        return statements.conditional_update(Submission, submission_id, statuses, fields) == 1
    rows = Submission.objects.filter(pk=submission_id, status__in=statuses)
    if idle_since__lt is not None:
        rows = rows.filter(idle_since__lt=idle_since__lt)
    return rows.update(**fields) == 1


def now_of(node_id):
    """(status, attempt number, fence) of a node as it is now, or None when it is gone."""
    from .models import Node

    return Node.objects.filter(pk=node_id).values_list("status", "attempt", "fence").first()


def _as_set(statuses):
    return {statuses} if isinstance(statuses, str) else set(statuses)
