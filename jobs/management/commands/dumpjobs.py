"""``manage.py dumpjobs [JOB ...] [--output FILE]``: write the catalogue as YAML."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from jobs import yaml_io


class Command(BaseCommand):
    help = "Write jobs, with the tasks, backends and queue types they use, as YAML that loadjobs reads back. No JOB: the whole catalogue."

    def add_arguments(self, parser):
        parser.add_argument("jobs", nargs="*", metavar="JOB", help="names of jobs to dump; none dumps everything")
        parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")

    def handle(self, *args, jobs, output, **options):
        try:
            text = yaml_io.dump_text(jobs or None)
        except yaml_io.CatalogueError as error:
            raise CommandError(str(error), returncode=2) from None
        if output is None:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as error:
            raise CommandError(f"{output}: cannot write the file: {error.strerror or error}", returncode=2) from None
