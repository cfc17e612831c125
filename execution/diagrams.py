"""The as-of-now graph of a submission; drawing lives in ``jobs.diagrams``."""
from jobs.diagrams import STATUS_COLOURS, collapse, job_graph, label, to_dot, to_svg

from .models import Edge

__all__ = ["STATUS_COLOURS", "collapse", "job_graph", "submission_graph", "to_dot", "to_svg"]


def submission_graph(submission):
    """The picture of a submission's run graph with each node's current status."""
    nodes = [
        {"key": node.key, "task": node.task.name, "kind": "node", "status": node.status, "label": label(node.key, node.task.name)}
        for node in submission.nodes.select_related("task")
    ]
    edges = [
        {"from": source, "to": target, "kind": "edge", "label": text}
        for source, target, text in Edge.objects.filter(submission=submission).values_list("source__key", "target__key", "label")
    ]
    return {"nodes": nodes, "edges": edges}
