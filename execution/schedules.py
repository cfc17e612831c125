"""Periodic work: due periodic submissions, the reconciler and retention.

In the distributed mode django-q2 (ORM broker, `manage.py qcluster`) calls
``tick`` every minute; in the embedded mode the `up` loop does. Each piece
claims its work with a conditional update, so two tickers never double up.
"""
import logging
from datetime import timedelta

from django.db.models.signals import post_migrate
from django.utils import timezone

from . import dispatch, engine, idempotency, reconcile, retention
from .errors import SubmissionInvalid
from .models import PeriodicSubmission

log = logging.getLogger(__name__)

__all__ = ["ensure_schedules", "submit_due", "tick"]

SCHEDULES = {
    "sluice: tick (periodic submissions, reconciler)": ("execution.schedules.tick", "I", 1),
    "sluice: retention clean-up": ("execution.schedules.purge", "H", None),
}


def tick(now=None):
    """Submit due periodic submissions and run the reconciler once."""
    submitted = submit_due(now)
    reconcile.reconcile(now)
    return submitted


def purge():
    """Hourly: delete submissions past SLUICE_RETENTION_DAYS, forget Idempotency-Keys past their hours."""
    idempotency.expire()
    return retention.purge()


def submit_due(now=None):
    """Make every periodic submission that is due; return the new submissions' ids."""
    now = now or timezone.now()
    made = []
    for periodic in PeriodicSubmission.objects.filter(enabled=True, next_run_at__lte=now).select_related("job"):
        following = max(periodic.next_run_at, now - timedelta(minutes=periodic.every_minutes)) + timedelta(minutes=periodic.every_minutes)
        # Claim this run: only the ticker that moves next_run_at on makes the submission.
        if not PeriodicSubmission.objects.filter(pk=periodic.pk, next_run_at=periodic.next_run_at).update(next_run_at=following):
            continue
        try:
            submission = engine.submit(periodic.job, params=periodic.params, submission_name=periodic.submission_name, priority=periodic.priority)
        except SubmissionInvalid as error:
            PeriodicSubmission.objects.filter(pk=periodic.pk).update(last_error=str(error))
            log.warning("Periodic submission %s of job '%s' was refused: %s", periodic.pk, periodic.job.name, error)
            continue
        PeriodicSubmission.objects.filter(pk=periodic.pk).update(last_submission=submission, last_error="")
        dispatch.start(submission)
        made.append(submission.pk)
    return made


def ensure_schedules(**kwargs):
    """Create the django-q2 schedules Sluice relies on, once (after migrate)."""
    from django_q.models import Schedule

    for name, (func, schedule_type, minutes) in SCHEDULES.items():
        Schedule.objects.get_or_create(name=name, defaults={"func": func, "schedule_type": schedule_type, "minutes": minutes, "repeats": -1})


def connect():
    post_migrate.connect(ensure_schedules, dispatch_uid="sluice-schedules")
