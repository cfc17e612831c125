"""Tell a submitter by e-mail that their submission has finished (or, for A_A's jobs, their batch)."""
import logging
import smtplib

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from jobs.models import Compat

from .models import Batch, Message, Submission
from .states import SubmissionStatus

log = logging.getLogger(__name__)


def submission_finished(submission_id):
    """Mail the submitter (if they gave an address) a link to the results page.

    A mail server that is down must not stop the worker: the failure is logged
    and recorded on the submission instead.
    """
    submission = Submission.objects.select_related("job").get(pk=submission_id)
    if submission.batch_id is not None and submission.job.compat == Compat.AA:
        return batch_finished(submission)
    if not submission.email:
        return False
    link = f"{settings.SLUICE_BASE_URL}/submissions/{submission.uuid}/"
    name = f" '{submission.submission_name}'" if submission.submission_name else ""
    body = (
        f"Your submission{name} to job '{submission.job.name}' finished: {submission.status}.\n\n"
        f"{submission.last_message}\n\nResults: {link}\n"
    )
    subject = f"Sluice: {submission.job.name} {submission.status}"
    return _send(submission, subject, body, submission.email, "the completion e-mail", Submission.objects.filter(pk=submission_id))


BATCH_MAIL_SENT = "the batch's e-mail was sent"
FAILED = (SubmissionStatus.ERROR, SubmissionStatus.CRASH, SubmissionStatus.CANCELLED)


def batch_finished(submission):
    """A_A's batch e-mail (its tasks.py ``__handle_batch_email``), once per batch.

    It goes when the batch's A_A state becomes Complete, Error or Crash: when the
    last submission completes, or at the first failure. The subject is
    ``<job> : SLUICE_AA_EMAIL_SUBJECT: <batch UUID>``; the body is
    SLUICE_AA_EMAIL_MESSAGE followed by the UUID, or A_A's failure text with the
    failed submission's last message. A_A sent it again each time a later
    submission of an already failed batch ended; Sluice sends it once (the batch's
    row is locked while that is decided).
    """
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=submission.batch_id)
        members = list(Submission.objects.filter(batch=batch).order_by("pk"))
        failed = next((member for member in members if member.status in FAILED), None)
        if failed is None and any(member.is_active for member in members):
            return False
        address = next((member.email for member in members if member.email), "")
        if not address or Message.objects.filter(submission__batch=batch, text=BATCH_MAIL_SENT).exists():
            return False
        Message.objects.create(submission=submission, text=BATCH_MAIL_SENT)
    if failed is None:
        body = f"{settings.SLUICE_AA_EMAIL_MESSAGE}{batch.uuid}"
    else:
        body = (
            f"Job {batch.uuid} has failed\n\nPlease contact the server administrator with the job ID and the following error message\n\n"
            f"{failed.last_message}"
        )
    subject = f"{submission.job.name} : {settings.SLUICE_AA_EMAIL_SUBJECT}: {batch.uuid}"
    return _send(submission, subject, body, address, "the batch's e-mail", Submission.objects.filter(batch=batch))


def _send(submission, subject, body, address, what, holders):
    """Mail ``address``; on success forget it on ``holders`` (EMAIL_DELETE_AFTER_USE), on failure say so on ``submission``."""
    try:
        send_mail(subject, body, None, [address])
    except (smtplib.SMTPException, OSError) as error:
        log.warning("Could not send %s of submission %s: %s", what, submission.uuid, error)
        Message.objects.create(submission=submission, level=Message.Level.WARNING, text=f"could not send {what}: {error}")
        return False
    if settings.EMAIL_DELETE_AFTER_USE:
        holders.update(email="")
    return True
