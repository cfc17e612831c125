import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from execution import host as this_host, reconcile, sandbox, workers
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

        from waitress import serve

        from config.wsgi import application

        # waitress stops on KeyboardInterrupt; make SIGTERM mean the same.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            serve(application, host=host, port=port, threads=threads, _quiet=True)
        except KeyboardInterrupt:
            self.stdout.write("Stopping.")
