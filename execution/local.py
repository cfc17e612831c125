"""Run submissions synchronously, in this process, one node at a time.

After the seed's ``SynchronousRunner``: a runner accepts a job, is
initialised, processes one submission (an epoch) per ``process()`` call,
and is de-initialised. No broker is involved; each epoch is an ordinary
submission in the database, so its document, results and messages are the
same as those of a submission run by workers.
"""
import logging
import time
from pathlib import Path

from django.utils import timezone

from jobs.models import Job

from . import controls, engine, stored
from .follow import follower
from .models import Node
from .states import NodeStatus

log = logging.getLogger(__name__)

__all__ = ["RunnerStateError", "SynchronousRunner"]


class RunnerStateError(RuntimeError):
    """A runner method was called in a state that does not allow it."""


class SynchronousRunner:
    """Run ``job`` on ``input`` with ``params``, one node at a time.

    ``job`` is a Job or its name; ``input`` is bytes, a path, or None;
    ``params`` maps REST names to raw values.
    """

    def __init__(self, job, input=None, params=None, submission_name="", user=None, answers=None):
        self.job = job if isinstance(job, Job) else engine.job_by_name(job)
        self.input = input
        self.params = dict(params or {})
        self.submission_name = submission_name
        self.user = user
        self.disabled = {step.key for step in self.job.steps.all() if not step.enabled}
        self.answers = dict(answers or {})  # step key -> answer for steps that wait for input
        self.state = "pre-init"
        self.submissions = []

    def init(self):
        """Read the input and get ready to process; idempotent."""
        if isinstance(self.input, (str, Path)):
            self.input = Path(self.input).read_bytes()
        self.state = "inited"
        return self

    def process(self):
        """Run one submission to a terminal status and return it.

        Raises:
            SubmissionInvalid: the job, parameters or upload are refused.
            RunnerStateError: the runner was not initialised.
        """
        if self.state not in ("inited", "running"):
            raise RunnerStateError(f"call init() before process(); the runner is {self.state}")
        self.state = "running"
        submission = engine.submit(
            self.job, params=self.params, input_data=self.input, submission_name=self.submission_name, user=self.user, disabled=self.disabled
        )
        self.submissions.append(submission)
        queue = list(submission.ready)
        while True:
            while queue or (queue := self._answer(submission)):
                # One thing at a time: the oldest ready node first, which keeps runs reproducible.
                node_id = queue.pop(0)
                _wait_for_backoff(node_id)
                queue.extend(engine.run_node(node_id, follower=follower))
            queue = _after_followed(submission)  # what ended Slurm steps let run
            if not queue:
                break
        self._reconcile(submission)
        submission.refresh_from_db()
        return submission

    def _answer(self, submission):
        """Answer the waiting steps this runner has answers for; return what that queued."""
        queued = []
        for key in Node.objects.filter(submission=submission, status=NodeStatus.WAITING, key__in=list(self.answers)).values_list("key", flat=True):
            queued.extend(controls.provide_input(submission.pk, key, self.answers[key], who="the runner"))
        return queued

    def _reconcile(self, submission):
        """Make sure nothing is left queued (e.g. a node queued by another caller)."""
        leftover = list(Node.objects.filter(submission=submission, status=NodeStatus.QUEUED).values_list("pk", flat=True))
        while leftover:
            for node_id in leftover:
                _wait_for_backoff(node_id)
                engine.run_node(node_id, follower=follower)
            leftover = list(Node.objects.filter(submission=submission, status=NodeStatus.QUEUED).values_list("pk", flat=True))
        engine.advance(submission.pk)

    def run(self, n=1):
        """Process ``n`` submissions and return them."""
        return list(self.iter(n))

    def iter(self, n=None):
        """Yield processed submissions, ``n`` of them or without end."""
        if self.state == "pre-init":
            self.init()
        count = 0
        while n is None or count < n:
            yield self.process()
            count += 1

    def deinit(self):
        """Return to the pre-init state; the submissions stay in the database."""
        self.state = "deinited"
        return self

    def enable_node(self, node_id):
        """Run step ``node_id`` in the next submissions."""
        self.check_step(node_id)
        self.disabled.discard(node_id)

    def disable_node(self, node_id):
        """Skip step ``node_id`` in the next submissions; the steps after it still run."""
        self.check_step(node_id)
        self.disabled.add(node_id)

    def check_step(self, key):
        """Raise KeyError naming the job's steps when ``key`` is not one of them."""
        keys = [step.key for step in self.job.steps.all()]
        if key not in keys:
            raise KeyError(f"job '{self.job.name}' has no step '{key}'; its steps are {', '.join(keys)}")

    @property
    def last(self):
        """The most recent submission, or None."""
        return self.submissions[-1] if self.submissions else None


def _after_followed(submission, interval=0.2):
    """Wait until no node of ``submission`` runs (a Slurm job this process's follower follows); return what that queued."""
    while Node.objects.filter(submission=submission, status=NodeStatus.RUNNING).exists():
        time.sleep(interval)
    return list(Node.objects.filter(submission=submission, status=NodeStatus.QUEUED).order_by("pk").values_list("pk", flat=True))


def _wait_for_backoff(node_id):
    """Sleep until a retried node's backoff has passed."""
    not_before = Node.objects.filter(pk=node_id).values_list("not_before", flat=True).first()
    if not_before:
        time.sleep(max(0.0, (not_before - timezone.now()).total_seconds()))


def result_path(result):
    """The local file of a result when storage is a file system, else None."""
    path = stored.local_path(result.file)
    return Path(path) if path else None


