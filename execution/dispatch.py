"""Send nodes to workers.

``send`` puts "run node N" on the queue of the node's backend at its
submission's priority, after the current transaction commits; ``adopt`` puts
"take over node N". Messages name their actors (``RUN_NODE``, ``ADOPT_NODE``,
declared in ``actors``) rather than importing them, so that sending needs
nothing of the engine: what a worker does with a message is in ``processing``.
"""
import logging
import os
import socket

import dramatiq
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import broker
from .models import Node

log = logging.getLogger(__name__)

__all__ = ["ADOPT_NODE", "RUN_NODE", "WORKER_ID", "adopt", "send", "serve", "serves", "start"]

# The actors' names: the contract between a message and the worker that runs it (actors.py).
RUN_NODE = "sluice.run_node"
ADOPT_NODE = "sluice.adopt_node"

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
# Queues this process consumes; None means all of them (the embedded mode).
_served = None


def serve(queues):
    """Declare the queues this process consumes (None: every queue)."""
    global _served, WORKER_ID
    _served = set(queues) if queues is not None else None
    WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def serves(queue):
    """Does this process consume ``queue``?"""
    return _served is None or queue in _served


def start(submission):
    """Send the nodes a new submission queued (``engine.submit`` leaves them in ``submission.ready``)."""
    send(submission.ready)
    return submission.ready


def send(node_ids):
    """Send "run node N" for each id once the current transaction commits.

    The nodes are committed as ``queued`` before anything is sent, so a
    broker that fails now loses nothing: the send is logged and the
    reconciler sends them again once they have been queued for
    SLUICE_REQUEUE_SECONDS. Raising here instead would turn a committed
    submission into a 500, which a client that retries would run twice.
    """
    if node_ids:
        ids = list(node_ids)
        transaction.on_commit(lambda: _enqueue_or_log(ids))


def _enqueue_or_log(node_ids):
    try:
        _enqueue(node_ids)
    except Exception as error:  # the broker's (or the lookup's) failure, whatever its type
        log.error(
            "Could not send %s queued node(s) %s to the broker (%s: %s); the reconciler sends them again after %s s.",
            len(node_ids), [int(node_id) for node_id in node_ids], type(error).__name__, error, settings.SLUICE_REQUEUE_SECONDS,
        )


def _message(queue, actor, *args):
    return dramatiq.Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options={})


def _enqueue(node_ids):
    # A lifecycle.Ready was queued just now, to run at once, and knows its queue; others are looked up.
    sends = {int(node_id): (node_id.queue, None) for node_id in node_ids if getattr(node_id, "queue", None)}
    unknown = [node_id for node_id in node_ids if int(node_id) not in sends]
    now = timezone.now()
    for node in Node.objects.filter(pk__in=unknown).select_related("submission", "task__backend__queue_type") if unknown else ():
        delay = int((node.not_before - now).total_seconds() * 1000) if node.not_before and node.not_before > now else None
        sends[node.pk] = (queue_of(node), delay)
    current = dramatiq.get_broker()
    for node_id, (queue, delay) in sends.items():
        current.declare_queue(queue)
        current.enqueue(_message(queue, RUN_NODE, node_id), delay=delay)


def adopt(node):
    """Send "take over node N at its fence" to the node's queue once the current transaction commits.

    For a followed run (a cluster job) whose worker stopped renewing its
    lease: whichever live worker of the queue gets it follows the run on
    (``follow.adopt``). A duplicate finds the fence moved and does nothing.
    """
    node_id, fence, queue = node.pk, node.fence, queue_of(node)

    def enqueue():
        try:
            current = dramatiq.get_broker()
            current.declare_queue(queue)
            current.enqueue(_message(queue, ADOPT_NODE, node_id, fence))
        except Exception as error:  # the reconciler asks again on its next pass
            log.error("Could not send the take-over of node %s to the broker (%s: %s).", node_id, type(error).__name__, error)

    transaction.on_commit(enqueue)


def queue_of(node):
    """Return the queue a node's message goes to."""
    return broker.queue_name(node.task.backend.queue_type.name, node.submission.priority)
