"""Lists of submissions read one page and count at most SLUICE_LIST_COUNT_LIMIT rows, however many there are."""
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from execution import intake
from execution.models import Submission
from tests.clients import client_for
from tests.factories import make_job, make_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def job():
    return make_job("alpha", steps=[make_task("a", "true")])


def made(job, user, count, **fields):
    return Submission.objects.bulk_create(
        Submission(job=job, user=user, status="complete", submission_name=f"liver {index}", **fields) for index in range(count)
    )


def test_the_api_counts_up_to_the_limit_and_then_says_there_are_more(settings, owner, job):
    settings.SLUICE_LIST_COUNT_LIMIT = 5
    made(job, owner, 8)
    body = client_for(owner).get("/api/submissions/?limit=2").json()
    assert (body["count"], body["count_exact"], len(body["results"])) == (5, False, 2)
    assert body["next"].endswith("/api/submissions/?limit=2&offset=2")
    further = client_for(owner).get("/api/submissions/?limit=2&offset=4").json()
    assert (further["count"], further["count_exact"]) == (6, False)  # more than the six seen so far
    last = client_for(owner).get("/api/submissions/?limit=3&offset=6").json()
    assert (last["count"], last["count_exact"], len(last["results"]), last["next"]) == (8, True, 2, None)


def test_under_the_limit_the_api_count_is_exact(settings, owner, job):
    settings.SLUICE_LIST_COUNT_LIMIT = 10
    made(job, owner, 8)
    body = client_for(owner).get("/api/submissions/?limit=3&offset=3").json()
    assert (body["count"], body["count_exact"], len(body["results"])) == (8, True, 3)
    assert body["next"].endswith("offset=6") and body["previous"].endswith("?limit=3")
    past = client_for(owner).get("/api/submissions/?limit=3&offset=20").json()
    assert (past["count"], past["count_exact"], past["results"], past["next"]) == (8, True, [], None)


@pytest.mark.parametrize("path", ["/api/submissions/", "/api/submissions/{uuid}/nodes/", "/api/submissions/{uuid}/messages/"])
def test_an_offset_no_database_can_hold_is_a_400_not_a_500(owner, job, path):
    submission = intake.accept("alpha", user=owner, ip="127.0.0.1")
    client = client_for(owner)
    for query in ("offset=3216612455506006228737967783936", "offset=1000000000000001", "limit=99999999999999999999999&offset=1000000000000001"):
        answer = client.get(path.format(uuid=submission.uuid) + "?" + query)
        assert answer.status_code == 400, answer.content
        assert answer.json()["errors"]["offset"] == [f"must be at most 1000000000000000; got {query.rsplit('=', 1)[1]}"]
    assert client.get(path.format(uuid=submission.uuid) + "?offset=1000000000000000").status_code == 200


def test_the_web_list_says_more_than_past_the_limit(settings, owner, job):
    settings.SLUICE_LIST_COUNT_LIMIT = 30
    made(job, owner, 60)
    client = Client()
    client.force_login(owner)
    html = client.get("/submissions/").content.decode()
    assert "More than 30 submissions; page 1." in html and "Page 1</span>" in html and 'href="?page=2"' in html
    assert len(re.findall(r'<tr data-uuid="', client.get("/submissions/?page=3").content.decode())) == 10  # the last page
    assert len(re.findall(r'<tr data-uuid="', client.get("/submissions/?page=9").content.decode())) == 25  # the first: the end is not known
    settings.SLUICE_LIST_COUNT_LIMIT = 100
    assert "page 3 of 3" in client.get("/submissions/?page=9").content.decode()  # past the end: the last page
    settings.SLUICE_LIST_COUNT_LIMIT = 30
    # past the limit the count is what the pages up to this one hold
    assert "More than 50 submissions match; page 2." in client.get("/submissions/?q=liver&page=2").content.decode()


def statements(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


LISTS = [
    "/api/submissions/?limit=5", "/api/submissions/?limit=5&status=complete,error", "/api/submissions/?limit=5&search=liver",
    "/api/submissions/?limit=5&ordering=-finished_at&offset=5", "/api/submissions/?limit=5&job=alpha",
    "/submissions/", "/submissions/?status=complete", "/submissions/?q=liver", "/submissions/?page=2",
]


def test_the_lists_take_the_same_statements_with_many_submissions_as_with_few(settings, owner, staff, job):
    settings.SLUICE_LIST_COUNT_LIMIT = 50
    made(job, owner, 60)
    mine, everyone = Client(), Client()
    mine.force_login(owner)
    everyone.force_login(staff)
    urls = [(mine, url) for url in LISTS] + [(everyone, "/api/submissions/?limit=5")]
    for client, url in urls:
        client.get(url)  # warm: sessions, content types
    few = [statements(client, url) for client, url in urls]
    made(job, owner, 300)
    assert [statements(client, url) for client, url in urls] == few


@pytest.mark.skipif(connection.vendor != "sqlite", reason="reads SQLite's plans")
def test_the_quota_counts_and_the_lists_pages_are_answered_by_indexes(owner, job):
    def plan(queryset):
        return queryset.explain()

    # as .count() asks, without the ordering
    assert "submission_user_status" in plan(intake._active(owner, None).order_by())
    assert "submission_ip_status" in plan(intake._active(None, "192.0.2.1").order_by())
    mine = Submission.objects.filter(user=owner)
    for ordered, index in ((mine, "submission_user_newest"), (mine.order_by("-finished_at", "-id"), "submission_user_finished"),
                           (mine.filter(job=job), "submission_user_job")):
        found = plan(ordered[:25])
        assert index in found and "TEMP B-TREE" not in found, found
