"""One thread per worker process that follows every detached run of processes the process started or took over.

A ``followed`` executor (Slurm) returns from ``start`` at once; the worker
thread hands the attempt to ``follower`` and takes its next message. Every
``SLUICE_FOLLOW_SECONDS`` the follower asks each executor about all of its
runs in one call (``poll_many``: one ``squeue``), and in one statement each
renews their leases (every ``SLUICE_LEASE_SECONDS / 3``) and reads whether
their attempts still own their nodes. It then

- stops (``cancel``) a run whose node was cancelled, or given to another
  attempt, and one that ran past its time limit;
- leaves alone a run another process took over (``adopt``: the node is still
  running with the same handle at a newer fence);
- concludes a run that ended with ``engine.conclude_followed``, the path of an
  attached run (verdict, retries, outputs, growth, caching), and sends what
  that made ready.

So hundreds of runs in flight cost one thread and one cluster query per
interval. ``adopt`` is how a run outlives its worker: the reconciler sends
"adopt node N at fence F" to the node's queue when the node's lease lapsed,
and a live worker takes the attempt over (fenced) without starting the run
again; a run that ended meanwhile is concluded, and only a run that is gone
without an exit status is lost (``reconcile`` then follows the retry policy).
"""
import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from . import dispatch, engine, executors, lifecycle, reconcile, statements, workdirs
from .models import Node
from .states import NodeStatus

log = logging.getLogger(__name__)

__all__ = ["Follower", "adopt", "follower"]


class _Followed:
    __slots__ = ("attempt", "executor", "handle", "run", "key", "workdir", "resources", "limit", "stopping", "timed_out")

    def __init__(self, attempt, executor, handle, run, key, workdir, resources, limit):
        self.attempt, self.executor, self.handle, self.run, self.key = attempt, executor, handle, run, key
        self.workdir, self.resources, self.limit = workdir, resources, limit
        self.stopping = self.timed_out = False


class Follower:
    def __init__(self):
        self._lock = threading.Lock()
        self._followed = {}  # node id -> _Followed
        self._thread = None
        self.renewed = 0.0

    def add(self, attempt, executor, handle, run=None, key=None, workdir=None, resources=None, limit=None):
        """Follow ``attempt``'s run ``handle`` until it ends; ``run`` None: it is described again when it ends."""
        if run is not None:
            workdir, resources = run.workdir, run.resources
            limit = executor.time_limit(resources, run.timeout)
        with self._lock:
            self._followed[attempt.node_id] = _Followed(attempt, executor, handle, run, key, workdir, resources, limit)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="sluice-follower", daemon=True)
                self._thread.start()

    def following(self):
        """The node ids this process follows."""
        with self._lock:
            return set(self._followed)

    def _loop(self):
        while True:
            time.sleep(settings.SLUICE_FOLLOW_SECONDS)
            with self._lock:
                if not self._followed:  # nothing left: the thread ends, and the next add starts another
                    self._thread = None
                    return
            try:
                self.beat()
            except Exception:  # a database or cluster hiccup: the next beat tries again, the lease rides it out
                log.exception("The follower's beat failed; trying again in %s s.", settings.SLUICE_FOLLOW_SECONDS)
            finally:
                close_old_connections()

    def beat(self):
        """Renew, check and poll every followed run once; conclude those that ended."""
        with self._lock:
            followed = list(self._followed.values())
        if not followed:
            return
        if time.monotonic() - self.renewed >= settings.SLUICE_LEASE_SECONDS / 3:
            lifecycle.renew([item.attempt for item in followed])
            self.renewed = time.monotonic()
        followed = self._owned(followed)
        for executor, items in _by_executor(followed).items():
            try:
                ended, elapsed = executor.poll_many(
                    {item.handle: item.workdir for item in items}, resources={item.handle: item.resources for item in items},
                    timed_out={item.handle for item in items if item.timed_out},
                )
            except executors.ExecutorError as error:
                log.warning("The follower could not reach %s runs (%s); trying again next beat.", executor.behaviour, error)
                continue
            for item in items:
                if ended.get(item.handle) is None and item.limit and not item.timed_out and elapsed.get(item.handle, 0) >= item.limit:
                    log.info("Node %s: run %s passed its time limit of %s s; cancelling it.", item.attempt.node_id, item.handle, item.limit)
                    item.timed_out = True
                    executor.cancel(item.handle)
            for item in items:
                if ended.get(item.handle) is not None:
                    self._conclude(item, ended[item.handle])

    def _owned(self, followed):
        """Drop runs taken over elsewhere, stop those whose node was cancelled or re-run; return what is still followed."""
        rows = {pk: (status, fence, handle) for pk, status, fence, handle in Node.objects.filter(
            pk__in=[item.attempt.node_id for item in followed]).values_list("pk", "status", "fence", "handle")}
        kept = []
        for item in followed:
            status, fence, handle = rows.get(item.attempt.node_id, (None, None, None))
            if status == NodeStatus.RUNNING and fence == item.attempt.fence:
                kept.append(item)
                continue
            if status == NodeStatus.RUNNING and handle == item.handle:
                log.info("Node %s (run %s) was taken over by another process; no longer following it here.", item.attempt.node_id, item.handle)
                self._forget(item)
                continue
            if not item.stopping:
                log.info("Node %s is no longer running here (%s); stopping its run %s.", item.attempt.node_id, status, item.handle)
                item.stopping = item.executor.cancel(item.handle)
            kept.append(item)  # followed until it has ended, then collected, fenced off and cleaned up
        return kept

    def _conclude(self, item, finished):
        self._forget(item)
        try:
            next_ids = engine.conclude_followed(
                item.attempt.node_id, item.attempt, item.executor, item.handle, finished, item.run, item.key, item.workdir,
            )
        except DatabaseError:
            log.exception("Node %s: its ended run %s could not be concluded; the reconciler will find the node.", item.attempt.node_id, item.handle)
            return
        dispatch.send(next_ids)

    def _forget(self, item):
        with self._lock:
            if self._followed.get(item.attempt.node_id) is item:
                del self._followed[item.attempt.node_id]


def _by_executor(followed):
    groups = {}
    for item in followed:
        groups.setdefault(item.executor, []).append(item)
    return groups


def adopt(node_id, fence):
    """Take over the followed run of node ``node_id``, whose owner at ``fence`` stopped renewing its lease.

    A run that still runs, or ended with a status, is followed from here
    without being started again (the follower concludes an ended one on its
    next beat); one that is gone without a status is lost, and the
    reconciler's rules for lost nodes apply.
    """
    node = statements.load(Node, node_id, "submission__job", "task__backend__queue_type")
    if node is None or node.status != NodeStatus.RUNNING or node.fence != fence or not node.handle:
        return False  # someone else took it, or it moved on: a duplicate message
    executor = executors.get(node.task.backend.queue_type.execution_behaviour)
    if not executor.followed:
        return False
    workdir = workdirs.path_for(node)
    resources = dict(node.task.resources or {})
    finished = executor.poll(node.handle, workdir, resources)
    if finished is not None and finished.lost:
        reconcile.lose(node, f"its worker {node.worker or '(unknown)'} stopped renewing its lease and {finished.reason}")
        workdirs.remove(workdir)
        return False
    previous = node.worker
    attempt = lifecycle.adopt(node, dispatch.WORKER_ID)
    if attempt is None:
        return False
    engine.record(
        node.submission_id,
        f"step '{node.key}' attempt {attempt.number}: worker {dispatch.WORKER_ID} took over its run {node.handle} (its worker {previous or '(unknown)'} stopped renewing its lease)",
        node=node, last=False,
    )
    limit = executor.time_limit(resources, node.task.timeout)
    follower.add(attempt, executor, node.handle, workdir=workdir, resources=resources, limit=limit)
    return True


follower = Follower()
