"""``foreach``: expand a step into one instance per item, as a graph mutation.

When a step with ``foreach`` becomes ready, it does not run: it is replaced by
instances ``<key>_0 .. <key>_{N-1}`` of its task, each after the step and
before the step's successors, each seeing ``$ITEM`` and ``$INDEX``. The new
nodes are added through the same checked mutation as a dynamic step's
``add_node``, so the job's promises (``max_nodes``…) hold. A later step whose
in-glob has a gathering ending (``*.part``) reads every instance's file.

Sources: ``{"lines": ".txt"}`` the lines of the nearest earlier ``.txt`` file;
``{"files": ".part"}`` every earlier ``.part`` file (each instance reads its
own as ``<ID>.part``); ``{"output": "step.name"}`` a JSON list a step sent as
an output; ``{"param": "task_alias"}`` a list parameter (a JSON list, or
comma-separated text).
"""
import json

from django.conf import settings

from . import graph, mutations, stored
from .models import Node, Result
from .states import NodeStatus

__all__ = ["ForeachError", "expand", "items"]


class ForeachError(ValueError):
    """The items of a foreach cannot be found or are not a list."""


def expand(node, edges, found, state, promises):
    """Plan the instances of ``node`` for the ``found`` items (``items``) on graph ``state``; return the checked plan.

    The caller claims the step first and applies the plan in the same transaction (``engine._expand``).

    Raises:
        ForeachError, mutations.OperationError, mutations.PromiseBroken
    """
    limit = settings.SLUICE_MAX_FOREACH
    if len(found) > limit:
        raise ForeachError(f"{len(found)} items is more than SLUICE_MAX_FOREACH ({limit})")
    successors = [after for before, after in edges if before == node.key]
    operations = []
    for index, (item, result_id) in enumerate(found):
        params = {"$ITEM": item, "$INDEX": index, **({"$RESULT": result_id} if result_id else {})}
        operations.append({"op": "add_node", "key": f"{node.key}_{index}", "task": node.task.name, "params": params, "after": [node.key], "before": successors})
    dynamic_tasks = {node.task.name} if node.task.dynamic else set()
    return mutations.plan(
        state, operations, node=node.key, dynamic=True, tasks={node.task.name}, promises=promises, dynamic_tasks=dynamic_tasks
    )


def items(submission, node, edges):
    """The ``(item, result id or None)`` pairs a foreach step expands over."""
    source, value = next(iter(node.step.foreach.items()))
    if source == "param":
        raw = submission.params.get(value)
        if raw is None:
            raise ForeachError(f"there is no parameter '{value}' with a value")
        return [(item, None) for item in _as_list(raw)]
    if source == "output":
        key, _, name = value.partition(".")
        outputs = Node.objects.filter(submission=submission, key=key).values_list("outputs", flat=True).first()
        if outputs is None or name not in outputs:
            raise ForeachError(f"no output '{value}': step '{key}' has not sent it")
        if not isinstance(outputs[name], list):
            raise ForeachError(f"output '{value}' is not a list")
        return [(item, None) for item in outputs[name]]
    ancestors = graph.ancestors_nearest_first(node.key, edges)
    results = [
        result for result in Result.objects.filter(submission=submission, ending=value, superseded=False).select_related("node")
        if result.node_id is None or (result.node.key in ancestors and result.node.status in NodeStatus.DONE)
    ]
    results.sort(key=lambda r: (ancestors.index(r.node.key) if r.node_id else len(ancestors), r.pk))
    if source == "files":
        return [(result.name, result.pk) for result in results if result.node_id]
    if not results:
        raise ForeachError(f"no earlier step made a '{value}' file to read lines from")
    with stored.reader(results[0].file) as handle:
        lines = handle.read().decode("utf-8", "replace").splitlines()
    return [(line.strip(), None) for line in lines if line.strip()]


def _as_list(raw):
    if isinstance(raw, list):
        return raw
    text = str(raw).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            raise ForeachError(f"{text[:60]!r} is not a JSON list") from None
        if isinstance(parsed, list):
            return parsed
    return [part.strip() for part in text.split(",") if part.strip()]
