"""Jobs as submitting needs them, kept by each process while the catalogue stays as it was.

Loading a job with its steps, tasks, backends, parameters and validators
takes four queries whose compilation is a large part of what a small
submission costs. So each process keeps the jobs it has loaded, each with the
catalogue's revision at the time, and a lookup reads only the revision (one
small query) to know whether what it holds is still true.

The revision is a random 63-bit number in a one-row table, replaced by every
save or delete of a catalogue row, in the same transaction as the change: a reader sees
either the old rows with the old number or the new rows with a new one,
whichever process made the change (the admin in a web worker, ``loadjobs``
on the command line). A random number rather than a counter, so that a
change rolled back and a later one never share a number.

A change made without model signals (``QuerySet.update()``,
``bulk_create()``, raw SQL) must call ``changed()``; when the row is missing
(a flushed test database) nothing is cached until a change writes it again.
"""
import secrets
import threading

from django.db import IntegrityError, connection, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

__all__ = ["changed", "connect", "job", "revision"]

# Jobs held per process: enough for any real catalogue; past it the cache starts again.
LIMIT = 512
ROW = 1

_held = {}  # job name -> (revision, Job)
_lock = threading.Lock()


def job(name):
    """The job called ``name``, loaded as ``Job.for_submission()`` loads it.

    The instance is shared by every thread of the process while the
    catalogue is unchanged: read it, never change it.

    Raises:
        Job.DoesNotExist: there is no such job.
    """
    from .models import Job

    now = revision()
    held = _held.get(name)
    if now is not None and held is not None and held[0] == now:
        return held[1]
    found = Job.for_submission().get(name=name)
    if now is not None:
        with _lock:
            if len(_held) >= LIMIT:
                _held.clear()
            _held[name] = (now, found)
    return found


def revision():
    """The catalogue's revision now, or None when its row is missing."""
    from .models import CatalogueRevision

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT token FROM {connection.ops.quote_name(CatalogueRevision._meta.db_table)} WHERE id = %s", [ROW])
        row = cursor.fetchone()
    return row[0] if row else None


def changed(**kwargs):
    """Give the catalogue a new revision, in the current transaction (a signal receiver, or called after a bulk change)."""
    from .models import CatalogueRevision

    if kwargs.get("sender") is CatalogueRevision:
        return
    token, now = secrets.randbits(63), timezone.now()
    if CatalogueRevision.objects.filter(pk=ROW).update(token=token, changed_at=now):
        return
    try:
        with transaction.atomic():
            CatalogueRevision.objects.create(pk=ROW, token=token, changed_at=now)
    except IntegrityError:  # another transaction wrote the row first
        CatalogueRevision.objects.filter(pk=ROW).update(token=token, changed_at=now)


def connect():
    """Call ``changed`` on every save and delete of a catalogue model (the app's models, not their historical versions in migrations)."""
    from django.apps import apps

    from .models import CatalogueRevision

    for model in apps.get_app_config("jobs").get_models():
        if model is CatalogueRevision:
            continue
        post_save.connect(changed, sender=model, dispatch_uid=f"catalogue-saved-{model._meta.label}")
        post_delete.connect(changed, sender=model, dispatch_uid=f"catalogue-deleted-{model._meta.label}")
