"""Catalogue operations that span several rows: copying a job."""
from django.db import transaction

from .models import Job

__all__ = ["copy_name", "duplicate_job"]


def copy_name(name):
    """Return ``<name>-copy``, or ``<name>-copy-2``, ``-3``.. when that is taken."""
    limit = Job._meta.get_field("name").max_length
    number = 1
    while True:
        suffix = "-copy" if number == 1 else f"-copy-{number}"
        # Shorten the original rather than overflow the column on PostgreSQL.
        candidate = name[: limit - len(suffix)] + suffix
        if not Job.objects.filter(name=candidate).exists():
            return candidate
        number += 1


def duplicate_job(job, new_name=None):
    """Copy ``job`` with its steps, validators and promises; the copy is not runnable.

    Every column is copied, so fields added to these models later come along.

    Raises:
        ValidationError: ``new_name`` is taken or not a valid name.
    """
    with transaction.atomic():
        # A fresh instance, so the caller's ``job`` keeps its primary key.
        copy = Job.objects.get(pk=job.pk)
        copy.pk = None
        copy._state.adding = True
        copy.name = new_name or copy_name(job.name)
        copy.runnable = False
        copy.full_clean()
        copy.save()
        for related in (job.steps, job.validators, job.promises):
            _copy_rows(related.all(), copy)
    return copy


def _copy_rows(queryset, job):
    """Insert copies of the rows of ``queryset`` belonging to ``job``, in the same order."""
    rows = list(queryset)
    for row in rows:
        row.pk = None
        row._state.adding = True
        row.job = job
    queryset.model.objects.bulk_create(rows)
