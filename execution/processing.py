"""What a worker does with "run node N": run it, then carry on with its one successor or send the successors on."""
from . import broker, dispatch, engine
from .follow import follower
from .models import Node
from .states import NodeStatus

__all__ = ["process"]


def process(node_id):
    """Run node ``node_id`` and what follows it, as a worker does with one message.

    Fast path: when exactly one node became ready, it waits for no backoff
    and its queue is one this process serves, run it here at once instead of
    a broker round trip. The claim in ``engine.run_node`` is a conditional
    update, so a duplicate message for that node stays harmless; if this
    process dies first, the node is still ``queued`` and the reconciler
    re-sends it. A followed run (a cluster job) is handed to this process's
    follower, which concludes it when it ends.
    """
    while node_id is not None:
        next_ids = engine.run_node(node_id, worker=dispatch.WORKER_ID, watch=True, follower=follower)
        node_id = _inline(next_ids)
        dispatch.send([other for other in next_ids if other != node_id])


def _inline(node_ids):
    if len(node_ids) != 1:
        return None
    queue = getattr(node_ids[0], "queue", None)  # known when the engine's fast path queued it
    if queue is None:
        row = Node.objects.filter(pk=node_ids[0], status=NodeStatus.QUEUED, not_before__isnull=True).values_list(
            "task__backend__queue_type__name", "submission__priority"
        ).first()
        if row is None:
            return None
        queue = broker.queue_name(*row)
    return node_ids[0] if dispatch.serves(queue) else None
