from django.core.management.base import BaseCommand

from execution import reconcile, workers


class Command(BaseCommand):
    help = "Re-run steps whose worker died, re-send lost messages, advance stalled submissions. Once, or --every N seconds."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, metavar="SECONDS", help="keep running, a pass every SECONDS, until SIGTERM/SIGINT")

    def handle(self, *args, **options):
        if not options["every"]:
            report = reconcile.reconcile()
            self.stdout.write(
                f"Re-ran {len(report.rerun)} lost steps, crashed {len(report.crashed)} submissions, "
                f"re-sent {len(report.resent)} queued steps, advanced {len(report.advanced)}."
            )
            return
        loop = workers.ReconcileLoop(options["every"])
        loop.start()
        workers.wait_for_signal()
        loop.stop()
