"""Accept submissions from the outside world: one job or a batch, with quotas.

The API (and any other front door) parses the request and calls ``accept``;
everything a submitter can get wrong is decided here and reported with the
field it concerns.
"""
import ipaddress

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import connection, transaction
from django.db.models import Q

from . import dispatch, engine, idempotency, statements
from .errors import LoginRequired, QuotaExceeded, SubmissionInvalid, UploadTooLarge
from .models import Batch, Priority, Submission
from .states import SubmissionStatus

__all__ = ["FIELDS", "accept", "check_quota", "priority_for", "upload_size"]

# Request fields that are not parameters.
FIELDS = ("job", "submission_name", "email", "input_data")
NAME_LIMIT = Submission._meta.get_field("submission_name").max_length


def accept(job_field, *, params=None, input_data=None, submission_name="", email="", user=None, ip=None, key=None):
    """Validate and start a submission, or a batch when ``job_field`` names several jobs.

    ``input_data`` is the upload as bytes or as a file (an uploaded one,
    say), which is copied to storage without being read into memory.
    Returns the Submission, or the Batch. Nothing is stored unless everything is valid.
    With an idempotency ``key`` (``idempotency.Key``) that an earlier request
    used, nothing is made and the earlier request's Submission or Batch is
    returned; ``replayed`` on the returned object says which happened.

    Raises:
        IdempotencyKeyReused: ``key`` was first used with a different request.
        SubmissionInvalid: keyed by field (job, email, input_data, a parameter's REST name…).
        LoginRequired: a job needs a logged-in user.
        UploadTooLarge: the upload is over SLUICE_MAX_UPLOAD_BYTES.
        QuotaExceeded: the submitter is at QUEUE_HARD_LIMIT.
    """
    params = dict(params or {})
    replay = idempotency.earlier(key)  # before validating: what was accepted once stays accepted
    if replay is not None:
        return _replayed(replay)
    _check_text(job_field, submission_name, email, params)
    jobs = _jobs(job_field)
    _check_fields(submission_name, email)
    if not (user and user.is_authenticated) and (settings.SLUICE_LOGIN_REQUIRED or any(job.login_required for job in jobs)):
        gated = next((job.name for job in jobs if job.login_required), None)
        raise LoginRequired(f"job '{gated}' needs you to log in" if gated else "this server needs you to log in to submit")
    size = upload_size(input_data)
    if size > settings.SLUICE_MAX_UPLOAD_BYTES:
        raise UploadTooLarge(size, settings.SLUICE_MAX_UPLOAD_BYTES)
    taken = {job: {parameter.rest_name for parameter in job.parameters()} for job in jobs}
    unknown = set(params) - set().union(*taken.values())
    if unknown:
        names = ", ".join(sorted(set().union(*taken.values()))) or "none"
        raise SubmissionInvalid({name: f"no job in this submission has a parameter '{name}'; the parameters are: {names}" for name in sorted(unknown)})
    limit = settings.SLUICE_MAX_VALUE_LENGTH
    too_long = {name: f"must be at most {limit} characters, got {len(str(value))}" for name, value in params.items() if len(str(value)) > limit}
    if too_long:
        raise SubmissionInvalid(too_long)
    common = {"input_data": input_data, "submission_name": submission_name, "email": email, "user": user if user and user.is_authenticated else None, "ip": ip}
    try:
        with transaction.atomic():
            # One submitter's requests take turns when there is a quota count to keep true, or a key
            # whose retries must not both pass the check below; otherwise they run side by side.
            if settings.QUEUE_HARD_LIMIT or key is not None:
                _serialise(user, ip)
            replay = idempotency.earlier(key)  # under the submitter's lock: a retry that raced the first
            if replay is not None:
                return _replayed(replay)
            priority = priority_for(user, ip, adding=len(jobs))
            common["priority"] = priority
            batch = Batch.objects.create() if len(jobs) > 1 else None
            submissions = [
                engine.submit(job, params={name: value for name, value in params.items() if name in taken[job]}, batch=batch, **common) for job in jobs
            ]
            idempotency.remember(key, batch or submissions[0])
            for submission in submissions:
                dispatch.start(submission)  # sent once the transaction commits
    except idempotency.KeyTaken:  # a request with the same key committed first; the lock above makes this rare
        return _replayed(idempotency.earlier(key))
    made = batch or submissions[0]
    made.replayed = False
    return made


def _replayed(made):
    made.replayed = True
    return made


def client_ip(meta):
    """The submitter's address: from SLUICE_CLIENT_IP_HEADER behind a proxy, else the connection's."""
    forwarded = meta.get(settings.SLUICE_CLIENT_IP_HEADER, "") if settings.SLUICE_CLIENT_IP_HEADER else ""
    for address in (forwarded.split(",")[0].strip(), meta.get("REMOTE_ADDR", "")):
        try:
            return str(ipaddress.ip_address(address))
        except ValueError:  # absent or forged: fall back to the connection's address
            continue
    return None


def upload_size(input_data):
    """Bytes in an upload given as bytes or as a file; 0 for none."""
    if input_data is None:
        return 0
    return len(input_data) if isinstance(input_data, (bytes, bytearray)) else input_data.size


def _check_text(job_field, submission_name, email, params):
    """Refuse NUL in any field, parameter name or value: no text column can hold it (PostgreSQL refuses it).

    Checked first, because the job names are looked up in the database.
    """
    nul = "must not contain NUL (\\u0000), which cannot be stored as text"
    errors = {name: nul for name, value in (("job", job_field), ("submission_name", submission_name), ("email", email)) if "\x00" in str(value or "")}
    for name, value in params.items():
        if "\x00" in str(name) or (isinstance(value, str) and "\x00" in value):
            errors[str(name).replace("\x00", "\\u0000")] = nul
    if errors:
        raise SubmissionInvalid(errors)


def _jobs(job_field):
    names = [name.strip() for name in str(job_field or "").split(",") if name.strip()]
    if not names:
        raise SubmissionInvalid({"job": "this field is required: the name of the job to run (comma-separated names make a batch)"})
    if len(set(names)) != len(names):
        raise SubmissionInvalid({"job": "a job is named twice"})
    jobs, errors = [], []
    for name in names:
        try:
            jobs.append(engine.job_by_name(name))
        except SubmissionInvalid as error:
            errors.extend(error.errors["job"])
    if errors:
        raise SubmissionInvalid({"job": errors})
    return jobs


def _check_fields(submission_name, email):
    errors = {}
    if len(submission_name) > NAME_LIMIT:
        errors["submission_name"] = f"must be at most {NAME_LIMIT} characters, got {len(submission_name)}"
    if email:
        try:
            EmailValidator()(email)
        except ValidationError:
            errors["email"] = f"{email[:80]!r} is not a valid e-mail address"
    if errors:
        raise SubmissionInvalid(errors)


def _serialise(user, ip):
    """Make concurrent submissions by one submitter take turns, so the quota count holds.

    SQLite already runs one writing transaction at a time (BEGIN IMMEDIATE);
    PostgreSQL gets a transaction-scoped advisory lock on the submitter.
    """
    if connection.vendor != "postgresql":
        return
    key = f"user:{user.pk}" if user is not None and user.is_authenticated else f"ip:{ip}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"sluice-quota:{key}"])


def check_quota(submission):
    """Count a submission that a control sets working again (restart, input) against its submitter's quota.

    Its submitter's other active submissions plus this one must stay within
    QUEUE_HARD_LIMIT, as if it were submitted now: restarting finished
    submissions must not get round the limit that submitting would meet.
    Runs in the control's transaction, under the same per-submitter lock.

    Raises:
        QuotaExceeded: the submitter is at the limit.
    """
    if not settings.QUEUE_HARD_LIMIT:
        return
    user = submission.user
    _serialise(user, submission.ip)
    active = _active(user, submission.ip).exclude(pk=submission.pk).count()
    if active + 1 > settings.QUEUE_HARD_LIMIT:
        raise QuotaExceeded(active, settings.QUEUE_HARD_LIMIT)


def _active(user, ip):
    mine = Q(user=user) if user is not None and user.is_authenticated else Q(user__isnull=True, ip=ip)
    return Submission.objects.filter(mine, status__in=SubmissionStatus.ACTIVE)


def _active_count(user, ip):
    """``_active(user, ip).count()``, by a statement built once (every submission asks)."""
    mine = {"user_id": user.pk} if user is not None and user.is_authenticated else {"user_id": None, "ip": ip}
    return statements.count(Submission, sorted(SubmissionStatus.ACTIVE), **mine)


def priority_for(user, ip, adding=1):
    """Pick the queue priority for ``adding`` new submissions by how many the submitter has active.

    Raises:
        QuotaExceeded: the new ones would take the submitter past QUEUE_HARD_LIMIT.
    """
    active = _active_count(user, ip)
    if settings.QUEUE_HARD_LIMIT and active + adding > settings.QUEUE_HARD_LIMIT:
        raise QuotaExceeded(active, settings.QUEUE_HARD_LIMIT, adding)
    if settings.QUEUE_HOG_SIZE and active >= settings.QUEUE_HOG_SIZE:
        return Priority.LOW
    if user is not None and user.is_authenticated and settings.SLUICE_LOGGED_IN_PRIORITY == Priority.HIGH:
        return Priority.HIGH
    return Priority.NORMAL
