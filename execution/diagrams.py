"""The as-of-now graph of a submission; drawing lives in ``jobs.diagrams``."""
from jobs.diagrams import (
    STATUS_COLOURS, DiagramError, GraphvizMissing, Source, add_futures, allowed_futures, collapse, inline, job_graph, label, marked, subjob_of, task_names, to_dot,
    to_svg,
)

from .models import Edge
from .states import NodeStatus, SubmissionStatus

__all__ = ["STATUS_COLOURS", "DiagramError", "GraphvizMissing", "allowed_futures", "collapse", "inline", "job_graph", "submission_graph", "to_dot", "to_svg"]

# Nodes in these statuses may still run, so a dynamic one may still add to the graph.
MAY_GROW = {"pending", "queued", "running", "waiting"}


def submission_graph(submission):
    """The best as-of-now picture of a submission: its nodes with their statuses, the branches a
    condition left out (``not_taken``), and wildcards for what may still come: the additions of
    dynamic nodes that have not finished and the instances of foreach steps not yet expanded."""
    from .engine import active_promises

    nodes, sources = [], []
    for node in submission.nodes.select_related("task__backend__queue_type", "step"):
        nodes.append(_picture_node(node))
        source = _source(node)
        if source is not None:
            sources.append(source)
    edges = []
    for source, target, text, color in Edge.objects.filter(submission=submission).values_list("source__key", "target__key", "label", "color"):
        edges.append({"from": source, "to": target, "kind": "edge", "label": text, **({"color": color} if color else {})})
    graph = {"nodes": nodes, "edges": edges}
    if submission.status in SubmissionStatus.TERMINAL or not sources:
        return graph
    return add_futures(graph, sources, active_promises(submission), catalogue=task_names)


def _picture_node(node):
    item = {"key": node.key, "task": node.task.name, "kind": "node", "status": node.status, "label": node.style.get("label") or label(node.key, node.task.name)}
    if node.style.get("color"):
        item["color"] = node.style["color"]
    when = node.step.when if node.step_id and node.enabled else ""
    return marked(item, when=when, not_taken=bool(when) and not_taken(node), subjob=subjob_of(node.task))


def not_taken(node):
    """Was this node skipped because its condition was false (not disabled, not expanded into instances)?"""
    return node.status == NodeStatus.SKIPPED and node.message.startswith("skipped: when")


def _source(node):
    """The ``Source`` of what this node may still add, or None."""
    if node.status not in MAY_GROW:
        return None
    fanout = bool(node.step_id and node.step.foreach) and "$INDEX" not in (node.params or {})
    if fanout and node.status == NodeStatus.PENDING:
        return Source(node.key, node.task.name, fanout=True, dynamic=node.task.dynamic)
    if node.task.dynamic:
        return Source(node.key, node.task.name)
    return None
