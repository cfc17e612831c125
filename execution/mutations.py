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

from jobs import dottext, shapes
from jobs import promises as promise_defs

__all__ = ["GraphState", "OperationError", "Plan", "PromiseBroken", "future_broken", "parse_lines", "plan", "promise_holds"]

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
NOT_STARTED = {"pending"}
UNFINISHED = {"pending", "queued", "running", "waiting"}
# Kinds about what the graph as a whole must look like, judged on every possible completion of it.
FUTURE_KINDS = {"shape", "component"}
# How many distinct automaton configurations one node may collect before the early check gives up
# (and leaves the promise to the end check): a bound on the work, never a reason to refuse.
CONFIG_LIMIT = 2000
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
    """The run graph as plain data: ``nodes`` maps key -> (task, status); ``edges`` is a set of pairs.

    ``growing`` holds the keys of nodes that may still add nodes and edges (dynamic
    nodes not finished, foreach steps not expanded); None means "every unfinished
    node may", the cautious guess. ``optional`` holds pending nodes that may yet be
    skipped (a ``when``, disabled, a foreach step), and so may drop out of paths.
    """

    nodes: dict
    edges: set
    growing: set | None = None
    optional: set = field(default_factory=set)

    def copy(self):
        growing = None if self.growing is None else set(self.growing)
        return GraphState(dict(self.nodes), set(self.edges), growing, set(self.optional))

    def growers(self):
        """The keys of nodes that may still grow the graph."""
        if self.growing is None:
            return {key for key, (_, status) in self.nodes.items() if status in UNFINISHED}
        return set(self.growing)


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


def plan(state, operations, *, node, dynamic, tasks, promises, dynamic_tasks=None):
    """Check ``operations`` sent by ``node`` and return the changes to make.

    ``dynamic`` says whether the node's task may grow the graph; ``tasks`` is
    the set of task names that exist; ``dynamic_tasks`` those of them whose
    nodes may grow the graph in turn (None: assume any may); ``promises`` the
    active promises. The sender's operations are all here, so ``node`` counts
    as a node that will grow the graph no further.

    Every operation is checked against every promise as it comes. ``shape`` and
    ``component`` promises are judged on the graph the whole step leaves (its
    operations are applied together, never one by one): refused when no
    completion of that graph can keep them, naming the operation from which on
    none could.

    Raises:
        OperationError: an operation is malformed or impossible (unknown task,
            duplicate key, a cycle, an edge into a node that has started).
        PromiseBroken: an operation breaks a promise.
    """
    state = state.copy()
    state.growing = state.growers() - {node}
    active = [(promise, -1, None) for promise in promises]  # (promise, index and operation that made it)
    grown = []  # (index, operation, new node keys, new edges)
    children = _children(state.edges)  # kept up to date below: a fan-out's N additions cost O(N), not O(N²)
    result = Plan()
    for index, operation in enumerate(operations):
        kind = operation["op"]
        if kind in ("add_node", "add_edge"):
            if not dynamic:
                raise PromiseBroken({"kind": "static"}, operation, f"node '{node}' runs a task that is not dynamic")
            new_nodes, new_edges = _grow(state, operation, node, tasks, children)
            for promise, _, _ in active:
                reason = _breaks(promise, state, operation, new_nodes, new_edges)
                if reason:
                    raise PromiseBroken(promise, operation, reason)
            for key, task, params in new_nodes:
                state.nodes[key] = (task, "pending")
                if dynamic_tasks is None or task in dynamic_tasks:
                    state.growing.add(key)
                result.nodes.append({"key": key, "task": task, "params": params})
            added = [edge for edge in new_edges if edge not in state.edges]
            state.edges.update(new_edges)
            for source, target in added:
                children.setdefault(source, []).append(target)
            result.edges.extend(new_edges)
            grown.append((index, operation, [key for key, _, _ in new_nodes], added))
        elif kind == "promise":
            try:
                promise = promise_defs.parse_promise({k: v for k, v in operation.items() if k != "op"})
            except promise_defs.PromiseError as error:
                raise OperationError(f"{describe(operation)}: {error}") from None
            if promise["kind"] == "component":
                for end in ("from", "to"):
                    _exists(state, promise[end], operation)
                if promise["from"] == promise["to"]:
                    raise OperationError(f"{describe(operation)}: a component lies between two different nodes")
            reason = _already_broken(promise, state)
            if reason:
                raise PromiseBroken(promise, operation, reason)
            active.append((promise, index, operation))
            result.promises.append(promise)
        elif kind == "output":
            name = operation.get("name")
            if not isinstance(name, str) or not KEY.match(name):
                raise OperationError(f"{describe(operation)}: 'name' must be a name of letters, digits, '_', '-' or '.'")
            if "value" not in operation:
                raise OperationError(f"{describe(operation)}: 'value' is missing")
            result.outputs[name] = operation["value"]
        elif kind == "style":
            style = _style(state, operation)
            for promise, _, _ in active:
                if promise["kind"] == "fixed_style" and style.get("node") in promise["nodes"]:
                    raise PromiseBroken(promise, operation, f"node '{style['node']}' keeps its colour and label")
            result.styles.append(style)
        else:
            raise OperationError(f"{describe(operation)}: unknown operation {kind!r}; expected add_node, add_edge, promise, output or style")
    if grown or any(made is not None for _, _, made in active):
        _check_future(state, active, grown)
    return result


def _check_future(state, active, grown):
    """Refuse the step if some shape or component promise can no longer be kept.

    Judged on the graph the whole step leaves, so that a step may promise a shape
    and then grow into it. The culprit named is the earliest operation after which
    the graph stays beyond saving: the growth is rolled back one operation at a
    time from the end, back to where the promise was made; a promise the step made
    is to blame itself only when no growth follows it.
    """
    for promise, since, made in active:
        if promise["kind"] not in FUTURE_KINDS or (made is None and not grown):
            continue  # an earlier promise on a graph this step does not change: judged when it last changed
        reason = future_broken(promise, state)
        if not reason:
            continue
        current, culprit = state.copy(), made
        for index, operation, keys, edges in reversed(grown):
            if index < since:
                break
            for key in keys:
                current.nodes.pop(key)
                current.growing.discard(key)
            current.edges.difference_update(edges)
            culprit = operation
            if not future_broken(promise, current):
                break
        raise PromiseBroken(promise, culprit, reason)

def _grow(state, operation, node, tasks, children):
    """Return (new nodes, new edges) for a growth operation, or raise OperationError.

    ``children`` maps each node key to the targets of its edges in ``state``.
    """
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
                if parent == child or _reaches(children, child, parent):
                    raise OperationError(f"{describe(operation)}: a cycle through '{child}' and '{parent}'")
        return [(key, task, params)], edges
    source, target = operation.get("from"), operation.get("to")
    _exists(state, source, operation)
    _exists(state, target, operation)
    _not_started(state, target, operation)
    if source == target or _reaches(children, target, source):
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


def _children(edges):
    children = {}
    for source, target in edges:
        children.setdefault(source, []).append(target)
    return children


def _reaches(children, start, goal):
    """Is there a path start -> ... -> goal? (``children`` as ``_children`` makes it.)"""
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
    if kind == "only_edges":
        allowed = {tuple(pair) for pair in promise["edges"]}
        for source, target in new_edges:
            pair = (_task(state, new_nodes, source), _task(state, new_nodes, target))
            if pair not in allowed:
                return f"edge {source} -> {target} joins tasks {pair[0]} -> {pair[1]}, not one of the promised pairs"
    return None


def _task(state, new_nodes, key):
    return next((task for new, task, _ in new_nodes if new == key), None) or state.nodes[key][0]


def _already_broken(promise, state):
    """Why a new runtime promise cannot be made on the graph as it is, or None.

    Promises about growth (no_new_*, only_*, no_edges_*, fixed_style) speak of what
    is added from now on, so edges and nodes already there never break them: a
    promise of "no more edges into c" is accepted when c has some. A node count
    must already hold; a shape or component must still be possible once the step's
    operations are all applied.
    """
    if promise["kind"] == "max_nodes" and len(state.nodes) > promise["value"]:
        return f"the graph already has {len(state.nodes)} nodes"
    return None  # a shape or component is judged on the graph the whole step leaves (_check_future)


def future_broken(promise, state):
    """Why no completion of ``state`` can keep a shape or component ``promise``, or None.

    A completion is any graph the run may still reach: existing nodes and edges
    stay; only the nodes in ``state.growers()`` (and the nodes they add) add more;
    new edges may leave any node but enter only pending ones; nodes in
    ``state.optional`` may still be skipped, and skipped nodes are left out of
    paths. Each path of the graph as it stands lies inside some path of any
    completion, so a path that no completion of itself can match dooms the
    promise. Anything the automaton cannot read, or too much work, gives None:
    the check at the end decides then.
    """
    if promise["kind"] == "shape":
        shape = shapes.compile(promise["pattern"])
        return _doomed_shape(shape, state) if shape else None
    shape = shapes.compile(promise_defs.alternatives_pattern(promise["alternatives"]))
    return _doomed_component(shape, state, promise["from"], promise["to"]) if shape else None


def _doomed_shape(shape, state):
    growing = bool(state.growers())
    children, parents = _adjacency(state)
    sources = [key for key in state.nodes if not parents.get(key)]

    def start(key):
        return shapes.begin(shape, open_start=growing and state.nodes[key][1] in NOT_STARTED)

    reached = _propagate(shape, state, {key: start(key) for key in sources}, children, set(state.nodes))
    if reached is None:
        return None
    for key, found in reached.items():
        for configs, trail in found.items():
            if not configs:
                return f"no completion of the graph can match it: no path that begins '{' '.join(trail)}' can match"
            if not children.get(key) and not shapes.accepts(shape, configs, open_end=growing):
                return f"no completion of the graph can match it: path '{' '.join(trail)}' does not match"
    return None


def _doomed_component(shape, state, first, last):
    if first not in state.nodes or last not in state.nodes or first == last:
        return None
    children, parents = _adjacency(state)
    between = _descendants(children, first) & _descendants(parents, last)
    if last not in _descendants(children, first):
        return None
    reached = _propagate(shape, state, {}, children, between, first=(first, shapes.begin(shape)))
    if reached is None:
        return None
    for key, found in reached.items():
        for configs, trail in found.items():
            if not configs:
                return f"no completion of the graph can match it between '{first}' and '{last}': no path that begins '{' '.join(trail)}' can"
            if last in children.get(key, ()) and not shapes.accepts(shape, configs):
                return f"no completion of the graph can match it between '{first}' and '{last}': '{' '.join(trail)}' is no alternative"
    return None


def _propagate(shape, state, starts, children, within, first=None):
    """Feed every path through the automaton, node by node, in topological order.

    Returns ``{key: {configurations: an example trail}}`` for the nodes in ``within``
    (each distinct set of configurations once, with one path of task names that
    reached it), or None when a node collects more than ``CONFIG_LIMIT`` of them.
    With ``first`` = (key, configurations), paths start after that node instead.
    """
    incoming = {key: {configs: ()} for key, configs in starts.items()}
    if first is not None:
        for child in children.get(first[0], ()):
            if child in within:
                incoming.setdefault(child, {})[first[1]] = ()
    reached = {}
    for key in _topological(state, children, within):
        task, status = state.nodes[key]
        for configs, trail in incoming.get(key, {}).items():
            if status == "skipped":
                after, path = configs, trail
            else:
                after, path = shapes.feed(shape, configs, task, optional=key in state.optional), trail + (task,)
            reached.setdefault(key, {}).setdefault(after, path)
            if not after:
                return {key: {after: path}}
            for child in children.get(key, ()):
                if child in within:
                    bucket = incoming.setdefault(child, {})
                    bucket.setdefault(after, path)
                    if len(bucket) > CONFIG_LIMIT:
                        return None
    return reached


def _adjacency(state):
    children, parents = {}, {}
    for source, target in state.edges:
        children.setdefault(source, set()).add(target)
        parents.setdefault(target, set()).add(source)
    return children, parents


def _descendants(links, start):
    seen, stack = set(), [start]
    while stack:
        for following in links.get(stack.pop(), ()):
            if following not in seen:
                seen.add(following)
                stack.append(following)
    return seen


def _topological(state, children, within):
    """The keys in ``within`` in an order where every node comes after its parents."""
    indegree = {key: 0 for key in within}
    for key in within:
        for child in children.get(key, ()):
            if child in indegree:
                indegree[child] += 1
    ready = sorted(key for key, count in indegree.items() if count == 0)
    order = []
    while ready:
        key = ready.pop()
        order.append(key)
        for child in sorted(children.get(key, ())):
            if child in indegree:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
    return order


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
    if kind == "only_edges":
        allowed = {tuple(pair) for pair in promise["edges"]}
        return all((final.nodes[source][0], final.nodes[target][0]) in allowed for source, target in added_edges)
    if kind in FUTURE_KINDS:
        return broken_at_end(promise, final) is None
    return True


def paths(state, limit=10000, start=None, end=None):
    """Every source-to-sink path of task names, as space-separated strings (at most ``limit``).

    With ``start`` and ``end`` (node keys): every path from ``start`` to ``end``
    through at least one other node, written without those two (a direct edge
    ``start -> end`` only orders them, and is no path through the region between).

    Raises:
        OperationError: more than ``limit`` paths.
    """
    children, has_parent = {}, set()
    for source, target in state.edges:
        children.setdefault(source, []).append(target)
        has_parent.add(target)
    found = []

    def walk(key, trail, depth=0):
        if key == end:
            if depth > 1:
                found.append(" ".join(trail))
        elif end is None and key not in children:
            found.append(" ".join(trail + _read(state, key)))
        else:
            for child in sorted(children.get(key, ())):
                walk(child, trail + _read(state, key) if key != start else trail, depth + 1)
        if len(found) > limit:
            where = f"paths from '{start}' to '{end}'; a component" if start is not None else "source-to-sink paths; a shape"
            raise OperationError(f"the graph has more than {limit} {where} promise cannot be checked")

    if start is not None:
        if start in state.nodes and end in state.nodes:
            walk(start, [])
        return found
    for key in sorted(state.nodes):
        if key not in has_parent:
            walk(key, [])
    return found


def _read(state, key):
    """A node's part of a path: its task name, or nothing for a skipped node (it did not run)."""
    task, status = state.nodes[key]
    return [] if status == "skipped" else [task]


def shape_holds(pattern, state):
    """Does every source-to-sink path of task names match ``pattern`` in full?"""
    compiled = re.compile(pattern)
    return all(compiled.fullmatch(path) for path in paths(state))


def broken_at_end(promise, state):
    """Why the finished graph ``state`` breaks a shape or component ``promise``, or None.

    Raises:
        OperationError: too many paths to check.
    """
    if promise["kind"] == "shape":
        compiled = re.compile(promise["pattern"])
        for path in paths(state):
            if not compiled.fullmatch(path):
                return f"path '{path}' does not match"
        return None
    compiled = re.compile(promise_defs.alternatives_pattern(promise["alternatives"]))
    for path in paths(state, start=promise["from"], end=promise["to"]):
        if not compiled.fullmatch(path):
            return f"between '{promise['from']}' and '{promise['to']}', path '{path}' matches no alternative"
    return None


def broken_shape(promises, state):
    """The first shape or component promise the finished graph breaks, with the reason, or None."""
    for promise in promises:
        if promise["kind"] in FUTURE_KINDS:
            reason = broken_at_end(promise, state)
            if reason:
                return promise, reason
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

