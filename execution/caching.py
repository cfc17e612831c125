"""Run caching: a cacheable task's results are reused when its definition, inputs and parameters repeat."""
import hashlib
import json

from django.core.files import File
from django.db import IntegrityError

from .models import CacheEntry, Message, Result
from .states import NodeStatus, move_node


def key_for(node, run, inputs):
    """A digest of everything that decides what the node's process produces."""
    digest = hashlib.sha256()
    for result in inputs:
        with result.file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(result.ending.encode())
    task = node.task
    definition = {
        "task": task.name, "behaviour": run.behaviour, "executable": task.executable, "in": task.in_glob, "out": task.out_glob,
        "stdout": task.stdout_glob, "params": [[spec.flag, spec.bool_valued, spec.spacing, spec.switchless, value] for spec, value in run.params],
        "environment": sorted(run.environment.items()), "item": run.item, "index": run.index, "value": run.value,
    }
    digest.update(json.dumps(definition, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def reuse(node, key):
    """Give the node the results of an earlier run with the same key; return True on a hit."""
    entry = CacheEntry.objects.filter(key=key, node__status__in=[NodeStatus.SUCCEEDED, NodeStatus.CACHED]).select_related("node__submission").first()
    if entry is None or entry.node_id == node.pk:
        return False
    source = entry.node
    for result in Result.objects.filter(node=source, superseded=False):
        copy = Result(submission_id=node.submission_id, node=node, name=result.name.replace(source.submission.file_id, node.submission.file_id), ending=result.ending, size=result.size)
        with result.file.open("rb") as handle:
            copy.file.save(copy.name, File(handle), save=True)
    text = f"reused the results of step '{source.key}' in submission {source.submission.uuid} (cache)"
    if not move_node(node.pk, NodeStatus.RUNNING, NodeStatus.CACHED, message=text, outputs=source.outputs):
        return True
    Message.objects.create(submission_id=node.submission_id, node=node, text=f"step '{node.key}' {text}")
    return True


def remember(key, node):
    """Record a successful run's results under ``key`` (the first run to finish wins)."""
    try:
        CacheEntry.objects.get_or_create(key=key, defaults={"node": node})
    except IntegrityError:  # another run stored the same key at the same moment
        pass


__all__ = ["key_for", "remember", "reuse"]
