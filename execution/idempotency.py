"""``Idempotency-Key``: a client that retries a submission after a lost answer gets the first answer.

A key belongs to its submitter (a user, or an anonymous submitter's address)
and names one request: the first POST with it creates the submission and
records the key in the same transaction; a later POST with the same key and
the same request creates nothing and is answered with what the first made.
The same key with a different request is refused, since answering it with the
first request's submission would hide that the new one never ran. Keys are
forgotten after SLUICE_IDEMPOTENCY_HOURS.
"""
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .errors import IdempotencyKeyInvalid, IdempotencyKeyReused
from .models import IdempotencyKey

__all__ = ["Key", "KeyTaken", "earlier", "expire", "fingerprint", "parse", "remember"]

LIMIT = IdempotencyKey._meta.get_field("key").max_length


class KeyTaken(Exception):
    """Another request with the same key committed first; its result is the answer."""


@dataclass(frozen=True)
class Key:
    owner: str
    value: str
    fingerprint: str


def parse(header, user, ip, request_fingerprint):
    """The Key a request's ``Idempotency-Key`` header gives, or None without one.

    The value is 1 to 255 visible ASCII characters; the form of the IETF
    draft, a quoted string (``"abc"``), is read as its content.

    Raises:
        IdempotencyKeyInvalid: the header is empty, too long or has other characters.
    """
    if header is None:
        return None
    value = header.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value:
        raise IdempotencyKeyInvalid("the Idempotency-Key header is empty; send 1 to 255 visible ASCII characters, e.g. a UUID")
    if len(value) > LIMIT:
        raise IdempotencyKeyInvalid(f"the Idempotency-Key header is {len(value)} characters; at most {LIMIT}")
    if not all("!" <= char <= "~" for char in value):
        raise IdempotencyKeyInvalid("the Idempotency-Key header may only have visible ASCII characters (no spaces or controls)")
    owner = f"user:{user.pk}" if user is not None and user.is_authenticated else f"ip:{ip}"
    return Key(owner, value, request_fingerprint)


def fingerprint(fields, params, upload=None):
    """A digest of what a submission request asks for: its fields, parameters and upload.

    ``upload`` is bytes or a file (read in pieces, then rewound for whoever stores it).
    """
    digest = hashlib.sha256(json.dumps([fields, params], sort_keys=True, default=str).encode())
    if isinstance(upload, bytes):
        digest.update(upload)
    elif upload is not None:
        for chunk in upload.chunks():
            digest.update(chunk)
        upload.seek(0)
    return digest.hexdigest()


def earlier(key):
    """What the first request with ``key`` made (a Submission or a Batch), or None.

    Raises:
        IdempotencyKeyReused: the key was first used with a different request.
    """
    if key is None:
        return None
    row = IdempotencyKey.objects.filter(owner=key.owner, key=key.value, created_at__gte=_cutoff()).select_related("submission", "batch").first()
    if row is None:
        return None
    if row.fingerprint != key.fingerprint:
        raise IdempotencyKeyReused(key.value)
    return row.batch or row.submission


def remember(key, made):
    """Record ``key`` as having made ``made``, in the caller's transaction.

    An expired row with the same key is replaced.

    Raises:
        KeyTaken: a request with the same key raced past ``earlier`` and
            committed first (the unique constraint); the caller rolls back
            and answers with what that one made.
    """
    if key is None:
        return
    IdempotencyKey.objects.filter(owner=key.owner, key=key.value, created_at__lt=_cutoff()).delete()
    fields = {"batch": made} if made.__class__.__name__ == "Batch" else {"submission": made}
    try:
        with transaction.atomic():  # a savepoint, so that only this insert's failure is read as a lost race
            IdempotencyKey.objects.create(owner=key.owner, key=key.value, fingerprint=key.fingerprint, **fields)
    except IntegrityError:
        raise KeyTaken(key.value) from None


def expire(now=None):
    """Forget keys older than SLUICE_IDEMPOTENCY_HOURS; return how many."""
    count, _ = IdempotencyKey.objects.filter(created_at__lt=_cutoff(now)).delete()
    return count


def _cutoff(now=None):
    return (now or timezone.now()) - timedelta(hours=settings.SLUICE_IDEMPOTENCY_HOURS)

