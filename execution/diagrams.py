"""The as-of-now graph of a submission; drawing lives in ``jobs.diagrams``."""
from jobs.diagrams import STATUS_COLOURS, DiagramError, GraphvizMissing, add_wildcards, collapse, inline, job_graph, label, to_dot, to_svg

from .models import Edge
from .states import SubmissionStatus

__all__ = ["STATUS_COLOURS", "DiagramError", "GraphvizMissing", "collapse", "inline", "job_graph", "submission_graph", "to_dot", "to_svg"]

# Nodes in these statuses may still run, so a dynamic one may still add to the graph.
MAY_GROW = {"pending", "queued", "running", "waiting"}


def submission_graph(submission):
    """The best as-of-now picture of a submission: its nodes with their statuses, and wildcards
    for what dynamic nodes that have not finished may still add."""
    from .engine import active_promises

    nodes, growing = [], []
    for node in submission.nodes.select_related("task"):
        item = {"key": node.key, "task": node.task.name, "kind": "node", "status": node.status, "label": node.style.get("label") or label(node.key, node.task.name)}
        if node.style.get("color"):
            item["color"] = node.style["color"]
        nodes.append(item)
        if node.task.dynamic and node.status in MAY_GROW:
            growing.append(node.key)
    edges = []
    for source, target, text, color in Edge.objects.filter(submission=submission).values_list("source__key", "target__key", "label", "color"):
        edges.append({"from": source, "to": target, "kind": "edge", "label": text, **({"color": color} if color else {})})
    graph = {"nodes": nodes, "edges": edges}
    if submission.status in SubmissionStatus.TERMINAL or not growing:
        return graph
    return add_wildcards(graph, growing, active_promises(submission))
