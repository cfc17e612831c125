"""The pages under a submission's: one step with its attempts and logs, the members of a big group, confirmations.

See docs/ui.md.
"""
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse

from execution import logs, stored
from execution.models import Edge, NodeLog, Result
from execution.states import NodeStatus

from . import overview
from .views import visible_submission

__all__ = ["confirm_cancel", "confirm_restart", "node_list", "node_page"]

# Bytes of a log shown on the step page; longer logs show their last part and are downloaded whole.
LOG_SHOWN = 256 * 1024
NODES_PAGE = 50
RESTARTABLE = {"succeeded", "failed", "skipped", "cached", "cancelled"}


def node_page(request, uuid, key):
    """One step: how it ran (command, worker, times), its attempts with their logs, what it read and made."""
    submission = visible_submission(request, uuid)
    node = submission.nodes.select_related("task", "step").filter(key=key).first()
    if node is None:
        raise Http404(f"submission {uuid} has no step '{key}'")
    node.not_taken = node.status == NodeStatus.SKIPPED and node.message.startswith("skipped: when")
    context = {
        "submission": submission, "node": node,
        "attempts": _attempts(node),
        "earlier_runs": NodeLog.objects.filter(node=node, run__lt=node.restarts + 1).values("run").distinct().count(),
        "inputs": _inputs(submission, node),
        "outputs": _results(submission, Result.objects.filter(node=node, superseded=False).select_related("node")),
        "answer": overview.answers([node]).get(node.key),
        "can_control": submission.visible_to(request.user),
        "restartable": node.status in RESTARTABLE,
    }
    return render(request, "web/node.html", context)


def _attempts(node):
    """``[{number, streams: [{stream, log, text, cut}]}]`` of the node's current run, newest attempt first."""
    found = {(log.attempt, log.stream): log for log in NodeLog.objects.filter(node=node, run=node.restarts + 1)}
    attempts = []
    for attempt in range(node.attempt, 0, -1):
        streams = []
        for stream in logs.STREAMS:
            log = found.get((attempt, stream))
            streams.append({"stream": stream, "log": log, **(_text(log) if log is not None else {})})
        attempts.append({"number": attempt, "streams": streams})
    return attempts


def _text(log):
    """The log's text split at the cut marker a capped log holds: ``{"head", "marker", "tail", "partial"}``."""
    try:
        data = stored.read_from(log.file, max(log.size - LOG_SHOWN, 0))
    except FileNotFoundError:
        return {"missing": True}
    partial = log.size > LOG_SHOWN
    if partial and b"\n" in data:
        data = data[data.index(b"\n") + 1:]  # from a line start
    text = data.decode("utf-8", "replace")
    head, marker, tail = text, "", ""
    for line in text.splitlines(keepends=True):
        if line.startswith("… ") and line.rstrip("\n").endswith(" bytes cut …"):
            head, _, tail = text.partition(line)
            marker = line.strip()
            break
    return {"head": head, "marker": marker, "tail": tail, "partial": partial}


def _inputs(submission, node):
    """The results of the steps right before ``node``, or the upload for a step that comes first."""
    before = Edge.objects.filter(target=node).values_list("source_id", flat=True)
    found = Result.objects.filter(submission=submission, superseded=False).select_related("node")
    found = found.filter(node_id__in=before) if before.exists() else found.filter(node__isnull=True)
    return _results(submission, found[:200])


def _results(submission, found):
    found = list(found)
    for result in found:
        result.readable = overview.readable_name(submission, result)
    return found


def node_list(request, uuid):
    """The nodes of a group (``?by=<key that added them>&task=<task>``), or every node, a page at a time,
    optionally of one status (``?status=``)."""
    submission = visible_submission(request, uuid)
    by, task, status = (request.GET.get(name, "") for name in ("by", "task", "status"))
    group = overview.Group(by, task) if task else None
    everyone = group.members(submission.nodes.all()) if group else submission.nodes.all()
    members = everyone.filter(status=status) if status in NodeStatus.values else everyone
    page = Paginator(members.select_related("task").order_by("id"), NODES_PAGE).get_page(request.GET.get("page"))
    counts = {row["status"]: row["n"] for row in everyone.values("status").annotate(n=Count("id")).order_by("status")}
    results = {}
    for result in Result.objects.filter(node__in=list(page.object_list), superseded=False).select_related("node"):
        result.readable = overview.readable_name(submission, result)
        results.setdefault(result.node_id, []).append(result)
    for node in page.object_list:
        node.shown_results = results.get(node.pk, [])
    query = group.query if group else ""
    context = {"submission": submission, "group": group, "page": page, "status": status, "counts": counts, "query": query}
    return render(request, "web/nodes.html", context)


def confirm_cancel(request, uuid):
    """Ask before cancelling; the form posts to the cancel control. Also the body of live.js's dialog."""
    submission = visible_submission(request, uuid)
    return _confirm(request, submission, {
        "question": f"Cancel {submission.job.name} {submission.uuid}?",
        "explain": "Running steps are stopped and nothing more starts. This cannot be undone; restart a step afterwards to run it again.",
        "action": reverse("web:cancel", args=[submission.uuid]), "button": "Cancel the submission", "danger": True,
    })


def confirm_restart(request, uuid, key):
    """Ask before restarting a step and everything after it."""
    submission = visible_submission(request, uuid)
    if not submission.nodes.filter(key=key).exists():
        raise Http404(f"submission {uuid} has no step '{key}'")
    return _confirm(request, submission, {
        "question": f"Restart step {key}?",
        "explain": "It runs again, and so does every step after it. Their results so far are kept as history.",
        "action": reverse("web:restart", args=[submission.uuid, key]), "button": f"Restart {key}", "danger": False,
    })


def _confirm(request, submission, ask):
    fragment = request.headers.get("X-Requested-With") == "fetch"
    return render(request, "web/_confirm.html" if fragment else "web/confirm.html", {"submission": submission, "fragment": fragment, **ask})
