"""Derive and check the step graph of a job. Pure functions, no Django.

A job's steps either name their predecessors explicitly (``after``) or rely
on ``ordering`` alone, the seed service's model: steps with equal ordering
run in parallel and each ordering group waits for the whole previous group.
When any step of a job names ``after``, the explicit edges are the whole
truth and orderings only sort the listing.
"""
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from itertools import groupby

__all__ = ["StepSpec", "StepGraphError", "ancestors", "check_steps", "step_edges"]


@dataclass(frozen=True)
class StepSpec:
    key: str
    ordering: int = 0
    after: tuple = field(default_factory=tuple)


class StepGraphError(ValueError):
    """The steps do not form a valid graph. ``field`` names where to look."""

    def __init__(self, message, field="steps", cycle=None):
        super().__init__(message)
        self.field = field
        self.cycle = cycle


def step_edges(steps):
    """Return the runs-after edges ``[(before_key, after_key), ..]`` of ``steps``."""
    steps = list(steps)
    if any(step.after for step in steps):
        return [(before, step.key) for step in steps for before in step.after]
    edges = []
    groups = [list(group) for _, group in groupby(sorted(steps, key=lambda s: s.ordering), key=lambda s: s.ordering)]
    for previous, current in zip(groups, groups[1:]):
        edges.extend((before.key, after.key) for before in previous for after in current)
    return edges


def ancestors(key, edges):
    """Return the keys of every step that runs before ``key`` along ``edges`` (``step_edges``)."""
    before = {}
    for source, target in edges:
        before.setdefault(target, set()).add(source)
    found, frontier = set(), [key]
    while frontier:
        for source in before.get(frontier.pop(), ()):
            if source not in found:
                found.add(source)
                frontier.append(source)
    return found


def check_steps(steps):
    """Check keys are unique, ``after`` names existing steps and there is no cycle.

    Raises:
        StepGraphError: the first problem found, naming the step or the cycle.
    """
    steps = list(steps)
    seen = set()
    for step in steps:
        if not step.key:
            raise StepGraphError("every step needs a key", field="key")
        if step.key in seen:
            raise StepGraphError(f"duplicate step key '{step.key}'", field="key")
        seen.add(step.key)
    for step in steps:
        for before in step.after:
            if before == step.key:
                raise StepGraphError(f"step '{step.key}' cannot run after itself", field="after")
            if before not in seen:
                raise StepGraphError(f"step '{step.key}' runs after unknown step '{before}'", field="after")
    sorter = TopologicalSorter()
    for step in steps:
        sorter.add(step.key, *step.after)
    try:
        sorter.prepare()
    except CycleError as error:
        cycle = error.args[1]
        raise StepGraphError(f"steps form a cycle: {' -> '.join(cycle)}", field="after", cycle=cycle) from None
