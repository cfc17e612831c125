"""The lists of submissions: mine when logged in, this browser's otherwise; filters, search, pages, live status."""
import datetime
import re
import uuid

import pytest
from django.test import Client

from execution import engine
from execution.models import Submission
from tests.factories import make_job, make_task
from web.lists import PAGE_SIZE, RECENT_KEY, RECENT_LIMIT

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs():
    return make_job("alpha", steps=[make_task("a", "true")]), make_job("beta", steps=[make_task("b", "true")])


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def remembering(*submissions):
    client = Client()
    session = client.session
    session[RECENT_KEY] = [str(s.uuid) for s in submissions]
    session.save()
    return client


def uuids(html):
    return set(re.findall(r'<tr data-uuid="([0-9a-f-]{36})"', html))


def test_my_submissions_never_shows_another_users(owner, other_user, staff, jobs):
    mine = engine.submit(jobs[0], user=owner)
    theirs = engine.submit(jobs[0], user=other_user)
    anonymous = engine.submit(jobs[0])
    assert uuids(logged_in(owner).get("/submissions/").content.decode()) == {str(mine.uuid)}
    # Staff may open anything, but their list is theirs too.
    assert uuids(logged_in(staff).get("/submissions/").content.decode()) == set()
    assert theirs and anonymous


def test_an_anonymous_visitor_sees_only_what_this_browser_submitted(owner, jobs):
    seen = engine.submit(jobs[0], submission_name="from this browser")
    unseen = engine.submit(jobs[0], submission_name="from elsewhere")
    owned = engine.submit(jobs[0], user=owner)
    html = remembering(seen, owned).get("/submissions/").content.decode()
    assert "Recent in this browser" in html
    # A remembered uuid of a logged-in user's submission does not show it.
    assert uuids(html) == {str(seen.uuid)} and unseen


def test_the_form_remembers_at_most_the_newest_hundred(client, jobs):
    session = client.session
    older = [str(uuid.uuid4()) for _ in range(RECENT_LIMIT)]
    session[RECENT_KEY] = older
    session.save()
    for _ in range(2):
        assert client.post("/jobs/alpha/", {}).status_code == 302
    newest = [str(s.uuid) for s in Submission.objects.order_by("-id")]
    assert client.session[RECENT_KEY] == newest + older[:RECENT_LIMIT - 2]


def test_the_header_links_the_list_for_everyone(owner, jobs):
    assert '<a href="/submissions/">Recent</a>' in Client().get("/").content.decode()
    assert '<a href="/submissions/">My submissions</a>' in logged_in(owner).get("/").content.decode()


def test_filters_by_status_job_and_date(owner, jobs):
    alpha, beta = jobs
    first = engine.submit(alpha, user=owner)
    second = engine.submit(beta, user=owner)
    Submission.objects.filter(pk=first.pk).update(status="complete", created_at=datetime.datetime(2026, 1, 5, 12, tzinfo=datetime.UTC))
    client = logged_in(owner)
    assert uuids(client.get("/submissions/?status=complete").content.decode()) == {str(first.uuid)}
    assert uuids(client.get("/submissions/?job=beta").content.decode()) == {str(second.uuid)}
    assert uuids(client.get("/submissions/?made_to=2026-01-31").content.decode()) == {str(first.uuid)}
    assert uuids(client.get("/submissions/?made_from=2026-01-06").content.decode()) == {str(second.uuid)}
    assert uuids(client.get("/submissions/?made_from=2026-01-05&made_to=2026-01-05&job=alpha").content.decode()) == {str(first.uuid)}


def test_the_job_filter_offers_only_jobs_in_the_list(owner, other_user, jobs):
    engine.submit(jobs[0], user=owner)
    engine.submit(jobs[1], user=other_user)
    html = logged_in(owner).get("/submissions/").content.decode()
    assert '<option value="alpha">alpha</option>' in html and 'value="beta"' not in html


def test_search_finds_submission_job_and_file_names(owner, jobs):
    named = engine.submit(jobs[0], user=owner, submission_name="Liver samples")
    other = engine.submit(jobs[1], user=owner, submission_name="kidney")
    Submission.objects.filter(pk=other.pk).update(upload_name="reads_2026.fastq")
    client = logged_in(owner)
    assert uuids(client.get("/submissions/?q=liver").content.decode()) == {str(named.uuid)}
    assert uuids(client.get("/submissions/?q=beta").content.decode()) == {str(other.uuid)}
    assert uuids(client.get("/submissions/?q=reads_2026").content.decode()) == {str(other.uuid)}
    html = client.get("/submissions/?q=nothing-like-it").content.decode()
    assert uuids(html) == set() and "Nothing matches." in html


def test_pages_of_submissions_keep_the_filter(owner, jobs):
    made = [engine.submit(jobs[0], user=owner, submission_name=f"n{index}") for index in range(PAGE_SIZE + 3)]
    client = logged_in(owner)
    first = client.get("/submissions/?job=alpha").content.decode()
    assert len(uuids(first)) == PAGE_SIZE and "page 1 of 2" in first
    assert 'href="?job=alpha&amp;page=2"' in first
    second = client.get("/submissions/?job=alpha&page=2").content.decode()
    assert uuids(second) == {str(s.uuid) for s in made[:3]}  # the oldest three, newest first before them


def test_the_status_answer_covers_only_visible_rows(owner, other_user, jobs):
    mine = engine.submit(jobs[0], user=owner)
    theirs = engine.submit(jobs[0], user=other_user)
    Submission.objects.filter(pk=mine.pk).update(status="running")
    answer = logged_in(owner).get(f"/submissions/status/?uuid={mine.uuid}&uuid={theirs.uuid}")
    assert answer.status_code == 200
    assert answer.json() == {str(mine.uuid): {"status": "running", "finished": "", "active": True}}
    anonymous = engine.submit(jobs[0])
    assert remembering(anonymous).get(f"/submissions/status/?uuid={mine.uuid}&uuid={anonymous.uuid}").json().keys() == {str(anonymous.uuid)}


def test_a_bad_uuid_in_a_status_request_is_a_400_saying_so(client):
    answer = client.get("/submissions/status/?uuid=nope")
    assert answer.status_code == 400 and "not a submission uuid" in answer.json()["detail"]


def test_active_rows_are_marked_for_the_refresh_script_with_no_inline_script(owner, jobs):
    running = engine.submit(jobs[0], user=owner)
    done = engine.submit(jobs[1], user=owner)
    Submission.objects.filter(pk=running.pk).update(status="running")
    Submission.objects.filter(pk=done.pk).update(status="complete")
    html = logged_in(owner).get("/submissions/").content.decode()
    assert f'<tr data-uuid="{running.uuid}" data-active="1">' in html
    assert f'<tr data-uuid="{done.uuid}">' in html
    assert '<script src="/static/web/lists.js" defer></script>' in html
    assert not re.search(r"<script>|<script(?![^>]*src=)[^>]*>", html)


def test_rows_link_to_run_again(owner, jobs):
    made = engine.submit(jobs[0], user=owner)
    assert f'href="/jobs/alpha/?again={made.uuid}"' in logged_in(owner).get("/submissions/").content.decode()


def test_a_filter_value_that_makes_no_sense_says_so_and_is_no_error(owner, jobs):
    engine.submit(jobs[0], user=owner)
    response = logged_in(owner).get("/submissions/?made_from=yesterday&job=nope&status=bogus")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Enter a valid date." in html and "Select a valid choice." in html
    assert uuids(html) == set()
