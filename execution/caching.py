"""Run caching: a cacheable task's results are reused when its definition, inputs and parameters repeat.

Reuse stays within one submitter (a user; for anonymous submissions, one
address) unless SLUICE_CACHE_SHARED is on: a cached node tells its submitter
that somebody ran the same thing before, and with what result, which is
another user's business.
"""
import hashlib
import json

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError

from . import stored
from .models import CacheEntry, Result
from .states import NodeStatus


def key_for(node, run, inputs):
    """A digest of everything that decides what the node's process produces."""
    digest = hashlib.sha256()
    for result in inputs:
        with stored.reader(result.file) as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(result.ending.encode())
    task = node.task
    definition = {
        "task": task.name, "behaviour": run.behaviour, "executable": task.executable, "in": task.in_glob, "out": task.out_glob,
        "stdout": task.stdout_glob, "params": [[spec.flag, spec.bool_valued, spec.spacing, spec.switchless, value] for spec, value in run.params],
        "environment": sorted(run.environment.items()), "item": run.item, "index": run.index, "value": run.value,
        "scope": scope(node.submission),
    }
    if run.image:  # only for container tasks, so that other tasks' keys stay as they were
        definition.update(image=run.image, container_options=run.container_options, resources=run.resources)
    if run.compat:  # A_A's semantics stage other files and run code differently: never reuse across them
        definition["compat"] = run.compat
    digest.update(json.dumps(definition, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def scope(submission):
    """Whose runs a submission may reuse: everyone's (SLUICE_CACHE_SHARED), else its submitter's own."""
    if settings.SLUICE_CACHE_SHARED:
        return "shared"
    return f"user:{submission.user_id}" if submission.user_id is not None else f"ip:{submission.ip}"


def find(node, key):
    """The node of an earlier successful run with ``key`` whose results this node may reuse, or None."""
    entry = CacheEntry.objects.filter(key=key, node__status__in=[NodeStatus.SUCCEEDED, NodeStatus.CACHED]).select_related("node__submission").first()
    if entry is None or entry.node_id == node.pk:
        return None
    return entry.node


def copy_results(source, node):
    """Copy ``source``'s current results to ``node``, renamed for its submission."""
    for result in Result.objects.filter(node=source, superseded=False):
        copy = Result(submission_id=node.submission_id, node=node, name=result.name.replace(source.submission.file_id, node.submission.file_id), ending=result.ending, size=result.size)
        with stored.reader(result.file) as handle:
            copy.file.save(copy.name, File(handle), save=True)


def remember(key, node):
    """Record a successful run's results under ``key`` (the first run to finish wins)."""
    try:
        CacheEntry.objects.get_or_create(key=key, defaults={"node": node})
    except IntegrityError:  # another run stored the same key at the same moment
        pass


__all__ = ["copy_results", "find", "key_for", "remember", "scope"]
