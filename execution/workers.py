"""Start and stop in-process Dramatiq workers; shared by `up` and `worker`."""
import logging
import signal
import threading
import time

import dramatiq
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from jobs.models import QueueType

from . import broker, dispatch, engine, executors, lifecycle, schedules, workdirs
from .models import Node
from .states import NodeStatus
from .watchdog import watchdog

log = logging.getLogger(__name__)

__all__ = ["all_queues", "start_worker", "stop_worker", "wait_for_signal", "ReconcileLoop", "SweepLoop"]


def all_queues():
    """Every queue of every queue type in the catalogue, at all three priorities."""
    return broker.queue_names(QueueType.objects.values_list("name", flat=True))


def start_worker(queues=None, threads=4, prefetch=None):
    """Start a Dramatiq worker in this process on ``queues`` (None: all of them)."""
    current = dramatiq.get_broker()
    names = all_queues() if queues is None else list(queues)
    for name in names:
        current.declare_queue(name)
    dispatch.serve(None if queues is None else names)
    # With no explicit list, also consume queues declared later (a queue type added while running).
    worker = dramatiq.Worker(current, queues=None if queues is None else set(names), worker_threads=threads, worker_timeout=100)
    # Dramatiq holds up to 2 messages per thread by default. Steps can run for hours, so a busy
    # worker must not sit on a message an idle one could start: hold only what the threads run.
    worker.queue_prefetch = prefetch or threads
    worker.start()
    log.info("Worker %s consuming %s with %s threads.", dispatch.WORKER_ID, ", ".join(names), threads)
    return worker


def stop_worker(worker, grace=10.0):
    """Stop consuming, give running steps ``grace`` seconds, then hand the rest back.

    Steps still running after the grace period are stopped (through their
    executor) and queued again at once, so another worker takes them over
    without waiting for their lease.
    """
    stopper = threading.Thread(target=worker.stop, kwargs={"timeout": int(grace * 1000)}, daemon=True)
    stopper.start()
    stopper.join(grace + 1)
    close_old_connections()
    for node in Node.objects.filter(status=NodeStatus.RUNNING, worker=dispatch.WORKER_ID).select_related("task__backend__queue_type", "submission"):
        if executors.get(node.task.backend.queue_type.execution_behaviour).followed and node.handle:
            dispatch.adopt(node)  # a cluster job runs on without this worker: another one follows it
            continue
        # Hand the node back before stopping its run, so the attempt's thread finds it fenced
        # off and records no failure; send it again only once its run is gone, so that two
        # attempts never run side by side.
        handed_back = lifecycle.hand_back(lifecycle.attempt_of(node), queued_at=timezone.now())
        handle = watchdog.handle_of(node.pk) or node.handle  # the database learns the handle only on the next beat
        executor = executors.get(node.task.backend.queue_type.execution_behaviour)
        if handle and executor.reaches(handle):
            executor.cancel(handle)
        if handed_back:
            engine.record(node.submission_id, f"step '{node.key}' was interrupted by a worker shutdown; running it again", node=node)
            dispatch.send([node.pk])


class ReconcileLoop(threading.Thread):
    """Every ``interval`` seconds make due periodic submissions and run the reconciler."""

    def __init__(self, interval=None):
        super().__init__(name="reconciler", daemon=True)
        self.interval = interval or settings.SLUICE_RECONCILE_SECONDS
        self.stopped = threading.Event()

    def run(self):
        purged_at = 0.0
        while not self.stopped.wait(self.interval):
            try:
                schedules.tick()
                if time.monotonic() - purged_at > 3600:  # retention, hourly as the django-q2 schedule does
                    schedules.purge()
                    purged_at = time.monotonic()
            except Exception:  # a database hiccup must not end the loop; the next pass retries
                log.exception("Reconciler pass failed; trying again in %s s.", self.interval)
            finally:
                close_old_connections()

    def stop(self):
        self.stopped.set()


class SweepLoop(threading.Thread):
    """Remove, now and then every ``interval`` seconds, the working directories dead workers left on this host.

    A worker host need not run a reconciler, so its worker processes sweep
    their own host's work roots (see ``workdirs.sweep``).
    """

    def __init__(self, interval=300.0):
        super().__init__(name="sweeper", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self):
        while True:
            try:
                workdirs.sweep()
            except Exception:  # a database hiccup must not end the loop
                log.exception("Sweeping working directories failed; trying again in %s s.", self.interval)
            finally:
                close_old_connections()
            if self.stopped.wait(self.interval):
                return

    def stop(self):
        self.stopped.set()


def wait_for_signal():
    """Block until SIGTERM or SIGINT; return the signal's name."""
    received = threading.Event()
    name = {}

    def handler(signum, frame):
        name["signal"] = signal.Signals(signum).name
        received.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)
    while not received.wait(0.5):
        pass
    return name["signal"]
