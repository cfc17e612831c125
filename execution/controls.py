"""Controls a person uses on a running submission: pause, resume, restart a node, answer a waiting node.

Each returns the ids of nodes that should now run (the caller sends them),
or raises ``ControlRefused`` saying why the control does not apply.
"""
import json

from django.core.files.base import ContentFile
from django.db import transaction

from . import engine, intake, lifecycle, logs
from .errors import SluiceError, SubmissionInvalid
from .models import CacheEntry, Node, NodeLog, Result, Submission
from .states import NodeStatus, SubmissionStatus

__all__ = ["ControlRefused", "actor", "pause", "provide_input", "restart", "resume"]

INPUT_LIMIT = 64 * 1024


class ControlRefused(SluiceError):
    """The control does not apply to the submission or node as they are."""


def pause(submission_id, who="a user"):
    """Stop new nodes from starting; running ones finish. Queued nodes go back to pending."""
    if not lifecycle.pause(submission_id):
        status = _status(submission_id)
        raise ControlRefused("it is already paused" if status == SubmissionStatus.PAUSED else f"only an active submission can be paused; it is {status}")
    for node_id in Node.objects.filter(submission_id=submission_id, status=NodeStatus.QUEUED).values_list("pk", flat=True):
        # A message already sent for it finds it pending and does nothing; resume queues it again.
        lifecycle.unqueue(node_id)
    engine.record(submission_id, f"paused by {who}: no new step starts until it is resumed")
    return []


def resume(submission_id, who="a user"):
    """Let nodes start again; returns the ids queued."""
    if not lifecycle.resume(submission_id):
        raise ControlRefused(f"only a paused submission can be resumed; it is {_status(submission_id)}")
    engine.record(submission_id, f"resumed by {who}")
    return engine.advance(submission_id)


def restart(submission_id, key, who="a user"):
    """Run node ``key`` and everything downstream of it again; returns the ids queued.

    Their results are kept as history (marked superseded); nodes that a
    restarted node added at run time are removed, since it will add them again.

    Raises:
        ControlRefused: the node or something downstream is still running.
        QuotaExceeded: the submission had finished, and its submitter is at QUEUE_HARD_LIMIT.
    """
    submission = Submission.objects.get(pk=submission_id)
    edges = engine.edge_keys(submission_id)
    nodes = {node.key: node for node in Node.objects.filter(submission_id=submission_id)}
    if key not in nodes:
        raise ControlRefused(f"submission {submission.uuid} has no node '{key}'")
    if nodes[key].status == NodeStatus.PENDING:
        raise ControlRefused(f"step '{key}' has not run yet")
    downstream = {key} | _descendants(key, edges)
    busy = sorted(k for k in downstream if nodes[k].status in (NodeStatus.QUEUED, NodeStatus.RUNNING, NodeStatus.WAITING))
    if busy:
        raise ControlRefused(f"step '{busy[0]}' is {nodes[busy[0]].status}; wait for it or cancel the submission first")
    blocked = sorted(before for before, after in edges if after in downstream and before not in downstream and nodes[before].status not in NodeStatus.DONE)
    if blocked:
        raise ControlRefused(f"step '{key}' comes after '{blocked[0]}', which is {nodes[blocked[0]].status}; restart '{blocked[0]}' instead")
    with transaction.atomic():
        if submission.status in SubmissionStatus.TERMINAL:
            intake.check_quota(submission)  # it becomes active again, as a new submission would
        added = [k for k in downstream if nodes[k].added_by in downstream]
        # Nodes a restarted node added at run time go (it will add them again), files and all.
        engine.delete_results(Result.objects.filter(node__submission_id=submission_id, node__key__in=added))
        logs.delete(NodeLog.objects.filter(node__submission_id=submission_id, node__key__in=added))
        Result.objects.filter(node__submission_id=submission_id, node__key__in=downstream).update(superseded=True)
        # Cached runs of these nodes describe results that are now history.
        CacheEntry.objects.filter(node__submission_id=submission_id, node__key__in=downstream).delete()
        kept = [promise for promise in submission.promises if promise.get("by") not in downstream]
        Submission.objects.filter(pk=submission_id).update(promises=kept)
        Node.objects.filter(submission_id=submission_id, key__in=added).delete()
        for k in sorted(downstream - set(added)):
            # Attempts count from 1 again, in a new run: the logs of the runs so far stay as history.
            lifecycle.reset(nodes[k].pk)
        if submission.status in SubmissionStatus.TERMINAL:
            lifecycle.reopen(submission_id)
        engine.record(submission_id, f"step '{key}' and {len(downstream) - 1} steps after it restarted by {who}")
    return engine.advance(submission_id)


def provide_input(submission_id, key, value, who="a user"):
    """Answer a node that waits for input; it succeeds with the answer as its output "input"
    and as a result file ``<ID>.<key>.answer``. Returns the ids queued.

    Raises:
        ControlRefused: the node does not wait for input.
        SubmissionInvalid: the answer is too long.
        QuotaExceeded: the submitter is at QUEUE_HARD_LIMIT without this submission.
    """
    node = Node.objects.select_related("submission", "task").filter(submission_id=submission_id, key=key).first()
    if node is None:
        raise ControlRefused(f"there is no node '{key}'")
    if node.status != NodeStatus.WAITING or not node.task.input_prompt:
        raise ControlRefused(f"step '{key}' is not waiting for input; it is {node.status}")
    text = value if isinstance(value, str) else json.dumps(value)
    if node.task.input_choices and value not in node.task.input_choices:
        allowed = ", ".join(repr(choice) for choice in node.task.input_choices)
        raise SubmissionInvalid({"value": f"step '{key}' takes one of {allowed} (exactly, case included), not {value!r}"})
    if len(text) > INPUT_LIMIT:
        raise SubmissionInvalid({"value": f"the answer is {len(text)} characters; at most {INPUT_LIMIT}"})
    with transaction.atomic():
        intake.check_quota(node.submission)  # it works again, as a new submission would
        if not lifecycle.answer(node.pk, {**node.outputs, "input": value}, f"{ANSWERED_BY}{who}"):
            raise ControlRefused(f"step '{key}' was answered already")
        result = Result(submission_id=submission_id, node=node, name=f"{node.submission.file_id}.{key}.answer", ending=".answer", size=len(text.encode()))
        result.file.save(result.name, ContentFile(text.encode()), save=True)
        if node.submission.status == SubmissionStatus.WAITING:
            lifecycle.unwait(submission_id)
        engine.record(submission_id, f"step '{key}' answered by {who}", node=node)
    return engine.advance(submission_id, finished=node.pk)


# An answered node's message: who answered it follows.
ANSWERED_BY = "answered by "


def answerer(node):
    """Who answered ``node``, a step that waited for input, as its message says; "" if it was not answered."""
    return node.message[len(ANSWERED_BY):] if "input" in (node.outputs or {}) and node.message.startswith(ANSWERED_BY) else ""


def actor(user):
    """How messages name the person behind a control: their user name, or the anonymous submitter."""
    return user.get_username() if user is not None and user.is_authenticated else "the holder of its link"


def _descendants(key, edges):
    children = {}
    for before, after in edges:
        children.setdefault(before, []).append(after)
    seen, stack = set(), [key]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def _status(submission_id):
    return Submission.objects.filter(pk=submission_id).values_list("status", flat=True).first()


