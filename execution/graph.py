"""Ready-set computation over a run graph, and what a ready node does. Pure functions, no database.

In the spirit of ``graphlib``: the caller holds the statuses, asks what may
start, applies it, and asks again. Nodes are keys; edges are
``(before, after)`` pairs; statuses are the node status strings.
"""
from collections import defaultdict
from dataclasses import dataclass, field

from jobs.expressions import ExpressionError

from .states import NodeStatus, SubmissionStatus

__all__ = ["EXPAND", "FAIL", "QUEUE", "SKIP", "WAIT", "Plan", "ReadyNode", "ancestors_nearest_first", "decide", "outcome", "plan"]

QUEUE, SKIP, EXPAND, WAIT, FAIL = "queue", "skip", "expand", "wait", "fail"


@dataclass(frozen=True)
class ReadyNode:
    """What decides the fate of an enabled node whose predecessors are all done."""

    key: str
    when: str = ""  # its step's condition
    foreach: dict | None = None  # its step's foreach source
    instance: bool = False  # it is one instance of a foreach step (it has an $INDEX)
    prompt: str = ""  # its task asks a person for input


def decide(node, evaluate):
    """Return ``(action, message)`` for a ready node: queue it, skip it, expand it, wait for input, or fail.

    ``evaluate(expression)`` evaluates a ``when`` condition in the
    submission's context; it is only called when the node has one. The full
    path (``engine.advance``) and the fast path (the successors of a node that
    just finished) both decide here.
    """
    if node.when:
        try:
            go = bool(evaluate(node.when))
        except ExpressionError as error:
            return FAIL, f"step '{node.key}': when {node.when!r}: {error}"
        if not go:
            return SKIP, f"skipped: when {node.when!r} is false"
    if node.foreach and not node.instance:
        return EXPAND, ""
    if node.prompt:
        return WAIT, f"step '{node.key}' is waiting for input: {node.prompt}"
    return QUEUE, ""


@dataclass
class Plan:
    ready: list = field(default_factory=list)  # pending, enabled, every predecessor done: start these
    skip: list = field(default_factory=list)  # pending, disabled, every predecessor done (or to be skipped)


def plan(statuses, edges, disabled=()):
    """Return which pending nodes may start now and which disabled ones to skip.

    A disabled node is skipped as soon as it would have been ready, and counts
    as done for the nodes after it, so a chain of disabled nodes is skipped in
    one call. Keys in ``ready`` and ``skip`` keep the order of ``statuses``.

    Raises:
        ValueError: an edge names a node that is not in ``statuses``.
    """
    predecessors = defaultdict(list)
    for before, after in edges:
        for key in (before, after):
            if key not in statuses:
                raise ValueError(f"edge {before!r} -> {after!r} names unknown node {key!r}")
        predecessors[after].append(before)
    disabled = set(disabled)
    done = {key for key, status in statuses.items() if status in NodeStatus.DONE}
    result = Plan()
    changed = True
    while changed:
        changed = False
        for key, status in statuses.items():
            if status != NodeStatus.PENDING or key in result.skip or key in result.ready:
                continue
            if all(before in done for before in predecessors[key]):
                if key in disabled:
                    result.skip.append(key)
                    done.add(key)
                    changed = True
                else:
                    result.ready.append(key)
    return result


def outcome(statuses):
    """Return the submission status the node statuses imply, or None while any node is active."""
    values = set(statuses.values())
    if values & NodeStatus.ACTIVE:
        return None
    if NodeStatus.FAILED in values:
        return SubmissionStatus.ERROR
    if NodeStatus.CANCELLED in values:
        return SubmissionStatus.CANCELLED
    return SubmissionStatus.COMPLETE


def ancestors_nearest_first(key, edges):
    """Return the ancestors of ``key``, breadth-first: parents, then grandparents..."""
    predecessors = defaultdict(list)
    for before, after in edges:
        predecessors[after].append(before)
    order, seen, frontier = [], {key}, [key]
    while frontier:
        next_frontier = []
        for node in frontier:
            for before in predecessors[node]:
                if before not in seen:
                    seen.add(before)
                    order.append(before)
                    next_frontier.append(before)
        frontier = next_frontier
    return order
