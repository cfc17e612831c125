"""Completion e-mails when the mail server cannot be reached: the worker goes on, the submission says so, the address is kept."""
import pytest

from execution import engine, notify
from execution.models import Batch, Submission
from tests.factories import make_job, make_task
from tests.realservers.servers import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_mail_server(settings):
    """SMTP to a loopback port nothing listens on: every send is refused by the system."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2


def finished(job, **fields):
    submission = engine.submit(job, email="someone@example.org", **fields)
    Submission.objects.filter(pk=submission.pk).update(status="complete", last_message="complete: 1 of 1 steps done")
    return submission


def test_a_submission_whose_mail_cannot_be_sent_says_so_and_keeps_the_address(no_mail_server):
    submission = finished(make_job("quiet", steps=[make_task("t")]))
    assert notify.submission_finished(submission.pk) is False
    submission.refresh_from_db()
    assert submission.email == "someone@example.org"
    assert submission.messages.filter(level="warning", text__startswith="could not send the completion e-mail: ").exists()


def test_a_batch_whose_mail_cannot_be_sent_says_so_and_keeps_the_address(no_mail_server):
    job = make_job("quiet_aa", steps=[make_task("t")], compat="aa")
    submission = finished(job, batch=Batch.objects.create())
    assert notify.submission_finished(submission.pk) is False
    submission.refresh_from_db()
    assert submission.email == "someone@example.org"
    assert submission.messages.filter(level="warning", text__startswith="could not send the batch's e-mail: ").exists()
