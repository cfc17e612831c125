"""Swagger UI's "Try it out" submits a job with parameters, as a form and as JSON."""
import json

import pytest

from execution.models import Submission
from tests.browser_support import chromium, tab, visit, watch_policy  # noqa: F401
from tests.factories import make_job, make_parameter, make_task

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def tagging(transactional_db):
    tag = make_task("tag", "printf '%s %s\\n' $P1 $P2 > $O1", out_glob=".tagged", description="Tag.")
    make_parameter(tag, "label", switchless=True, default="plain", description="A word to write first.")
    make_parameter(tag, "times", switchless=True, type="int", default="1")
    return make_job("tagging", steps=[tag])


def open_submit(tab, live_server):
    seen = watch_policy(tab)
    visit(tab, f"{live_server.url}/api/docs/")
    operation = tab.locator("#operations-submissions-submissions_create")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    return operation, seen


def executed(tab, operation):
    with tab.expect_response(lambda response: response.url.endswith("/api/submissions/") and response.request.method == "POST") as answer:
        operation.get_by_role("button", name="Execute").click()
    return answer.value


def test_swagger_submits_a_form_with_job_parameters(live_server, tab, tagging):
    operation, seen = open_submit(tab, live_server)
    operation.locator("select.content-type").first.select_option("multipart/form-data")
    job = operation.locator('tr[data-property-name="job"] input[type=text]')
    assert job.input_value() == "tagging"  # the first job; the other fields start empty, so only what is typed is sent
    assert operation.locator('tr[data-property-name="submission_name"] input[type=text]').input_value() == ""
    operation.locator('tr[data-property-name="tag_label"] input[type=text]').fill("swagger")
    operation.locator('tr[data-property-name="tag_times"] input[type=text]').fill("4")
    response = executed(tab, operation)
    assert response.status == 201, response.text()
    assert response.request.headers["content-type"].startswith("multipart/form-data")
    submission = Submission.objects.get(uuid=response.json()["uuid"])
    assert submission.params == {"tag_label": "swagger", "tag_times": 4}
    assert seen == []


def test_swagger_submits_json_from_a_jobs_example(live_server, tab, tagging):
    operation, seen = open_submit(tab, live_server)
    operation.locator("select.content-type").first.select_option("application/json")
    operation.locator(".examples-select select").first.select_option("tagging")
    body = operation.locator("textarea.body-param__text")
    sent = json.loads(body.input_value())
    assert sent == {"job": "tagging", "tag_label": "plain", "tag_times": 1}
    body.fill(json.dumps({**sent, "tag_times": 7}))
    response = executed(tab, operation)
    assert response.status == 201, response.text()
    assert Submission.objects.get(uuid=response.json()["uuid"]).params == {"tag_label": "plain", "tag_times": 7}
    assert seen == []
