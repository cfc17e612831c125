import logging
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from execution import broker, sandbox, workers

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run Dramatiq workers for the queues of this host's backends (needs BROKER_URL)."

    def add_arguments(self, parser):
        parser.add_argument("--queues", nargs="+", metavar="Q", help="queues to consume (default: every queue of every queue type)")
        parser.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
        parser.add_argument("--threads", type=int, default=4, help="threads per process (default 4)")
        parser.add_argument("--grace", type=float, default=10.0, help="seconds running steps get to finish on shutdown")

    def handle(self, *args, **options):
        try:
            sandbox.announce(log)
        except sandbox.SandboxUnavailable as error:
            raise CommandError(str(error), returncode=2) from None
        if not settings.BROKER_URL:
            raise CommandError(
                "BROKER_URL is not set: the embedded broker lives inside 'manage.py up'. "
                "Set BROKER_URL=redis://HOST:6379/0 or amqp://USER:PASSWORD@HOST:5672/VHOST to run workers in their own processes.",
                returncode=2,
            )
        try:
            broker.wait(log=log)
        except broker.BrokerUnreachable as error:
            raise CommandError(str(error), returncode=2) from None
        if options["processes"] < 1 or options["threads"] < 1:
            raise CommandError("--processes and --threads must be at least 1", returncode=2)
        if options["processes"] == 1:
            return self._run(options)
        return self._supervise(options)

    def _run(self, options):
        sweeper = workers.SweepLoop()
        sweeper.start()
        worker = workers.start_worker(options["queues"], threads=options["threads"])
        queues = ", ".join(sorted(worker.consumer_whitelist)) if worker.consumer_whitelist else "every queue"
        self.stdout.write(f"Worker {os.getpid()} consuming {queues}")
        received = workers.wait_for_signal()
        self.stdout.write(f"Worker {os.getpid()} got {received}; stopping.")
        workers.stop_worker(worker, grace=options["grace"])
        sweeper.stop()

    def _supervise(self, options):
        """Keep N single-process workers alive; restart any that dies; stop them all on a signal."""
        argv = [sys.executable, str(settings.BASE_DIR / "manage.py"), "worker", "--processes", "1", "--threads", str(options["threads"])]
        argv += ["--grace", str(options["grace"])]
        if options["queues"]:
            argv += ["--queues", *options["queues"]]
        children = [subprocess.Popen(argv) for _ in range(options["processes"])]
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
        while not stopping:
            for index, child in enumerate(children):
                if child.poll() is not None:
                    self.stderr.write(f"Worker process {child.pid} exited with {child.returncode}; starting another.")
                    children[index] = subprocess.Popen(argv)
            time.sleep(0.5)
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait()
