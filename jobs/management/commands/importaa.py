"""``manage.py importaa FILE [FILE ...] [--dry-run]``: import Analytics Automated configuration dumps."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from jobs import aa_import


class Command(BaseCommand):
    help = (
        "Import the catalogue of an Analytics Automated server from its dumpdata files (JSON or YAML): queue types, backends, tasks, "
        "parameters, environments, configurations, jobs, steps and validators. All files load together, all or nothing; users, "
        "permissions, sessions and backend logins are not imported. Prints what was made, mapped and not carried."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE", help="an A_A dump (manage.py dumpdata analytics_automated), JSON or YAML")
        parser.add_argument("--dry-run", action="store_true", help="check everything and print the report, but change nothing")

    def handle(self, *args, files, dry_run, **options):
        dumps = []
        for name in files:
            try:
                dumps.append((name, Path(name).read_text(encoding="utf-8")))
            except OSError as error:
                raise CommandError(f"{name}: cannot read the file: {error.strerror or error}", returncode=2) from None
            except UnicodeDecodeError:
                raise CommandError(f"{name}: is not UTF-8 text", returncode=2) from None
        try:
            report = aa_import.import_dumps(dumps, dry_run=dry_run)
        except aa_import.ImportProblem as error:
            raise CommandError(str(error), returncode=2) from None
        self.stdout.write(report.render(), ending="")
