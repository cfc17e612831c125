"""The JSON document of a submission, shared by the API and ``runjob --json``.

The document's four lists (``nodes``, ``results``, ``history``, ``messages``)
can each hold thousands of entries (a wide ``foreach``). ``submission_document``
takes a limit: each list then holds its first entries, with ``<list>_count``
(how many there are) and ``<list>_next`` (where the rest are served, a page at
a time, or null). ``rows`` and ``entries`` serve those pages.
"""
from urllib.parse import quote

from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber

from . import logs

__all__ = ["LISTS", "entries", "list_url", "log_url", "result_url", "rows", "submission_document"]

LISTS = ("nodes", "results", "history", "messages")


def result_url(result):
    return f"/api/submissions/{result.submission.uuid}/results/{result.pk}/"


def log_url(submission, node, attempt):
    """Where attempt ``attempt`` of ``node``'s stdout is served; add ``&stream=stderr`` for its stderr."""
    return f"/api/submissions/{submission.uuid}/nodes/{quote(node.key, safe='')}/log/?attempt={attempt}"


def list_url(submission, name):
    """Where the list ``name`` of ``submission``'s document is served whole, a page at a time."""
    return f"/api/submissions/{submission.uuid}/{name}/"


def _time(value):
    return value.isoformat() if value else None


def rows(submission, name):
    """The rows behind the list ``name`` (one of ``LISTS``) of ``submission``'s document, oldest first, as a queryset.

    Raises:
        ValueError: ``name`` is not one of ``LISTS``.
    """
    if name == "nodes":
        return submission.nodes.select_related("task")
    if name in ("results", "history"):
        return submission.results.filter(superseded=name == "history").annotate(node_key=F("node__key"))
    if name == "messages":
        return submission.messages.annotate(node_key=F("node__key"))
    raise ValueError(f"a submission document has no list {name!r}; its lists are {', '.join(LISTS)}")


def entries(submission, name, items):
    """The entries of the list ``name`` for ``items``, rows of ``rows(submission, name)``: one statement for nodes' logs, none otherwise."""
    if name == "nodes":
        return _node_entries(submission, items)
    if name in ("results", "history"):
        return [_result_entry(submission, result) for result in items]
    if name == "messages":
        return [{"at": _time(message.created_at), "level": message.level, "node": message.node_key, "text": message.text} for message in items]
    raise ValueError(f"a submission document has no list {name!r}; its lists are {', '.join(LISTS)}")


def _node_entries(submission, nodes):
    nodes = list(nodes)
    sizes = logs.sizes(nodes) if any(node.attempt for node in nodes) else {node.pk: {} for node in nodes}
    return [
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
    ]


def _result_entry(submission, result):
    result.submission = submission  # for result_url, without a join
    return {"name": result.name, "node": result.node_key, "url": result_url(result), "size": result.size}


def _heads(queryset, limit, by=None):
    """The first ``limit`` rows of ``queryset`` (None: all), or of each of its groups by the field ``by``.

    Each row carries ``total``, how many rows its group has. One statement: the
    database counts and ranks, so only the rows returned reach Python.
    """
    groups = [F(by)] if by else None
    queryset = queryset.annotate(total=Window(Count("pk"), partition_by=groups))
    if limit is not None:
        queryset = queryset.annotate(rank=Window(RowNumber(), partition_by=groups, order_by=F("pk").asc())).filter(rank__lte=limit)
    return list(queryset)


def _listed(document, submission, name, items, limit):
    """Put the list ``name`` into ``document`` with its count and the link to the rest (null when it is all there)."""
    count = items[0].total if items else 0
    document[name] = entries(submission, name, items)
    document[f"{name}_count"] = count
    document[f"{name}_next"] = f"{list_url(submission, name)}?limit={limit}&offset={limit}" if limit is not None and count > limit else None


def submission_document(submission, limit=None):
    """Return the status document of ``submission`` as plain JSON-ready data.

    Each list holds at most ``limit`` entries (None: all of them). Four
    statements, whatever the submission's size: nodes with their tasks, logs
    (none while no node of the page has run an attempt), results (current and
    superseded at once), messages; each also counts its list.
    """
    results = _heads(submission.results.annotate(node_key=F("node__key")), limit, by="superseded")
    document = {
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
    }
    _listed(document, submission, "nodes", _heads(rows(submission, "nodes"), limit), limit)
    _listed(document, submission, "results", [result for result in results if not result.superseded], limit)
    _listed(document, submission, "history", [result for result in results if result.superseded], limit)
    _listed(document, submission, "messages", _heads(rows(submission, "messages"), limit), limit)
    return document
