"""The JSON document of a submission, shared by the API and ``runjob --json``.

The document's four lists (``nodes``, ``results``, ``history``, ``messages``)
can each hold thousands of entries (a wide ``foreach``). Each holds its first
SLUICE_DOCUMENT_LIMIT entries, with ``<list>_count`` (how many there are) and
``<list>_next`` (where the rest are served, a page at a time, or null);
``runjob --json`` asks for every entry. ``rows`` and ``entries`` serve the pages.
The answer to a new submission is built from the rows it wrote (``Rows``).
"""
from collections import namedtuple
from urllib.parse import quote

from django.conf import settings
from django.db.models import F, Func, Q, Subquery
from django.db.models.functions import Coalesce

from . import logs, statements
from .models import Submission

__all__ = ["LISTS", "MOVING_FIELDS", "Rows", "entries", "list_url", "log_url", "refresh", "result_url", "rows", "submission_document"]

# A submission's nodes, results and messages, when the caller has them already (``engine.submit``'s, as committed).
Rows = namedtuple("Rows", "nodes results messages")

# What the engine changes on a submission after creating it.
MOVING_FIELDS = ("status", "last_message", "started_at", "finished_at", "idle_since")

LISTS = ("nodes", "results", "history", "messages")
DEFAULT = object()  # submission_document's limit when none is given: SLUICE_DOCUMENT_LIMIT, read when called
# What a node's entry shows (and logs.sizes reads): a page of a thousand nodes need not decode
# every node's parameters, style and command.
NODE_FIELDS = ("submission", "key", "task", "task__name", "status", "started_at", "finished_at", "exit_code", "attempt", "image_digest", "message", "outputs")


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


def _every(submission, name):
    if name == "nodes":
        return submission.nodes.all()
    if name in ("results", "history"):
        return submission.results.filter(superseded=name == "history")
    if name == "messages":
        return submission.messages.all()
    raise ValueError(f"a submission document has no list {name!r}; its lists are {', '.join(LISTS)}")


def rows(submission, name):
    """The rows behind the list ``name`` (one of ``LISTS``) of ``submission``'s document, oldest first, as a queryset.

    Raises:
        ValueError: ``name`` is not one of ``LISTS``.
    """
    every = _every(submission, name)
    return every.select_related("task").only(*NODE_FIELDS) if name == "nodes" else every.annotate(node_key=F("node__key"))


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


def _count(queryset):
    """How many rows ``queryset`` has, as an expression: an uncorrelated subquery, which the database evaluates once."""
    return Coalesce(Subquery(queryset.order_by().annotate(n=Func("pk", function="COUNT")).values("n")), 0)


def _first(submission, name, limit):
    """The first ``limit`` rows (None: all) of the list ``name``, and how many the list has, in one statement."""
    first = rows(submission, name).annotate(total=_count(_every(submission, name)))
    first = list(first if limit is None else first[:limit])
    return first, first[0].total if first else 0


def _first_results(submission, limit):
    """The first ``limit`` (None: all) current results and superseded ones, and how many of each there are, in one statement."""
    current, superseded = _every(submission, "results"), _every(submission, "history")
    first = submission.results.annotate(node_key=F("node__key"), current_total=_count(current), superseded_total=_count(superseded))
    if limit is not None:
        first = first.filter(Q(pk__in=current.values("pk")[:limit]) | Q(pk__in=superseded.values("pk")[:limit]))
    first = list(first)
    counts = (first[0].current_total, first[0].superseded_total) if first else (0, 0)
    return [result for result in first if not result.superseded], [result for result in first if result.superseded], *counts


def _listed(document, submission, name, items, count, limit):
    """Put the list ``name`` into ``document`` with its count and the link to the rest (null when it is all there)."""
    document[name] = entries(submission, name, items)
    document[f"{name}_count"] = count
    document[f"{name}_next"] = f"{list_url(submission, name)}?limit={limit}&offset={limit}" if limit is not None and count > limit else None


def refresh(submission):
    """Re-read what the engine has changed on ``submission`` since it was loaded (``MOVING_FIELDS``), in one statement."""
    now = statements.load(Submission, submission.pk)
    if now is not None:
        for name in MOVING_FIELDS:
            setattr(submission, name, getattr(now, name))
    return submission


def _from_rows(made):
    """``_first``'s answers for each list, from rows in memory (a ``Rows``): {list: (rows, count)}."""
    keys = {node.pk: node.key for node in made.nodes}
    for item in (*made.results, *made.messages):
        item.node_key = keys.get(item.node_id)
    return {
        "nodes": made.nodes,
        "results": [result for result in made.results if not result.superseded],
        "history": [result for result in made.results if result.superseded],
        "messages": made.messages,
    }


def submission_document(submission, limit=DEFAULT, rows=None):
    """Return the status document of ``submission`` as plain JSON-ready data.

    Each list holds at most ``limit`` entries: by default SLUICE_DOCUMENT_LIMIT;
    None lists every entry (``runjob --json``). Four
    statements, whatever the submission's size: nodes with their tasks, logs
    (none while no node of the page has run an attempt), results (current and
    superseded at once), messages; each also counts its lists, and reads only
    the rows it returns. None when ``rows`` (a ``Rows``) gives the nodes,
    results and messages.
    """
    limit = settings.SLUICE_DOCUMENT_LIMIT if limit is DEFAULT else limit
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
    if rows is not None:
        for name, items in _from_rows(rows).items():
            _listed(document, submission, name, items if limit is None else items[:limit], len(items), limit)
        return document
    _listed(document, submission, "nodes", *_first(submission, "nodes", limit), limit)
    results, history, results_count, history_count = _first_results(submission, limit)
    _listed(document, submission, "results", results, results_count, limit)
    _listed(document, submission, "history", history, history_count, limit)
    _listed(document, submission, "messages", *_first(submission, "messages", limit), limit)
    return document
