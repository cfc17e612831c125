"""The run graph: submissions, their nodes and edges, results and messages.

Status columns are only ever written through ``execution.lifecycle``.
"""
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from jobs.models import Job, Step, Task

from .states import NodeStatus, SubmissionStatus


class Priority(models.TextChoices):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Batch(models.Model):
    """Submissions made together by naming several jobs in one request."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "batches"

    def __str__(self):
        return str(self.uuid)


class SubmissionQuerySet(models.QuerySet):
    def matching(self, text):
        """Submissions whose name, job name or upload's file name holds every word of ``text`` (case-insensitive)."""
        queryset = self
        for word in text.split():
            queryset = queryset.filter(
                models.Q(submission_name__icontains=word) | models.Q(job__name__icontains=word) | models.Q(upload_name__icontains=word)
            )
        return queryset


class Submission(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    job = models.ForeignKey(Job, on_delete=models.PROTECT, related_name="submissions")
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="submissions")
    parent_node = models.ForeignKey("Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="children", help_text="The node that runs this submission as a sub-job.")
    submission_name = models.CharField(max_length=256, blank=True)
    upload_name = models.CharField(max_length=255, blank=True, help_text="The upload's file name as the submitter's client gave it: shown, never used as a path.")
    email = models.EmailField(blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="submissions")
    ip = models.GenericIPAddressField(null=True, blank=True)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    params = models.JSONField(default=dict, blank=True, help_text="Parameter values by REST name, typed and with defaults filled in.")
    promises = models.JSONField(default=list, blank=True, help_text="Promises made at run time (the job's own apply too).")
    status = models.CharField(max_length=16, choices=SubmissionStatus.choices, default=SubmissionStatus.SUBMITTED, db_index=True)
    last_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    idle_since = models.DateTimeField(null=True, blank=True, help_text="When it began waiting for input or was paused; it expires SLUICE_IDLE_EXPIRY later.")

    objects = SubmissionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # Each serves a question asked of one submitter's or one job's history, so that it costs the
        # same with a hundred thousand finished submissions as with a hundred (bench/bigdb.py):
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="submission_user_newest"),  # my list, newest first
            models.Index(fields=["user", "status"], name="submission_user_status"),  # the quota's active count; status filters
            models.Index(fields=["ip", "status"], name="submission_ip_status"),  # the quota of anonymous submitters
            models.Index(fields=["user", "job", "-created_at", "-id"], name="submission_user_job"),  # a job filter; the list's job choices
            models.Index(fields=["user", "-finished_at", "-id"], name="submission_user_finished"),  # ordering=-finished_at
            models.Index(fields=["job", "status", "-finished_at"], name="submission_job_finished"),  # stats.typical_seconds
            models.Index(fields=["finished_at"], name="submission_finished"),  # retention, oldest first; staff's finished_at order
        ]

    def __str__(self):
        return f"{self.job.name} {self.uuid}"

    @property
    def file_id(self):
        """The id in this submission's file names: ``<file_id><ending>``."""
        return str(self.uuid)

    @property
    def is_active(self):
        return self.status in SubmissionStatus.ACTIVE

    def visible_to(self, user):
        """May ``user`` see this submission?

        Staff see everything. A submission made by a logged-in user is theirs
        alone; an anonymous one is reachable by anyone holding its uuid (the
        uuid is random and unguessable, as in the seed service).
        """
        if user is not None and user.is_authenticated and user.is_staff:
            return True
        if self.user_id is None:
            return True
        return user is not None and user.is_authenticated and user.pk == self.user_id


class Node(models.Model):
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="nodes")
    key = models.CharField(max_length=128)
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="nodes")
    step = models.ForeignKey(Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="nodes")
    enabled = models.BooleanField(default=True)
    params = models.JSONField(default=dict, blank=True, help_text="Values that override the submission's for this node only.")
    added_by = models.CharField(max_length=128, blank=True, help_text="Key of the node that added this one at run time.")
    outputs = models.JSONField(default=dict, blank=True, help_text="Typed values the step sent on its control channel.")
    style = models.JSONField(default=dict, blank=True, help_text="Colour and label set on the control channel.")
    status = models.CharField(max_length=16, choices=NodeStatus.choices, default=NodeStatus.PENDING, db_index=True)
    attempt = models.PositiveSmallIntegerField(default=0)
    fence = models.PositiveIntegerField(default=0, help_text="Counts every claim and is never reset: each attempt's writes are conditional on it.")
    restarts = models.PositiveIntegerField(default=0, help_text="How many times the node was restarted; its logs say which run they are of.")
    exit_code = models.IntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    command = models.TextField(blank=True, help_text="The rendered command line of the latest attempt.")
    queued_at = models.DateTimeField(null=True, blank=True, help_text="When the node's latest message was sent.")
    not_before = models.DateTimeField(null=True, blank=True, help_text="A retry waits until then.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid of the worker running the node.")
    handle = models.CharField(max_length=255, blank=True, help_text="The executor's handle of the running attempt (e.g. host and process group).")
    image_digest = models.CharField(max_length=255, blank=True, help_text="The digest of the container image the latest attempt ran in.")
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["submission", "key"], name="unique_node_key_per_submission")]
        # A submission's nodes by status (engine._busy: is any queued or running?) without reading the finished ones.
        indexes = [models.Index(fields=["submission", "status"], name="node_submission_status")]

    def __str__(self):
        return f"{self.key} ({self.status})"


class Edge(models.Model):
    """``source`` must finish before ``target`` starts."""

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="edges")
    source = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="out_edges")
    target = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="in_edges")
    label = models.CharField(max_length=128, blank=True)
    color = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["source", "target"], name="unique_edge")]
        # A node's in-edges newest first (statements.successors: is any predecessor unfinished?).
        indexes = [models.Index(fields=["target", "-id"], name="edge_target_newest")]

    def __str__(self):
        return f"{self.source.key} -> {self.target.key}"


def result_path(result, filename):
    # Stored names derive from ids only; a submitter's file name never picks a path.
    return f"results/{result.submission.uuid}/{result.node.key if result.node_id else '_input'}/{filename}"


class Result(models.Model):
    """A file produced by a node, or the submitter's upload (no node)."""

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="results")
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.CASCADE, related_name="results")
    name = models.CharField(max_length=255, help_text="<ID><ending>, the name steps see.")
    ending = models.CharField(max_length=255, blank=True)
    file = models.FileField(upload_to=result_path, max_length=512)
    size = models.BigIntegerField(default=0)
    superseded = models.BooleanField(default=False, help_text="From an earlier run of a restarted node: kept as history, never staged.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.name


def log_name(submission_uuid, node_id, run, attempt, stream):
    # Named from ids only, one name per run, attempt and stream: object storage that overwrites
    # on save (S3's default) can never write one attempt's log over another's. One directory per
    # submission, not per node: a directory per step would cost a mkdir on every step's path.
    return f"logs/{submission_uuid}/{node_id}-{run}-{attempt}.{stream}.txt"


def log_path(log, filename):
    return log_name(log.node.submission.uuid, log.node_id, log.run, log.attempt, log.stream)


class NodeLog(models.Model):
    """What one attempt of a node wrote to stdout or stderr, capped at ``SLUICE_LOG_MAX_BYTES``.

    An empty stream has no row. Written by ``execution.logs.keep`` when the attempt ends.
    The node's current run is ``node.restarts + 1``; logs of earlier runs are kept as history.
    """

    class Stream(models.TextChoices):
        STDOUT = "stdout"
        STDERR = "stderr"

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="logs")
    run = models.PositiveIntegerField(default=1, help_text="The node's restarts + 1 when the attempt ran: logs of earlier runs are history.")
    attempt = models.PositiveSmallIntegerField()
    stream = models.CharField(max_length=6, choices=Stream.choices)
    file = models.FileField(upload_to=log_path, max_length=512)
    size = models.BigIntegerField(help_text="Bytes kept (at most SLUICE_LOG_MAX_BYTES, plus a cut marker line).")
    original_size = models.BigIntegerField(help_text="Bytes the step wrote.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["node", "run", "attempt", "stream"], name="unique_log_per_attempt_and_stream")]

    def __str__(self):
        return f"{self.node_id} attempt {self.attempt} {self.stream}"


class Message(models.Model):
    class Level(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="messages")
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.text


class PeriodicSubmission(models.Model):
    """Submit a job with given parameters every so often (seed 001 ran these on celery beat)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="periodic_submissions")
    submission_name = models.CharField(max_length=256, blank=True)
    params = models.JSONField(default=dict, blank=True, help_text="Parameter values by REST name, e.g. {\"numbers_count\": 10}.")
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    every_minutes = models.PositiveIntegerField(default=60, help_text="Minutes between submissions (at least 1).")
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(default=timezone.now, help_text="When the next submission is made.")
    last_submission = models.ForeignKey(Submission, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["next_run_at"]

    def __str__(self):
        return f"{self.job.name} every {self.every_minutes} min"

    def clean(self):
        from django.core.exceptions import ValidationError

        if self.every_minutes < 1:
            raise ValidationError({"every_minutes": "must be at least 1"})
        if self.job_id:
            try:
                self.params = self.job.resolve_params(self.params or {})
            except ValidationError as error:
                raise ValidationError({"params": [f"{name}: {' '.join(messages)}" for name, messages in error.message_dict.items()]}) from None


class CacheEntry(models.Model):
    """Results of a cacheable task's run, by a key over its definition, inputs and parameters."""

    key = models.CharField(max_length=64, unique=True)
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="cache_entries")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "cache entries"

    def __str__(self):
        return self.key[:12]


class IdempotencyKey(models.Model):
    """A submitter's ``Idempotency-Key``: a retry of the same POST gets the first answer, and creates nothing."""

    owner = models.CharField(max_length=64, help_text="Whose key: user:<id>, or ip:<address> for anonymous submitters.")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request it was first used with.")
    submission = models.ForeignKey(Submission, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_key_per_owner")]

    def __str__(self):
        return f"{self.owner} {self.key}"
