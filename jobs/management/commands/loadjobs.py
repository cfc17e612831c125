"""``manage.py loadjobs FILE [FILE ...]``: load catalogue YAML files, all or nothing."""
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from jobs import yaml_io


class Command(BaseCommand):
    help = "Load queue types, backends, tasks and jobs from YAML files ('-' reads standard input). Either every file loads or none does."
    # Lets tests hand in a standard input of their own through call_command.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE", help="a catalogue YAML file, or - for standard input")

    def handle(self, *args, files, **options):
        stdin = options.get("stdin") or sys.stdin
        lines = []
        # One transaction over all files, so a bad second file also undoes the first.
        with transaction.atomic():
            for name in files:
                summary = load(name, stdin)
                lines.append(f"Loaded {summary.describe()} from {name} ({summary.created} created, {summary.updated} updated)")
        for line in lines:
            self.stdout.write(line)


def load(name, stdin):
    """Load one file, turning every failure into a one-line CommandError with exit code 2."""
    try:
        text = stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as error:
        raise CommandError(f"{name}: cannot read the file: {error.strerror or error}", returncode=2) from None
    except UnicodeDecodeError:
        raise CommandError(f"{name}: is not UTF-8 text", returncode=2) from None
    try:
        return yaml_io.load_text(text)
    except yaml_io.CatalogueError as error:
        raise CommandError(f"{name}: {error}", returncode=2) from None
