"""Keep what every attempt of a step wrote to stdout and stderr.

Each non-empty stream of an attempt becomes one ``NodeLog`` row and one file
in Django storage, capped at ``SLUICE_LOG_MAX_BYTES``: a bigger stream keeps
its head and its tail, cut at line ends where it can, with a marker line
saying how much was left out between them. A node's current run is its
``restarts + 1``: logs of earlier runs of a restarted node stay as history,
and go with their submission.
"""
import os

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import F

from . import statements, stored
from .models import NodeLog, log_name

__all__ = ["STREAMS", "NoSuchAttempt", "cap", "delete", "find", "keep", "last_lines", "note", "sizes", "tail"]

STREAMS = tuple(NodeLog.Stream.values)  # ("stdout", "stderr"); the first is the default
# Marks where a capped log left bytes out; its own line, so the text around it stays whole lines.
MARKER = "… {} bytes cut …\n"
# Marks a tail that starts inside a line longer than the tail itself.
PARTIAL = "…"


class NoSuchAttempt(LookupError):
    """A node has not run the attempt asked for; ``attempts`` is how many it has run."""

    def __init__(self, node, attempt):
        self.node_key, self.attempt, self.attempts = node.key, attempt, node.attempt
        runs = f"it has run {node.attempt} attempt{'s' if node.attempt != 1 else ''}" if node.attempt else "it has not run yet"
        super().__init__(f"step '{node.key}' has no attempt {attempt}; {runs}")


def keep(node, attempt, stdout_path, stderr_path):
    """Store attempt ``attempt`` of ``node``'s stdout and stderr files; return the streams stored.

    Called once when the process has ended, before its working directory
    goes. Empty (or absent) streams cost a ``stat`` each and store nothing;
    each other stream costs one file in storage and one INSERT.
    """
    stored = []
    for stream, path in zip(STREAMS, (stdout_path, stderr_path)):
        size = _size(path)
        if not size:
            continue
        content = cap(path, settings.SLUICE_LOG_MAX_BYTES, size=size)
        # Straight to storage and a plain INSERT, without a model instance or the ORM's compiler:
        # this is on the path of every step that writes anything.
        run = node.restarts + 1
        name = default_storage.save(log_name(node.submission.uuid, node.pk, run, attempt, stream), ContentFile(content))
        statements.insert(NodeLog, node_id=node.pk, run=run, attempt=attempt, stream=stream, file=name, size=len(content), original_size=size)
        stored.append(stream)
    return stored


def note(node, attempt, text):
    """Append Sluice's own ``text`` (an internal error's traceback, a takeover) to the stderr log of an attempt.

    The lines start with ``[sluice]`` so that a reader tells them from the step's own.
    """
    added = "".join(f"[sluice] {line}\n" for line in text.rstrip().splitlines()).encode()
    run = node.restarts + 1
    log = NodeLog.objects.filter(node=node, run=run, attempt=attempt, stream=NodeLog.Stream.STDERR).first()
    if log is None:
        name = default_storage.save(log_name(node.submission.uuid, node.pk, run, attempt, NodeLog.Stream.STDERR), ContentFile(added))
        NodeLog.objects.create(node=node, run=run, attempt=attempt, stream=NodeLog.Stream.STDERR, file=name, size=len(added), original_size=len(added))
        return
    with stored.reader(log.file) as handle:
        content = handle.read() + added
    old = log.file.name
    log.file.save(log_name(node.submission.uuid, node.pk, run, attempt, NodeLog.Stream.STDERR), ContentFile(content), save=False)
    NodeLog.objects.filter(pk=log.pk).update(file=log.file.name, size=len(content), original_size=log.original_size + len(added))
    if log.file.name != old:
        default_storage.delete(old)


def cap(path, limit, size=None):
    """The bytes of file ``path``, or, when it has more than ``limit``, its head and tail with a marker between.

    The head is at most ``limit // 2`` bytes and ends at a line end when its
    part of the file has one; the tail is at most the rest and starts at a
    line start likewise. The marker line says how many bytes were cut.
    """
    size = os.stat(path).st_size if size is None else size
    with open(path, "rb") as handle:
        if size <= limit:
            return handle.read()
        head = handle.read(limit // 2)
        if (end := head.rfind(b"\n")) >= 0:
            head = head[:end + 1]
        budget = limit - limit // 2
        handle.seek(size - budget - 1)  # one byte more: is the tail's first byte a line start?
        tail = handle.read()
    start = tail.find(b"\n")
    tail = tail[start + 1:] if 0 <= start < len(tail) - 1 else tail[1:]
    marker = MARKER.format(size - len(head) - len(tail)).encode()
    return head + (b"" if head.endswith(b"\n") or not head else b"\n") + marker + tail


def last_lines(data, limit):
    """The last whole lines of ``data`` (bytes) that fit in ``limit`` bytes, as stripped text.

    ``data`` is a whole stream, or at least its last ``limit + 1`` bytes: the
    extra byte tells whether the window starts at a line start. When the last
    line alone is longer than ``limit``, its end is given after a "…".
    """
    if limit <= 0:
        return ""
    if len(data) > limit:
        window = data[-(limit + 1):]
        start = window.find(b"\n")
        data = window[start + 1:] if 0 <= start < len(window) - 1 else PARTIAL.encode() + window[1:]
    return data.decode("utf-8", "replace").strip()


def find(node, attempt=None, stream=STREAMS[0]):
    """The log of ``stream`` of ``node``'s attempt ``attempt`` (default: its latest), or None when that stream was empty.

    Raises:
        NoSuchAttempt: the node has not run that attempt (in its current run).
    """
    attempt = node.attempt if attempt is None else attempt
    if not 1 <= attempt <= node.attempt:
        raise NoSuchAttempt(node, attempt)
    return NodeLog.objects.filter(node=node, run=node.restarts + 1, attempt=attempt, stream=stream).first()


def tail(log, limit=None):
    """The last whole lines, ``SLUICE_STDERR_TAIL`` bytes at most, of the stored ``log``."""
    limit = settings.SLUICE_STDERR_TAIL if limit is None else limit
    return last_lines(stored.read_from(log.file, log.size - limit - 1), limit)


def sizes(nodes):
    """For each node, the bytes each attempt of its current run wrote: ``{node id: {attempt: {stream: bytes}}}``.

    Every attempt a node has run is listed; a stream it left empty counts 0.
    One query for all of ``nodes`` (typically those of one submission, or a
    page of them: a run of consecutive ids).
    """
    nodes = list(nodes)
    if not nodes:
        return {}
    # By submission and id range rather than by a list of node ids, which can be longer than a
    # database takes; the range keeps a page of a large submission from reading every node's logs.
    submissions = {node.submission_id for node in nodes}
    ids = [node.pk for node in nodes]
    rows = NodeLog.objects.filter(
        node__submission_id__in=submissions, node_id__gte=min(ids), node_id__lte=max(ids), run=F("node__restarts") + 1,
    ).values_list("node_id", "attempt", "stream", "original_size")
    found = {}
    for node_id, attempt, stream, size in rows:
        found[node_id, attempt, stream] = size
    return {
        node.pk: {attempt: {stream: found.get((node.pk, attempt, stream), 0) for stream in STREAMS} for attempt in range(1, node.attempt + 1)}
        for node in nodes
    }


def delete(logs):
    """Delete the stored files of ``logs`` (a queryset); the rows go with them, or with a cascade after."""
    for log in logs.only("file"):
        log.file.delete(save=False)
    logs.delete()


def _size(path):
    try:
        return os.stat(path).st_size if path is not None else 0
    except FileNotFoundError:
        return 0
