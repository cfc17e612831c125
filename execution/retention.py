"""Delete finished submissions, and their files, once they are old enough."""
import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from . import logs
from .models import NodeLog, Result, Submission
from .states import SubmissionStatus

log = logging.getLogger(__name__)


def purge(days=None, now=None):
    """Delete finished submissions older than ``days`` (default: the setting); return how many.

    ``days`` of 0 keeps everything. Active submissions are never touched.
    """
    days = settings.SLUICE_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    count = delete_submissions(Submission.objects.filter(status__in=SubmissionStatus.TERMINAL, finished_at__lt=cutoff))
    if count:
        log.info("Retention: deleted %s submissions finished before %s.", count, cutoff.isoformat())
    return count


def delete_submissions(submissions):
    """Delete the finished submissions among ``submissions`` with their result and log files; return how many."""
    finished = submissions.filter(status__in=SubmissionStatus.TERMINAL)
    for result in Result.objects.filter(submission__in=finished).only("file"):
        result.file.delete(save=False)  # rows go with the cascade; files would stay behind
    logs.delete(NodeLog.objects.filter(node__submission__in=finished))
    count = finished.count()
    finished.delete()
    return count
