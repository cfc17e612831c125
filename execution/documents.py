"""The JSON document of a submission, shared by the API and ``runjob --json``."""
from collections import namedtuple
from urllib.parse import quote

from . import logs, statements
from .models import Message, Node, Result, Submission

__all__ = ["MOVING_FIELDS", "Rows", "log_url", "refresh", "result_url", "submission_document"]

# A submission's nodes, results and messages, when the caller has them already (``engine.submit``'s, as committed).
Rows = namedtuple("Rows", "nodes results messages")

# What the engine changes on a submission after creating it.
MOVING_FIELDS = ("status", "last_message", "started_at", "finished_at", "idle_since")


def result_url(result):
    return f"/api/submissions/{result.submission.uuid}/results/{result.pk}/"


def log_url(submission, node, attempt):
    """Where attempt ``attempt`` of ``node``'s stdout is served; add ``&stream=stderr`` for its stderr."""
    return f"/api/submissions/{submission.uuid}/nodes/{quote(node.key, safe='')}/log/?attempt={attempt}"


def _time(value):
    return value.isoformat() if value else None


def refresh(submission):
    """Re-read what the engine has changed on ``submission`` since it was loaded (``MOVING_FIELDS``), in one statement."""
    now = statements.load(Submission, submission.pk)
    if now is not None:
        for name in MOVING_FIELDS:
            setattr(submission, name, getattr(now, name))
    return submission


def submission_document(submission, rows=None):
    """Return the status document of ``submission`` as plain JSON-ready data.

    Four statements: nodes with their tasks, logs (none while no node has
    run an attempt), results (current and superseded at once), messages;
    each built once per process (``statements.rows``), as clients poll this.
    None when ``rows`` (a ``Rows``) gives the nodes, results and messages.
    """
    if rows is None:
        rows = Rows(
            statements.rows(Node, "submission_id", submission.pk, "task"),
            statements.rows(Result, "submission_id", submission.pk),
            statements.rows(Message, "submission_id", submission.pk),
        )
    nodes, results, messages = rows
    keys = {node.pk: node.key for node in nodes}
    sizes = logs.sizes(nodes) if any(node.attempt for node in nodes) else {node.pk: {} for node in nodes}
    for result in results:
        result.submission = submission  # for result_url, without a join
    return {
        "uuid": str(submission.uuid),
        "job": submission.job.name,
        "submission_name": submission.submission_name,
        "status": submission.status,
        "priority": submission.priority,
        "last_message": submission.last_message,
        "created_at": _time(submission.created_at),
        "started_at": _time(submission.started_at),
        "finished_at": _time(submission.finished_at),
        "params": submission.params,
        "nodes": [
            {
                "key": node.key,
                "task": node.task.name,
                "status": node.status,
                "started_at": _time(node.started_at),
                "finished_at": _time(node.finished_at),
                "exit_code": node.exit_code,
                "attempt": node.attempt,
                "image_digest": node.image_digest,
                "message": node.message,
                "outputs": node.outputs,
                "logs": [
                    {"attempt": attempt, **streams, "url": log_url(submission, node, attempt)}
                    for attempt, streams in sizes[node.pk].items()
                ],
            }
            for node in nodes
        ],
        "results": [
            {"name": result.name, "node": keys.get(result.node_id), "url": result_url(result), "size": result.size}
            for result in results if not result.superseded
        ],
        "history": [
            {"name": result.name, "node": keys.get(result.node_id), "url": result_url(result), "size": result.size}
            for result in results if result.superseded
        ],
        "messages": [
            {"at": _time(message.created_at), "level": message.level, "node": keys.get(message.node_id), "text": message.text}
            for message in messages
        ],
    }
