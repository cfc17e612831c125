import logging
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from execution import broker, host as this_host, reconcile, sandbox, workers
from jobs import diagrams

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run everything in one process: the web app (waitress) and Dramatiq workers. SQLite by default."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", metavar="HOST:PORT", help="where to serve (default 127.0.0.1:8000)")
        parser.add_argument("--threads", type=int, default=4, help="worker threads running steps (default 4)")
        parser.add_argument("--web-threads", type=int, default=8, help="threads serving web requests (default 8)")

    def handle(self, *args, **options):
        host, _, port = options["addr"].rpartition(":")
        if not host or not port.isdigit():
            raise CommandError(f"--addr takes HOST:PORT, got {options['addr']!r}", returncode=2)
        diagrams.warm_up()
        try:
            plan = sandbox.announce(log)
        except sandbox.SandboxUnavailable as error:
            raise CommandError(str(error), returncode=2) from None
        try:
            broker.wait(log=log)
        except broker.BrokerUnreachable as error:
            raise CommandError(str(error), returncode=2) from None
        missing = this_host.lacks(plan)
        if missing:
            self.stdout.write("This host lacks:\n" + "\n".join(f"  - {sentence}" for sentence in missing))
        report = reconcile.recover()
        if report:
            self.stdout.write(f"Recovered: re-ran {len(report.rerun)} interrupted steps, re-sent {len(report.resent)} queued steps.")
        worker = workers.start_worker(None, threads=options["threads"])
        loop = workers.ReconcileLoop()
        loop.start()
        mode = "SQLite" if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") else "PostgreSQL"
        self.stdout.write(f"Sluice on http://{host}:{port}/ ({mode}, {options['threads']} worker threads). Ctrl-C stops.")
        try:
            self._serve(host, int(port), options["web_threads"])
        finally:
            loop.stop()
            workers.stop_worker(worker)

    def _serve(self, host, port, threads):
        import signal

        from config.wsgi import application

        # waitress stops on KeyboardInterrupt; make SIGTERM mean the same.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        raised = fit_open_files(settings.SLUICE_UP_CONNECTION_LIMIT)
        if raised:
            self.stdout.write(raised)
        try:
            make_server(application, host, port, threads).run()
        except KeyboardInterrupt:
            pass
        self.stdout.write("Stopping.")


def waitress_settings(host, port, threads):
    """waitress' adjustments from Sluice's settings (docs/configuration.md, "manage.py up")."""
    return {
        "host": host,
        "port": port,
        "threads": threads,
        "connection_limit": settings.SLUICE_UP_CONNECTION_LIMIT,
        "backlog": settings.SLUICE_UP_BACKLOG,
        "channel_timeout": settings.SLUICE_UP_CHANNEL_TIMEOUT,
        "cleanup_interval": settings.SLUICE_UP_CLEANUP_INTERVAL,
        "max_request_body_size": settings.SLUICE_UP_MAX_BODY_BYTES,
        # select() cannot watch a descriptor numbered 1024 or more; poll() can.
        "asyncore_use_poll": True,
    }


def make_server(application, host, port, threads):
    """A waitress server on every address ``host`` resolves to, dropping requests whose headers arrive too slowly."""
    from waitress.adjustments import Adjustments
    from waitress.task import ThreadedTaskDispatcher

    adj = Adjustments(**waitress_settings(host, port, threads))
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    socket_map = {}
    servers = [_server_class()(application, socket_map, dispatcher=dispatcher, adj=adj, sockinfo=info) for info in adj.listen]
    return servers[0]  # one loop serves every socket of the shared map


def _server_class():
    """waitress' TCP server, whose clean-up also drops requests still without all their headers after SLUICE_UP_HEADER_TIMEOUT.

    waitress only closes a connection that stays silent for channel_timeout; a
    client that sends a header line every few seconds would hold its
    connection (and, once there are connection_limit of them, the server)
    forever. Built on first use so that importing this command needs no waitress.
    """
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser
    from waitress.server import TcpWSGIServer

    class TimedParser(HTTPRequestParser):
        def __init__(self, adj):
            super().__init__(adj)
            self.started = time.monotonic()

    class Channel(HTTPChannel):
        parser_class = TimedParser

    class Server(TcpWSGIServer):
        channel_class = Channel

        def maintenance(self, now):
            super().maintenance(now)
            cutoff = time.monotonic() - settings.SLUICE_UP_HEADER_TIMEOUT
            for channel in list(self.active_channels.values()):
                request = channel.request
                if request is not None and not request.headers_finished and request.started < cutoff:
                    channel.will_close = True

    return Server


def fit_open_files(connections):
    """Raise this process's soft limit on open files so that ``connections`` connections fit, as far as the hard limit allows.

    Each connection is a file descriptor, and the process needs some more of
    its own (the database, uploads, steps' pipes); a common default soft limit
    is 1024. Returns a sentence saying what was raised, or None.
    """
    import resource

    needed = connections + 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed and (hard == resource.RLIM_INFINITY or hard > soft):
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        message = f"Raised the open-file limit (ulimit -n) from {soft} to {raised} for SLUICE_UP_CONNECTION_LIMIT={connections}."
        soft = raised
    else:
        message = None
    if soft < needed:
        log.warning(
            "The open-file limit (ulimit -n) is %s; SLUICE_UP_CONNECTION_LIMIT=%s needs about %s. Raise the hard limit or lower the setting.",
            soft, connections, needed,
        )
    return message
