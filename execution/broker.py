"""The Dramatiq broker: an in-process one for the embedded mode, Redis for workers elsewhere.

The broker only carries nudges ("run node 42"); the database holds every
state, so a lost message costs a reconciler pass, never a submission.
"""
import logging

import dramatiq
from django.conf import settings
from dramatiq.middleware import default_middleware
from dramatiq.middleware.time_limit import TimeLimit

log = logging.getLogger(__name__)

__all__ = ["PRIORITIES", "make_broker", "queue_name", "queue_names", "setup"]

PRIORITIES = ("low", "normal", "high")


def make_broker(url):
    """Return a broker for ``url``: "" for the in-process stub, redis://… for Redis.

    Raises:
        ValueError: the URL's scheme is not supported.
    """
    # Steps have their own timeouts; Dramatiq's 10-minute actor limit would cut long steps short.
    from .middleware import DatabaseConnections

    middleware = [cls() for cls in default_middleware if cls is not TimeLimit] + [DatabaseConnections()]
    if not url:
        from dramatiq.brokers.stub import StubBroker

        return StubBroker(middleware=middleware)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, middleware=middleware)
    raise ValueError(f"BROKER_URL must be empty (embedded) or redis://…, got {url.split(':')[0]}://…")


def setup():
    """Install the broker named by ``settings.BROKER_URL`` as Dramatiq's global broker."""
    broker = make_broker(settings.BROKER_URL)
    dramatiq.set_broker(broker)
    return broker


def queue_name(queue_type, priority="normal"):
    """Return the queue for a queue type at a priority: ``low_q``, ``q`` or ``high_q``."""
    if priority == "normal":
        return queue_type
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, got {priority!r}")
    return f"{priority}_{queue_type}"


def queue_names(queue_types):
    """Return every queue (all three priorities) of the given queue type names."""
    return [queue_name(name, priority) for name in queue_types for priority in PRIORITIES]
