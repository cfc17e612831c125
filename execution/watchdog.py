"""One thread per worker process that watches every attempt the process is running.

Each beat (``SLUICE_HEARTBEAT_SECONDS``) it reads the status and fence of
those nodes in one query and stops the run of any attempt that no longer
owns its node: a cancel (the node is not ``running``), or a takeover (the
reconciler gave the node to another worker, so its fence moved on — even if
it is ``running`` again). Every ``SLUICE_LEASE_SECONDS / 3`` it renews the
leases, each conditional on its attempt's fence. Runs are stopped through
their executor, so this module never signals a process itself. A step costs
the hot path nothing but two dictionary writes, however many steps the
process runs at once.
"""
import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from . import lifecycle
from .models import Node
from .states import NodeStatus

log = logging.getLogger(__name__)

__all__ = ["Watchdog", "watchdog"]


class _Watched:
    __slots__ = ("attempt", "executor", "handle", "recorded")

    def __init__(self, attempt, executor):
        self.attempt, self.executor, self.handle, self.recorded = attempt, executor, None, False


class Watchdog:
    def __init__(self):
        self._lock = threading.Lock()
        self._watched = {}  # node id -> _Watched
        self._thread = None

    def add(self, attempt, executor):
        with self._lock:
            self._watched[attempt.node_id] = _Watched(attempt, executor)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sluice-watchdog", daemon=True)
                self._thread.start()

    def started(self, attempt, handle):
        """The attempt's run exists: remember its handle (written to the node on the next beat)."""
        with self._lock:
            watched = self._watched.get(attempt.node_id)
            if watched is not None and watched.attempt == attempt:
                watched.handle = handle

    def handle_of(self, node_id):
        """The handle of the run this process has for a node, or None."""
        with self._lock:
            watched = self._watched.get(node_id)
            return watched.handle if watched else None

    def remove(self, attempt):
        with self._lock:
            watched = self._watched.get(attempt.node_id)
            if watched is not None and watched.attempt == attempt:
                del self._watched[attempt.node_id]

    def _run(self):
        renewed = time.monotonic()
        while True:
            time.sleep(settings.SLUICE_HEARTBEAT_SECONDS)
            with self._lock:
                watched = list(self._watched.values())
            if not watched:
                continue
            try:
                renew = time.monotonic() - renewed >= settings.SLUICE_LEASE_SECONDS / 3
                self.beat(watched, renew)
                if renew:
                    renewed = time.monotonic()
            except DatabaseError:  # the next beat tries again; the lease is long enough to ride it out
                log.exception("Watchdog beat failed for nodes %s.", sorted(w.attempt.node_id for w in watched))
            finally:
                close_old_connections()

    def beat(self, watched, renew):
        """Record new handles, renew leases (when ``renew``), and stop the runs of attempts that lost their node."""
        for item in watched:
            if item.handle and not item.recorded:
                lifecycle.record_handle(item.attempt, item.handle)
                item.recorded = True
        if renew:
            lifecycle.renew([item.attempt for item in watched])
        rows = dict((pk, (status, attempt, fence)) for pk, status, attempt, fence in Node.objects.filter(
            pk__in=[item.attempt.node_id for item in watched]).values_list("pk", "status", "attempt", "fence"))
        for item in watched:
            now = rows.get(item.attempt.node_id)
            if now is not None and now[0] == NodeStatus.RUNNING and now[2] == item.attempt.fence:
                continue
            if not item.handle:
                continue  # not started yet: the attempt finds out when it writes
            if now is not None and now[2] != item.attempt.fence:
                log.warning("Node %s attempt %s was taken over by attempt %s; stopping its run %s.", item.attempt.node_id, item.attempt.number, now[1], item.handle)
            else:
                log.info("Node %s is no longer running here (%s); stopping its run %s.", item.attempt.node_id, now and now[0], item.handle)
            self.remove(item.attempt)
            # Stopping may wait for a process to go; other attempts' beats must not wait.
            threading.Thread(target=item.executor.cancel, args=(item.handle,), daemon=True).start()


watchdog = Watchdog()
