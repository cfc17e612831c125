"""The as-of-now graph of a submission; drawing lives in ``jobs.diagrams``."""
from django.db.models import BooleanField, Case, When

from jobs.diagrams import (
    STATUS_COLOURS, DiagramError, GraphvizMissing, Source, add_futures, allowed_futures, collapse, inline, job_graph, label, marked, subjob_of, task_names, to_dot,
    to_svg,
)
from jobs.models import Step, Task

from .models import Edge
from .states import NodeStatus, SubmissionStatus

__all__ = ["STATUS_COLOURS", "DiagramError", "GraphvizMissing", "allowed_futures", "collapse", "inline", "job_graph", "submission_graph", "to_dot", "to_svg"]

# Nodes in these statuses may still run, so a dynamic one may still add to the graph.
MAY_GROW = {"pending", "queued", "running", "waiting"}


def submission_graph(submission):
    """The best as-of-now picture of a submission: its nodes with their statuses, the branches a
    condition left out (``not_taken``), and wildcards for what may still come: the additions of
    dynamic nodes that have not finished and the instances of foreach steps not yet expanded.

    Read as plain rows (tasks and steps once each, edges by node id), so that a submission of
    10,000 nodes is pictured in a fraction of a second.
    """
    from .engine import active_promises

    tasks = {task.pk: task for task in Task.objects.filter(nodes__submission=submission).distinct().select_related("backend__queue_type")}
    steps = {step.pk: step for step in Step.objects.filter(nodes__submission=submission).distinct()}
    rows = submission.nodes.annotate(
        skipped_by_condition=Case(When(status=NodeStatus.SKIPPED, message__startswith="skipped: when", then=True), default=False, output_field=BooleanField()),
        instance=Case(When(params__has_key="$INDEX", then=True), default=False, output_field=BooleanField()),
    ).values_list("pk", "key", "task_id", "step_id", "status", "style", "enabled", "skipped_by_condition", "instance")
    nodes, sources, keys = [], [], {}
    for pk, key, task_id, step_id, status, style, enabled, skipped_by_condition, instance in rows:
        keys[pk] = key
        task, step = tasks[task_id], steps.get(step_id)
        nodes.append(_picture_node(key, task, step, status, style, enabled, skipped_by_condition))
        source = _source(key, task, step, status, instance)
        if source is not None:
            sources.append(source)
    edges = []
    for source, target, text, color in Edge.objects.filter(submission=submission).values_list("source_id", "target_id", "label", "color"):
        edges.append({"from": keys[source], "to": keys[target], "kind": "edge", "label": text, **({"color": color} if color else {})})
    graph = {"nodes": nodes, "edges": edges}
    if submission.status in SubmissionStatus.TERMINAL or not sources:
        return graph
    return add_futures(graph, sources, active_promises(submission), catalogue=task_names)


def _picture_node(key, task, step, status, style, enabled, skipped_by_condition):
    item = {"key": key, "task": task.name, "kind": "node", "status": status, "label": style.get("label") or label(key, task.name)}
    if style.get("color"):
        item["color"] = style["color"]
    when = step.when if step is not None and enabled else ""
    return marked(item, when=when, not_taken=bool(when) and skipped_by_condition, subjob=subjob_of(task))


def not_taken(node):
    """Was this node skipped because its condition was false (not disabled, not expanded into instances)?"""
    return node.status == NodeStatus.SKIPPED and node.message.startswith("skipped: when")


def _source(key, task, step, status, instance):
    """The ``Source`` of what this node may still add, or None."""
    if status not in MAY_GROW:
        return None
    fanout = bool(step is not None and step.foreach) and not instance
    if fanout and status == NodeStatus.PENDING:
        return Source(key, task.name, fanout=True, dynamic=task.dynamic)
    if task.dynamic:
        return Source(key, task.name)
    return None
