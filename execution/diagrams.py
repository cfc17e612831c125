"""The as-of-now DAG of a job or a submission, as data, DOT and SVG.

``job_graph`` and ``submission_graph`` return the JSON shape of the REST
contract: ``{"nodes": [{key, task, kind, status, label}], "edges": [{from,
to, kind, label}]}``. ``to_dot`` and ``to_svg`` draw that same data, so the
picture never disagrees with the JSON.
"""
import graphviz

from jobs import dag

from .models import Edge

__all__ = ["STATUS_COLOURS", "job_graph", "submission_graph", "to_dot", "to_svg"]

STATUS_COLOURS = {
    "pending": "#e5e7eb",
    "queued": "#bfdbfe",
    "running": "#60a5fa",
    "waiting": "#fde68a",
    "succeeded": "#86efac",
    "failed": "#fca5a5",
    "skipped": "#f3f4f6",
    "cached": "#a7f3d0",
    "cancelled": "#d1d5db",
}


def job_graph(job):
    """The registration-time picture of a job: its steps and the edges they imply."""
    steps = list(job.steps.select_related("task"))
    nodes = [
        {"key": step.key, "task": step.task.name, "kind": "node", "status": "pending" if step.enabled else "skipped", "label": _label(step.key, step.task.name)}
        for step in steps
    ]
    edges = [{"from": before, "to": after, "kind": "edge", "label": ""} for before, after in dag.step_edges(job.step_specs())]
    return {"nodes": nodes, "edges": edges}


def submission_graph(submission):
    """The picture of a submission's run graph with each node's current status."""
    nodes = [
        {"key": node.key, "task": node.task.name, "kind": "node", "status": node.status, "label": _label(node.key, node.task.name)}
        for node in submission.nodes.select_related("task")
    ]
    edges = [
        {"from": source, "to": target, "kind": "edge", "label": label}
        for source, target, label in Edge.objects.filter(submission=submission).values_list("source__key", "target__key", "label")
    ]
    return {"nodes": nodes, "edges": edges}


def _label(key, task):
    return key if key == task else f"{key}\n({task})"


def to_dot(graph, name="sluice"):
    """Return the graph as Graphviz DOT source: nodes filled by status, wildcards dashed, possible edges dotted."""
    dot = graphviz.Digraph(name=name, graph_attr={"rankdir": "LR", "bgcolor": "transparent"}, node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica"})
    for node in graph["nodes"]:
        style = "rounded,dashed" if node["kind"] == "wildcard" else "rounded,filled"
        dot.node(node["key"], label=node["label"], style=style, fillcolor=STATUS_COLOURS.get(node["status"], "#ffffff"), tooltip=f"{node['key']}: {node['status']}")
    for edge in graph["edges"]:
        dot.edge(edge["from"], edge["to"], label=edge.get("label", ""), style="dotted" if edge["kind"] == "possible" else "solid")
    return dot.source


def to_svg(graph, name="sluice"):
    """Return the graph drawn as SVG by Graphviz's ``dot``.

    Raises:
        graphviz.ExecutableNotFound: Graphviz is not installed.
    """
    return graphviz.Source(to_dot(graph, name)).pipe(format="svg").decode("utf-8")
