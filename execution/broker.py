"""The Dramatiq broker: an in-process one for the embedded mode, Redis or RabbitMQ for workers elsewhere.

The broker only carries nudges ("run node 42"); the database holds every
state, so a lost message costs a reconciler pass, never a submission.

Priorities are separate queues (``high_q``, ``q``, ``low_q``) on every
broker, so a worker takes a high message from its own queue however many
normal ones wait in theirs. RabbitMQ queues are declared without
``x-max-priority``: each queue holds one priority, so in-queue priorities
would order nothing (docs/configuration.md, "The broker", "Priorities").
"""
import logging
import socket
import time
from urllib.parse import urlsplit, urlunsplit

import dramatiq
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from dramatiq.middleware import default_middleware
from dramatiq.middleware.time_limit import TimeLimit

log = logging.getLogger(__name__)

__all__ = [
    "PRIORITIES", "BadBrokerURL", "BrokerUnreachable", "check", "describe", "kind", "make_broker", "queue_name", "queue_names", "setup", "wait",
]

PRIORITIES = ("low", "normal", "high")
REDIS_SCHEMES = ("redis", "rediss", "unix")
RABBITMQ_SCHEMES = ("amqp", "amqps")
URL_FORMS = "empty (embedded), redis://HOST:6379/0 or amqp://USER:PASSWORD@HOST:5672/VHOST"


class BadBrokerURL(ImproperlyConfigured):
    """BROKER_URL cannot name a broker (unknown scheme, bad port, unknown parameter)."""


class BrokerUnreachable(Exception):
    """The broker BROKER_URL names does not answer, or refuses our credentials."""


def kind(url):
    """Return "stub", "redis" or "rabbitmq" for a BROKER_URL.

    Raises:
        BadBrokerURL: the URL's scheme is not one Sluice supports.
    """
    if not url:
        return "stub"
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in REDIS_SCHEMES:
        return "redis"
    if scheme in RABBITMQ_SCHEMES:
        return "rabbitmq"
    shown = f"{scheme}://…" if scheme else repr(describe(url))
    raise BadBrokerURL(f"BROKER_URL must be {URL_FORMS}; got {shown}")


def describe(url):
    """Return ``url`` with its password replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return url.split("://", 1)[0] + "://…"


def make_broker(url):
    """Return a broker for ``url``: "" for the in-process stub, redis://… for Redis, amqp://… for RabbitMQ.

    Every broker gets the same middleware: Dramatiq's defaults less its
    actor time limit (steps have their own timeouts; the 10-minute limit
    would cut long steps short), plus closing database connections around
    each message.

    Raises:
        BadBrokerURL: the URL's scheme is not supported, or RabbitMQ's
            client cannot read the URL (port, query parameters).
    """
    from .middleware import DatabaseConnections

    middleware = [cls() for cls in default_middleware if cls is not TimeLimit] + [DatabaseConnections()]
    which = kind(url)
    if which == "stub":
        from dramatiq.brokers.stub import StubBroker

        return StubBroker(middleware=middleware)
    if which == "redis":
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, middleware=middleware)
    return _rabbitmq(url, middleware)


def _rabbitmq(url, middleware):
    try:
        import pika  # noqa: F401
        from dramatiq.brokers.rabbitmq import RabbitmqBroker
    except ImportError:  # pragma: no cover - pika is in requirements.txt
        raise BadBrokerURL("BROKER_URL names RabbitMQ but its client is not installed: pip install 'dramatiq[rabbitmq]'") from None
    try:
        # Publisher confirms: a send returns only once RabbitMQ has the message, so a send during
        # a broker restart fails (and is logged; the reconciler re-sends) instead of vanishing.
        return RabbitmqBroker(url=url, middleware=middleware, confirm_delivery=True)
    except ValueError as error:
        raise BadBrokerURL(f"BROKER_URL {describe(url)!r} is not a RabbitMQ URL its client can read: {error}") from None


def setup():
    """Install the broker named by ``settings.BROKER_URL`` as Dramatiq's global broker."""
    broker = make_broker(settings.BROKER_URL)
    dramatiq.set_broker(broker)
    return broker


def check(url=None, timeout=5.0):
    """Connect to the broker once and hang up; raise ``BrokerUnreachable`` with what to fix if that fails.

    Dramatiq connects lazily and its consumers retry forever, so without
    this a worker pointed at a wrong host would start and log connection
    errors every few seconds instead of saying so and exiting.
    """
    url = settings.BROKER_URL if url is None else url
    which = kind(url)
    if which == "stub":
        return
    try:
        if which == "redis":
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
            try:
                client.ping()
            finally:
                client.close()
        else:
            _ping_rabbitmq(url, timeout)
    except BadBrokerURL:
        raise
    except Exception as error:
        raise BrokerUnreachable(_unreachable(which, url, error)) from None


def wait(url=None, patience=None, pause=1.0, log=None):
    """``check`` the broker until it answers, for up to ``patience`` seconds (``SLUICE_BROKER_WAIT``).

    A worker or ``up`` started while the broker is still starting (both come
    up at boot) or briefly down waits for it instead of exiting; one that is
    refused its user name or virtual host, or still finds nothing after
    ``patience``, raises ``BrokerUnreachable`` at once so the mistake is seen.
    """
    patience = settings.SLUICE_BROKER_WAIT if patience is None else patience
    deadline = time.monotonic() + patience
    said = False
    while True:
        try:
            return check(url, timeout=min(5.0, max(1.0, patience)))
        except BrokerUnreachable as error:
            refused = "refused the user name" in str(error) or "refused the virtual host" in str(error)
            if refused or time.monotonic() + pause > deadline:
                raise
            if not said and log is not None:
                log.warning("%s Waiting up to %s s for it (SLUICE_BROKER_WAIT).", error, f"{patience:g}")
                said = True
            time.sleep(pause)


def _ping_rabbitmq(url, timeout):
    import pika

    try:
        parameters = pika.URLParameters(url)
    except ValueError as error:
        raise BadBrokerURL(f"BROKER_URL {describe(url)!r} is not a RabbitMQ URL its client can read: {error}") from None
    # A plain connect first: it says "Connection refused" or "timed out", where pika says only AMQPConnectionError.
    socket.create_connection((parameters.host, parameters.port), timeout=timeout).close()
    parameters.socket_timeout = parameters.blocked_connection_timeout = timeout
    parameters.connection_attempts, parameters.retry_delay = 1, 0
    quiet = logging.getLogger("pika")
    level, quiet.level = quiet.level, logging.CRITICAL  # pika logs its own traceback for what we report in a sentence
    try:
        pika.BlockingConnection(parameters).close()
    finally:
        quiet.setLevel(level)


def _unreachable(which, url, error):
    import pika.exceptions as amqp

    name = {"redis": "Redis", "rabbitmq": "RabbitMQ"}[which]
    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    advice = "Is it running, and does BROKER_URL name its host and port?"
    if which == "rabbitmq":
        if isinstance(error, (amqp.ProbableAuthenticationError, amqp.AuthenticationError)):
            advice = "RabbitMQ refused the user name or password in BROKER_URL (its guest user may only connect from localhost)."
        elif isinstance(error, amqp.ProbableAccessDeniedError):
            advice = "RabbitMQ refused the virtual host in BROKER_URL: create it (rabbitmqctl add_vhost) and give the user rights on it (rabbitmqctl set_permissions)."
    return f"Cannot reach {name} at {describe(url)} ({reason}). {advice}"


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
