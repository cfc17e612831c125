import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from execution import documents, engine, logs
from execution.errors import SubmissionInvalid
from execution.local import SynchronousRunner, result_path
from execution.states import NodeStatus, SubmissionStatus

# Lines of a failed step's stderr printed under it.
STDERR_LINES = 20


class Command(BaseCommand):
    help = "Run a job synchronously in this process (no broker) and print the outcome. Exit code 0 only when it completed."

    def add_arguments(self, parser):
        parser.add_argument("job", help="name of the job to run")
        parser.add_argument("--input", metavar="FILE", help="file to submit as the input data (the .input file)")
        parser.add_argument("--param", metavar="ALIAS=VALUE", action="append", default=[], help="a parameter by its REST name; repeatable")
        parser.add_argument("--name", default="", help="submission name")
        parser.add_argument("--disable", metavar="STEP", action="append", default=[], help="skip this step; repeatable")
        parser.add_argument("--answer", metavar="STEP=VALUE", action="append", default=[], help="answer a step that waits for input; repeatable")
        parser.add_argument("--json", action="store_true", help="print the submission document as JSON")

    def handle(self, *args, **options):
        params = self._params(options["param"])
        answers = self._params(options["answer"], "--answer takes STEP=VALUE")
        data = self._input(options["input"])
        try:
            runner = SynchronousRunner(engine.job_by_name(options["job"]), input=data, params=params, submission_name=options["name"], answers=answers)
            for key in options["disable"]:
                runner.disable_node(key)
            for key in answers:
                runner.check_step(key)
            submission = runner.init().process()
        except SubmissionInvalid as error:
            raise CommandError(str(error), returncode=2) from None
        except KeyError as error:
            raise CommandError(error.args[0], returncode=2) from None
        finally:
            if "runner" in locals():
                runner.deinit()
        if options["json"]:
            self.stdout.write(json.dumps(documents.submission_document(submission, limit=None), indent=2))
        else:
            self._summary(submission)
        if submission.status != SubmissionStatus.COMPLETE:
            raise SystemExit(1)

    def _params(self, pairs, usage="--param takes ALIAS=VALUE"):
        params = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep or not name:
                raise CommandError(f"{usage}, got {pair!r}", returncode=2)
            params[name] = value
        return params

    def _input(self, path):
        if path is None:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as error:
            raise CommandError(f"cannot read input file {path}: {error.strerror}", returncode=2) from None

    def _summary(self, submission):
        write = self.stdout.write
        write(f"Submission {submission.uuid} of job '{submission.job.name}': {submission.status}")
        write(f"  {submission.last_message}")
        for node in submission.nodes.select_related("task"):
            exit_code = "-" if node.exit_code is None else node.exit_code
            first = node.message.splitlines()[0] if node.message else ""
            write(f"  step {node.key:<20} {node.status:<10} exit {exit_code!s:<4} {first}")
            if node.status == NodeStatus.FAILED:
                self._stderr_tail(node)
        for result in submission.results.select_related("node"):
            where = result_path(result) or result.file.name
            write(f"  result {result.name} ({result.size} bytes) from {result.node.key if result.node else 'upload'}: {where}")

    def _stderr_tail(self, node):
        """Print the last lines a failed step wrote to stderr, and where its whole log is."""
        stored = logs.find(node, stream="stderr") if node.attempt else None
        if stored is None:
            return
        where = result_path(stored) or stored.file.name
        self.stdout.write(f"    the end of its stderr (attempt {node.attempt}; all of it: {where}):")
        for line in logs.tail(stored).splitlines()[-STDERR_LINES:]:
            self.stdout.write(f"    | {line}")
