"""Apply a running step's control-channel operations to the run graph. Pure, no Django.

A step appends JSON objects, one per line, to the file named by
``SLUICE_CONTROL``. After it exits successfully, ``plan`` checks all its
operations in order against the graph as it stands and against every active
promise, and returns what to change; the engine applies that in one
transaction, before any successor of the step can start. One bad operation
means none is applied.

Operations (``op``):

- ``add_node`` {key, task, params?, after?, before?}: a new node of ``task``.
  ``after`` (default: the adding node) lists nodes it runs after; ``before``
  lists nodes that must now wait for it (they must not have started).
- ``add_edge`` {from, to}: ``to`` (not yet started) runs after ``from``.
- ``promise`` {kind, ...}: a promise from now on (promises only tighten).
- ``output`` {name, value}: a typed value later steps may use.
- ``style`` {node | from+to, color?, label?}: cosmetic changes to the picture. A label is drawn
  as plain text, whatever it holds; a colour is a name or ``#rrggbb`` / ``#rrggbbaa`` ("" for
  the default).
"""
import json
import re
from dataclasses import dataclass, field

from jobs import dottext
from jobs import promises as promise_defs

__all__ = ["GraphState", "OperationError", "Plan", "PromiseBroken", "parse_lines", "plan", "promise_holds"]

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
NOT_STARTED = {"pending"}
# The longest colour and label a style may set: the widths of the edge columns that store them
# (tests/test_dynamic.py checks they agree), so nothing is refused only by the database.
STYLE_LIMITS = {"color": 64, "label": 128}


class OperationError(ValueError):
    """An operation cannot be applied; the message names it."""


class PromiseBroken(ValueError):
    """An operation breaks a promise; ``promise`` is the promise, ``operation`` the op."""

    def __init__(self, promise, operation, reason):
        self.promise = promise
        self.operation = operation
        super().__init__(f"promise {describe(promise)} broken by {describe(operation)}: {reason}")


@dataclass
class GraphState:
    """The run graph as plain data: ``nodes`` maps key -> (task, status); ``edges`` is a set of pairs."""

    nodes: dict
    edges: set

    def copy(self):
        return GraphState(dict(self.nodes), set(self.edges))


@dataclass
class Plan:
    nodes: list = field(default_factory=list)  # [{"key", "task", "params"}]
    edges: list = field(default_factory=list)  # [(from, to)]
    promises: list = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    styles: list = field(default_factory=list)  # [{"node": key} or {"from", "to"}, with color/label]

    @property
    def grows(self):
        return bool(self.nodes or self.edges)


def parse_lines(text):
    """Parse control-channel text into operations (None: the file was too large to read).

    Raises:
        OperationError: a line is not a JSON object with an "op", or the file was too large.
    """
    if text is None:
        raise OperationError("the control file is larger than 4 MiB; send fewer or smaller operations")
    operations = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            operation = json.loads(line)
        except json.JSONDecodeError as error:
            raise OperationError(f"control line {number} is not JSON: {error.msg}") from None
        if not isinstance(operation, dict) or not isinstance(operation.get("op"), str):
            raise OperationError(f"control line {number} must be a JSON object with an \"op\"")
        operations.append(operation)
    return operations


def plan(state, operations, *, node, dynamic, tasks, promises):
    """Check ``operations`` sent by ``node`` and return the changes to make.

    ``dynamic`` says whether the node's task may grow the graph; ``tasks`` is
    the set of task names that exist; ``promises`` the active promises.

    Raises:
        OperationError: an operation is malformed or impossible (unknown task,
            duplicate key, a cycle, an edge into a node that has started).
        PromiseBroken: an operation breaks a promise.
    """
    state = state.copy()
    active = list(promises)
    result = Plan()
    for operation in operations:
        kind = operation["op"]
        if kind in ("add_node", "add_edge"):
            if not dynamic:
                raise PromiseBroken({"kind": "static"}, operation, f"node '{node}' runs a task that is not dynamic")
            new_nodes, new_edges = _grow(state, operation, node, tasks)
            for promise in active:
                reason = _breaks(promise, state, operation, new_nodes, new_edges)
                if reason:
                    raise PromiseBroken(promise, operation, reason)
            for key, task, params in new_nodes:
                state.nodes[key] = (task, "pending")
                result.nodes.append({"key": key, "task": task, "params": params})
            state.edges.update(new_edges)
            result.edges.extend(new_edges)
        elif kind == "promise":
            try:
                promise = promise_defs.parse_promise({k: v for k, v in operation.items() if k != "op"})
            except promise_defs.PromiseError as error:
                raise OperationError(f"{describe(operation)}: {error}") from None
            reason = _already_broken(promise, state)
            if reason:
                raise PromiseBroken(promise, operation, reason)
            active.append(promise)
            result.promises.append(promise)
        elif kind == "output":
            name = operation.get("name")
            if not isinstance(name, str) or not KEY.match(name):
                raise OperationError(f"{describe(operation)}: 'name' must be a name of letters, digits, '_', '-' or '.'")
            if "value" not in operation:
                raise OperationError(f"{describe(operation)}: 'value' is missing")
            result.outputs[name] = operation["value"]
        elif kind == "style":
            result.styles.append(_style(state, operation))
        else:
            raise OperationError(f"{describe(operation)}: unknown operation {kind!r}; expected add_node, add_edge, promise, output or style")
    return result


def _grow(state, operation, node, tasks):
    """Return (new nodes, new edges) for a growth operation, or raise OperationError."""
    if operation["op"] == "add_node":
        key, task = operation.get("key"), operation.get("task")
        if not isinstance(key, str) or not KEY.match(key):
            raise OperationError(f"{describe(operation)}: 'key' must be a name of letters, digits, '_', '-' or '.'")
        if key in state.nodes:
            raise OperationError(f"{describe(operation)}: duplicate key '{key}'")
        if task not in tasks:
            raise OperationError(f"{describe(operation)}: unknown task {task!r}")
        params = operation.get("params", {})
        if not isinstance(params, dict):
            raise OperationError(f"{describe(operation)}: 'params' must be an object")
        after = _keys(operation, "after", [node])
        before = _keys(operation, "before", [])
        edges = [(parent, key) for parent in after] + [(key, child) for child in before]
        for parent in after:
            _exists(state, parent, operation)
        for child in before:
            _exists(state, child, operation)
            _not_started(state, child, operation)
        for parent in after:
            for child in before:
                if parent == child or _reaches(state.edges, child, parent):
                    raise OperationError(f"{describe(operation)}: a cycle through '{child}' and '{parent}'")
        return [(key, task, params)], edges
    source, target = operation.get("from"), operation.get("to")
    _exists(state, source, operation)
    _exists(state, target, operation)
    _not_started(state, target, operation)
    if source == target or _reaches(state.edges, target, source):
        raise OperationError(f"{describe(operation)}: a cycle through '{source}' and '{target}'")
    return [], [] if (source, target) in state.edges else [(source, target)]


def _keys(operation, name, default):
    value = operation.get(name, default)
    if not isinstance(value, list) or not all(isinstance(key, str) for key in value):
        raise OperationError(f"{describe(operation)}: '{name}' must be a list of node keys")
    return value


def _exists(state, key, operation):
    if key not in state.nodes:
        raise OperationError(f"{describe(operation)}: no node {key!r}")


def _not_started(state, key, operation):
    if state.nodes[key][1] not in NOT_STARTED:
        raise OperationError(f"{describe(operation)}: an edge into node '{key}', which has already started ({state.nodes[key][1]})")


def _reaches(edges, start, goal):
    """Is there a path start -> ... -> goal?"""
    children = {}
    for source, target in edges:
        children.setdefault(source, []).append(target)
    seen, stack = {start}, [start]
    while stack:
        current = stack.pop()
        if current == goal:
            return True
        for child in children.get(current, ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return False


def _breaks(promise, state, operation, new_nodes, new_edges):
    """Why this growth breaks ``promise``, or None."""
    kind = promise["kind"]
    if kind == "no_new_nodes" and new_nodes:
        return "no nodes may be added"
    if kind == "no_new_edges" and new_edges:
        return "no edges may be added"
    if kind == "only_tasks":
        for _, task, _ in new_nodes:
            if task not in promise["tasks"]:
                return f"task '{task}' is not one of {', '.join(promise['tasks'])}"
    if kind == "no_edges_from":
        for source, target in new_edges:
            if source in promise["nodes"]:
                return f"edge {source} -> {target} starts at '{source}'"
    if kind == "no_edges_to":
        for source, target in new_edges:
            if target in promise["nodes"]:
                return f"edge {source} -> {target} ends at '{target}'"
    if kind == "max_nodes" and len(state.nodes) + len(new_nodes) > promise["value"]:
        return f"the graph would have {len(state.nodes) + len(new_nodes)} nodes, more than {promise['value']}"
    return None


def _already_broken(promise, state):
    """A new runtime promise must hold of the graph as it is."""
    if promise["kind"] == "max_nodes" and len(state.nodes) > promise["value"]:
        return f"the graph already has {len(state.nodes)} nodes"
    return None


def promise_holds(promise, initial, final):
    """Does ``final`` keep ``promise``, given the graph ``initial`` it was made on? (For checks and tests.)"""
    kind = promise["kind"]
    added_nodes = set(final.nodes) - set(initial.nodes)
    added_edges = final.edges - initial.edges
    if kind == "no_new_nodes":
        return not added_nodes
    if kind == "no_new_edges":
        return not added_edges
    if kind == "only_tasks":
        return all(final.nodes[key][0] in promise["tasks"] for key in added_nodes)
    if kind == "no_edges_from":
        return not any(source in promise["nodes"] for source, _ in added_edges)
    if kind == "no_edges_to":
        return not any(target in promise["nodes"] for _, target in added_edges)
    if kind == "max_nodes":
        return len(final.nodes) <= promise["value"]
    if kind == "shape":
        return shape_holds(promise["pattern"], final)
    return True


def paths(state, limit=10000):
    """Every source-to-sink path of task names, as space-separated strings (at most ``limit``).

    Raises:
        OperationError: more than ``limit`` paths.
    """
    children, has_parent = {}, set()
    for source, target in state.edges:
        children.setdefault(source, []).append(target)
        has_parent.add(target)
    found = []

    def walk(key, trail):
        task, status = state.nodes[key]
        # A skipped node (a foreach step that expanded, a branch a condition left out) did not run.
        trail = trail if status == "skipped" else trail + [task]
        if key not in children:
            found.append(" ".join(trail))
            if len(found) > limit:
                raise OperationError(f"the graph has more than {limit} source-to-sink paths; a shape promise cannot be checked")
            return
        for child in sorted(children[key]):
            walk(child, trail)

    for key in sorted(state.nodes):
        if key not in has_parent:
            walk(key, [])
    return found


def shape_holds(pattern, state):
    """Does every source-to-sink path of task names match ``pattern`` in full?"""
    compiled = re.compile(pattern)
    return all(compiled.fullmatch(path) for path in paths(state))


def broken_shape(promises, state):
    """The first shape promise the finished graph breaks, with the path that breaks it, or None."""
    for promise in promises:
        if promise["kind"] == "shape":
            compiled = re.compile(promise["pattern"])
            for path in paths(state):
                if not compiled.fullmatch(path):
                    return promise, path
    return None


def _style(state, operation):
    style = {name: operation[name] for name in STYLE_LIMITS if name in operation}
    if not style or not all(isinstance(value, str) for value in style.values()):
        raise OperationError(f"{describe(operation)}: give 'color' and/or 'label' as strings")
    for name, value in style.items():
        if len(value) > STYLE_LIMITS[name]:
            raise OperationError(f"{describe(operation)}: '{name}' is {len(value)} characters; at most {STYLE_LIMITS[name]}")
    if style.get("color") and not dottext.is_colour(style["color"]):  # "" sets the default back
        raise OperationError(f"{describe(operation)}: 'color' must be {dottext.COLOUR_RULE}, got {style['color']!r}")
    if "node" in operation:
        _exists(state, operation["node"], operation)
        return {"node": operation["node"], **style}
    source, target = operation.get("from"), operation.get("to")
    if (source, target) not in state.edges:
        raise OperationError(f"{describe(operation)}: no edge {source!r} -> {target!r}")
    return {"from": source, "to": target, **style}


def describe(item):
    """An operation or promise as compact JSON, for messages."""
    return json.dumps({key: value for key, value in item.items() if key != "by"} if isinstance(item, dict) else item, sort_keys=True, default=str)[:300]

