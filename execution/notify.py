"""Tell a submitter by e-mail that their submission has finished."""
import logging
import smtplib

from django.conf import settings
from django.core.mail import send_mail

from .models import Message, Submission

log = logging.getLogger(__name__)


def submission_finished(submission_id):
    """Mail the submitter (if they gave an address) a link to the results page.

    A mail server that is down must not stop the worker: the failure is logged
    and recorded on the submission instead.
    """
    submission = Submission.objects.select_related("job").get(pk=submission_id)
    if not submission.email:
        return False
    link = f"{settings.SLUICE_BASE_URL}/submissions/{submission.uuid}/"
    name = f" '{submission.submission_name}'" if submission.submission_name else ""
    body = (
        f"Your submission{name} to job '{submission.job.name}' finished: {submission.status}.\n\n"
        f"{submission.last_message}\n\nResults: {link}\n"
    )
    try:
        send_mail(f"Sluice: {submission.job.name} {submission.status}", body, None, [submission.email])
    except (smtplib.SMTPException, OSError) as error:
        log.warning("Could not mail submission %s's submitter: %s", submission.uuid, error)
        Message.objects.create(submission=submission, level=Message.Level.WARNING, text=f"could not send the completion e-mail: {error}")
        return False
    if settings.EMAIL_DELETE_AFTER_USE:
        Submission.objects.filter(pk=submission_id).update(email="")
    return True
