"""One thread per worker process that watches every node the process is running.

Each beat (``SLUICE_HEARTBEAT_SECONDS``) it reads the statuses of those nodes
in one query and kills the process group of any that is no longer
``running`` (a cancel, or a takeover by the reconciler); every
``SLUICE_LEASE_SECONDS / 3`` it renews all their leases in one update. A
step therefore costs the hot path nothing but two dictionary writes, however
many steps the process runs at once.
"""
import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from . import executors
from .models import Node
from .states import NodeStatus

log = logging.getLogger(__name__)

__all__ = ["Watchdog", "watchdog"]


class Watchdog:
    def __init__(self):
        self._lock = threading.Lock()
        self._pids = {}  # node id -> process group id (None until the process exists)
        self._unrecorded = {}  # pids not yet written to the database
        self._thread = None

    def add(self, node_id):
        with self._lock:
            self._pids[node_id] = None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sluice-watchdog", daemon=True)
                self._thread.start()

    def started(self, node_id, pid):
        """The node's process exists: remember its group (written to the node on the next beat)."""
        with self._lock:
            if node_id in self._pids:
                self._pids[node_id] = pid
                self._unrecorded[node_id] = pid

    def pid_of(self, node_id):
        """The process group of a node this process runs, or None."""
        with self._lock:
            return self._pids.get(node_id)

    def remove(self, node_id):
        with self._lock:
            self._pids.pop(node_id, None)
            self._unrecorded.pop(node_id, None)

    def _run(self):
        renewed = time.monotonic()
        while True:
            time.sleep(settings.SLUICE_HEARTBEAT_SECONDS)
            with self._lock:
                pids, unrecorded = dict(self._pids), dict(self._unrecorded)
                self._unrecorded.clear()
            if not pids:
                continue
            try:
                renew = time.monotonic() - renewed >= settings.SLUICE_LEASE_SECONDS / 3
                self._beat(pids, unrecorded, renew)
                if renew:
                    renewed = time.monotonic()
            except DatabaseError:  # the next beat tries again; the lease is long enough to ride it out
                log.exception("Watchdog beat failed for nodes %s.", sorted(pids))
            finally:
                close_old_connections()

    def _beat(self, pids, unrecorded, renew):
        for node_id, pid in unrecorded.items():
            Node.objects.filter(pk=node_id, status=NodeStatus.RUNNING).update(pid=pid)
        if renew:
            lease = timezone.now() + timedelta(seconds=settings.SLUICE_LEASE_SECONDS)
            Node.objects.filter(pk__in=list(pids), status=NodeStatus.RUNNING).update(lease_expires_at=lease)
        running = set(Node.objects.filter(pk__in=list(pids), status=NodeStatus.RUNNING).values_list("pk", flat=True))
        for node_id, pid in pids.items():
            if node_id not in running and pid:
                log.info("Node %s is no longer running here; killing process group %s.", node_id, pid)
                self.remove(node_id)
                # Killing waits up to a second for SIGTERM to work; other nodes' beats must not wait.
                threading.Thread(target=executors.kill_group, args=(pid,), daemon=True).start()


watchdog = Watchdog()
