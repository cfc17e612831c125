"""Dramatiq actors: thin wrappers that take an id and call one domain function."""
import dramatiq

from . import follow, processing
from .dispatch import ADOPT_NODE, RUN_NODE


# The engine records failures on the node and the reconciler re-sends lost
# work, so a broker-level retry would only duplicate that: no retries, and no
# exception is "expected" (any that escapes is logged as an error).
@dramatiq.actor(actor_name=RUN_NODE, queue_name="localhost", max_retries=0, throws=())
def run_node(node_id):
    processing.process(node_id)


# A followed run (a cluster job) whose worker died: take it over here, without starting it again.
@dramatiq.actor(actor_name=ADOPT_NODE, queue_name="localhost", max_retries=0, throws=())
def adopt_node(node_id, fence):
    follow.adopt(node_id, fence)
