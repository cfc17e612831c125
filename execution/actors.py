"""Dramatiq actors: thin wrappers that take an id and call one domain function."""
import dramatiq

from . import dispatch


# The engine records failures on the node and the reconciler re-sends lost
# work, so a broker-level retry would only duplicate that: no retries, and no
# exception is "expected" (any that escapes is logged as an error).
@dramatiq.actor(actor_name="sluice.run_node", queue_name="localhost", max_retries=0, throws=())
def run_node(node_id):
    dispatch.process(node_id)


# A followed run (a cluster job) whose worker died: take it over here, without starting it again.
@dramatiq.actor(actor_name="sluice.adopt_node", queue_name="localhost", max_retries=0, throws=())
def adopt_node(node_id, fence):
    from . import follow

    follow.adopt(node_id, fence)
