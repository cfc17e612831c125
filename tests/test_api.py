"""The REST API: every endpoint, every error, every kind of caller."""
import json

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from knox.models import AuthToken
from rest_framework.test import APIClient

from execution import documents, engine
from execution.local import SynchronousRunner
from execution.models import Batch, Submission
from tests.conftest import settle, wait_for
from tests.clients import client_for, errors
from tests.factories import make_job, make_parameter, make_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def counting_job():
    task = make_task("count", "wc -l < $I1", in_glob=".input", stdout_glob=".count", description="Count lines.")
    make_parameter(task, "n", flag="-n", type="int", default="3", description="How many.")
    make_parameter(task, "mode", flag="--mode", type="choice", choices="fast,slow", required=True)
    return make_job("counting", steps=[task], description="Counts the lines of the upload.")


# --- catalogue ---------------------------------------------------------------------


def test_endpoints_list_runnable_jobs_with_their_parameters(api, counting_job):
    make_job("hidden", steps=[make_task("t", "true")], runnable=False)
    response = api.get("/api/endpoints/")
    assert response.status_code == 200
    [endpoint] = response.json()
    assert endpoint["job"] == "counting" and endpoint["takes_input"] is True
    assert endpoint["parameters"] == [
        {"name": "count_n", "type": "int", "default": 3, "required": False, "description": "How many.", "choices": []},
        {"name": "count_mode", "type": "choice", "default": None, "required": True, "description": "", "choices": ["fast", "slow"]},
    ]


def test_jobs_list_and_detail(api, counting_job):
    assert [job["name"] for job in api.get("/api/jobs/").json()] == ["counting"]
    detail = api.get("/api/jobs/counting/").json()
    assert detail["steps"] == [{"id": "count", "task": "count", "ordering": 0, "after": [], "enabled": True, "when": "", "foreach": {}, "params": {}}]
    assert [p["name"] for p in detail["parameters"]] == ["count_n", "count_mode"]


def test_an_unknown_job_is_a_json_404(api):
    response = api.get("/api/jobs/nope/")
    assert response.status_code == 404
    assert errors(response) == {}


def test_an_unknown_api_path_is_a_json_404(api):
    response = api.get("/api/nothing-here/")
    assert response.status_code == 404
    assert "nothing at /api/nothing-here/" in response.json()["detail"]


def test_job_graph_as_json_dot_and_svg(api):
    a, b, c = make_task("a", "true"), make_task("b", "true"), make_task("c", "true")
    make_job("fan", steps=[("a", a, {"ordering": 0}), ("b", b, {"ordering": 1}), ("c", c, {"ordering": 1, "enabled": False})])
    graph = api.get("/api/jobs/fan/graph/").json()
    assert [(n["key"], n["kind"], n["status"]) for n in graph["nodes"]] == [("a", "node", "pending"), ("b", "node", "pending"), ("c", "node", "skipped")]
    assert sorted((e["from"], e["to"], e["kind"]) for e in graph["edges"]) == [("a", "b", "edge"), ("a", "c", "edge")]
    dot = api.get("/api/jobs/fan/graph/?format=dot")
    assert dot["Content-Type"].startswith("text/vnd.graphviz") and "a -> b" in dot.content.decode()
    svg = api.get("/api/jobs/fan/graph/?format=svg")
    assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content and b">b<" in svg.content
    assert api.get("/api/jobs/fan/graph/?format=png").status_code == 400


# --- submitting ---------------------------------------------------------------------


def test_a_json_submission_is_accepted(api, counting_job):
    response = api.post("/api/submissions/", {"job": "counting", "input_data": "a\nb\n", "count_mode": "fast", "submission_name": "mine"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    submission = Submission.objects.get(uuid=body["uuid"])
    assert body["status"] == "submitted" and body["url"] == f"/api/submissions/{submission.uuid}/"
    assert response["Location"] == body["url"]
    assert submission.params == {"count_n": 3, "count_mode": "fast"}
    assert submission.submission_name == "mine"
    assert submission.nodes.get().status == "queued"
    assert submission.uuid.version == 4


def test_a_multipart_submission_stores_the_upload(api, counting_job):
    upload = SimpleUploadedFile("../../etc/passwd", b"x\ny\nz\n")
    response = api.post("/api/submissions/", {"job": "counting", "input_data": upload, "count_mode": "slow", "count_n": "7"}, format="multipart")
    assert response.status_code == 201, response.json()
    submission = Submission.objects.get(uuid=response.json()["uuid"])
    upload_result = submission.results.get(node__isnull=True)
    assert upload_result.name == f"{submission.uuid}.input"  # the client's file name chooses nothing
    assert "etc/passwd" not in upload_result.file.name
    assert submission.params["count_n"] == 7
    assert submission.upload_name == "passwd"  # kept to be shown, its directories dropped


def test_the_upload_name_is_kept_for_display_only(api, counting_job):
    upload = SimpleUploadedFile("fruit\u202e\x07.txt", b"apple\n")
    response = api.post("/api/submissions/", {"job": "counting", "input_data": upload, "count_mode": "fast"}, format="multipart")
    submission = Submission.objects.get(uuid=response.json()["uuid"])
    assert submission.upload_name == "fruit.txt"  # no control or direction characters
    assert submission.results.get(node__isnull=True).name == f"{submission.uuid}.input"


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({}, "job", "this field is required"),
        ({"job": "nope"}, "job", "there is no job 'nope'"),
        ({"job": "counting"}, "count_mode", "parameter 'count_mode' is required"),
        ({"job": "counting", "count_mode": "warp"}, "count_mode", "must be one of fast, slow; got 'warp'"),
        ({"job": "counting", "count_mode": "fast", "count_n": "many"}, "count_n", "must be an integer, got 'many'"),
        ({"job": "counting", "count_mode": "fast", "count_nn": "1"}, "count_nn", "no job in this submission has a parameter 'count_nn'"),
        ({"job": "counting", "count_mode": "fast", "email": "not-an-address"}, "email", "is not a valid e-mail address"),
        ({"job": "counting", "count_mode": "fast", "submission_name": "x" * 300}, "submission_name", "must be at most 256 characters"),
        ({"job": "counting", "count_mode": ["fast", "slow"]}, "count_mode", "must be a single value"),
        ({"job": "counting", "count_mode": "fast" * 3000}, "count_mode", "must be at most 10000 characters, got 12000"),
        ({"job": 5}, "job", "must be a string"),
        ({"job": "counting,counting"}, "job", "a job is named twice"),
    ],
)
def test_bad_submissions_get_400_naming_the_field(api, counting_job, body, field, message):
    response = api.post("/api/submissions/", body, format="json")
    assert response.status_code == 400
    assert message in " ".join(errors(response)[field])
    assert Submission.objects.count() == 0


def test_a_body_that_is_not_an_object_is_refused(api):
    response = api.post("/api/submissions/", [1, 2], format="json")
    assert response.status_code == 400
    assert "non_field_errors" in errors(response)


def test_malformed_json_is_a_400(api):
    response = api.post("/api/submissions/", data="{nope", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_a_job_that_is_not_runnable_refuses(api):
    make_job("off", steps=[make_task("t", "true")], runnable=False)
    response = api.post("/api/submissions/", {"job": "off"}, format="json")
    assert errors(response) == {"job": ["job 'off' is not runnable"]}


def test_a_validator_refusing_the_upload_is_named(api):
    job = make_job("needs_json", steps=[make_task("t", "true", in_glob=".input")])
    job.validators.create(validation_type="json")
    response = api.post("/api/submissions/", {"job": "needs_json", "input_data": "{broken"}, format="json")
    assert response.status_code == 400
    assert errors(response)["input_data"][0].startswith("validator 'json' rejected the upload: expected JSON but it does not parse")


def test_an_over_size_upload_is_a_413(api, settings, counting_job):
    settings.SLUICE_MAX_UPLOAD_BYTES = 10
    upload = SimpleUploadedFile("big.txt", b"x" * 11)
    response = api.post("/api/submissions/", {"job": "counting", "count_mode": "fast", "input_data": upload}, format="multipart")
    assert response.status_code == 413
    assert errors(response)["input_data"] == ["input_data is 11 bytes and the limit is 10"]
    assert Submission.objects.count() == 0


def test_comma_separated_jobs_make_a_batch(api, counting_job):
    make_job("other", steps=[make_task("other", "true")])
    response = api.post("/api/submissions/", {"job": "counting, other", "count_mode": "fast", "input_data": "a\n"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    batch = Batch.objects.get(uuid=body["uuid"])
    assert [item["job"] for item in body["submissions"]] == ["counting", "other"]
    assert batch.submissions.count() == 2
    fetched = api.get(f"/api/batches/{batch.uuid}/").json()
    assert fetched["status"] == "submitted" and len(fetched["submissions"]) == 2
    assert Submission.objects.get(job__name="other").params == {}


def test_a_batch_with_one_bad_job_stores_nothing(api, counting_job):
    response = api.post("/api/submissions/", {"job": "counting,nope", "count_mode": "fast"}, format="json")
    assert errors(response) == {"job": ["there is no job 'nope'"]}
    assert Submission.objects.count() == 0 and Batch.objects.count() == 0


# --- who may see what ----------------------------------------------------------------


def submission_of(user, job=None):
    job = job or make_job("owned", steps=[make_task("owned_t", "echo hi", stdout_glob=".txt")])
    return SynchronousRunner(job, user=user).init().process()


@pytest.mark.parametrize("path", ["", "graph/", "results/{result}/", "nodes/", "results/", "history/", "messages/"])
def test_a_users_submission_is_theirs_and_staffs_alone(owner, other_user, staff, path):
    submission = submission_of(owner)
    url = f"/api/submissions/{submission.uuid}/" + path.format(result=submission.results.get().pk)
    assert client_for(None).get(url).status_code == 404
    assert client_for(other_user).get(url).status_code == 404
    assert client_for(owner).get(url).status_code == 200
    assert client_for(staff).get(url).status_code == 200


def test_an_anonymous_submission_is_reachable_by_its_uuid(other_user):
    submission = submission_of(None)
    assert client_for(None).get(f"/api/submissions/{submission.uuid}/").status_code == 200
    assert client_for(other_user).get(f"/api/submissions/{submission.uuid}/").status_code == 200


def test_the_submission_list_is_the_callers_own(owner, other_user, staff):
    mine = submission_of(owner)
    job = mine.job
    theirs = submission_of(other_user, job)
    assert client_for(None).get("/api/submissions/").status_code == 401
    assert [item["uuid"] for item in client_for(owner).get("/api/submissions/").json()["results"]] == [str(mine.uuid)]
    assert {item["uuid"] for item in client_for(staff).get("/api/submissions/").json()["results"]} == {str(mine.uuid), str(theirs.uuid)}


def test_the_status_document_has_nodes_results_and_messages(owner):
    submission = submission_of(owner)
    document = client_for(owner).get(f"/api/submissions/{submission.uuid}/").json()
    assert document["status"] == "complete"
    assert document["nodes"][0]["key"] == "owned_t" and document["nodes"][0]["exit_code"] == 0
    [result] = document["results"]
    assert result["url"] == f"/api/submissions/{submission.uuid}/results/{submission.results.get().pk}/"
    assert document["messages"][-1]["text"] == "complete: 1 of 1 steps done"


def fan_out(width, user=None):
    """A finished submission of a foreach over ``width`` lines, each instance writing a result: width + 2 nodes."""
    each = make_task("each", "echo $VALUE", stdout_glob=".out")
    job = make_job("fan", steps=[("each", each, {"foreach": {"lines": ".input"}}), ("after", make_task("after_all", "true"), {"ordering": 1})])
    return SynchronousRunner(job, input="".join(f"{index}\n" for index in range(width)).encode(), user=user).init().process()


def walk(client, document, name):
    """Every entry of the document's list ``name``: its first page, then the pages its ``<name>_next`` leads to."""
    listed, following = list(document[name]), document[f"{name}_next"]
    while following:
        page = client.get(following)
        assert page.status_code == 200, page.content
        listed, following = listed + page.json()["results"], page.json()["next"]
    return listed


def test_a_large_submissions_document_lists_the_first_entries_their_count_and_where_the_rest_are(owner, settings):
    submission = fan_out(6, user=owner)
    settings.SLUICE_DOCUMENT_LIMIT = 3
    client = client_for(owner)
    document = client.get(f"/api/submissions/{submission.uuid}/").json()
    keys = list(submission.nodes.values_list("key", flat=True))
    assert [node["key"] for node in document["nodes"]] == keys[:3] and document["nodes_count"] == 8
    assert document["nodes_next"] == f"/api/submissions/{submission.uuid}/nodes/?limit=3&offset=3"
    assert (document["results_count"], len(document["results"])) == (submission.results.count(), 3) == (7, 3)  # the upload and six outputs
    assert document["messages_count"] == submission.messages.count() and len(document["messages"]) == 3
    assert (document["history"], document["history_count"], document["history_next"]) == ([], 0, None)
    whole = documents.submission_document(submission, limit=None)  # runjob --json's: every entry
    assert whole["nodes_next"] is whole["results_next"] is whole["messages_next"] is None
    for name in ("nodes", "results", "history", "messages"):
        assert walk(client, document, name) == whole[name], name
    assert [node["key"] for node in walk(client, document, "nodes")] == keys


def test_results_of_earlier_runs_are_counted_and_paged_apart_from_current_ones(owner, settings):
    submission = fan_out(6, user=owner)
    submission.results.filter(node__key__in=["each_0", "each_1", "each_2", "each_3"]).update(superseded=True)
    settings.SLUICE_DOCUMENT_LIMIT = 3
    client = client_for(owner)
    document = client.get(f"/api/submissions/{submission.uuid}/").json()
    assert [result["node"] for result in document["results"]] == [None, "each_4", "each_5"]
    assert (document["results_count"], document["results_next"]) == (3, None)
    assert [result["node"] for result in document["history"]] == ["each_0", "each_1", "each_2"] and document["history_count"] == 4
    assert [result["node"] for result in walk(client, document, "history")] == ["each_0", "each_1", "each_2", "each_3"]


def test_a_page_of_a_submissions_list_says_where_the_next_and_previous_pages_are(owner):
    submission = fan_out(6, user=owner)
    page = client_for(owner).get(f"/api/submissions/{submission.uuid}/nodes/?limit=2&offset=2").json()
    assert page["count"] == 8 and [node["key"] for node in page["results"]] == list(submission.nodes.values_list("key", flat=True))[2:4]
    assert page["next"] == f"http://testserver/api/submissions/{submission.uuid}/nodes/?limit=2&offset=4"
    assert page["previous"] == f"http://testserver/api/submissions/{submission.uuid}/nodes/?limit=2"
    assert client_for(owner).get(f"/api/submissions/{submission.uuid}/messages/?offset=1000").json()["results"] == []


def test_a_small_submissions_document_lists_everything(owner):
    submission = submission_of(owner)
    document = client_for(owner).get(f"/api/submissions/{submission.uuid}/").json()
    assert (document["nodes_count"], document["nodes_next"]) == (1, None)
    assert (document["results_count"], document["results_next"]) == (1, None)
    assert (document["messages_count"], document["messages_next"]) == (len(document["messages"]), None)


@pytest.mark.parametrize("name", ["nodes", "results", "history", "messages"])
def test_bad_paging_values_of_a_submissions_lists_are_refused(owner, name):
    submission = submission_of(owner)
    response = client_for(owner).get(f"/api/submissions/{submission.uuid}/{name}/?limit=0&offset=-1")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert errors(response) == {"limit": ["must be a whole number, at least 1; got '0'"], "offset": ["must be a whole number, at least 0; got '-1'"]}
    response = client_for(owner).get(f"/api/submissions/{submission.uuid}/{name}/?limit=abc")
    assert response.status_code == 400 and set(errors(response)) == {"limit"}


def test_results_download_as_attachments(owner):
    submission = submission_of(owner)
    result = submission.results.get()
    response = client_for(owner).get(f"/api/submissions/{submission.uuid}/results/{result.pk}/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{result.name}"'
    assert b"".join(response.streaming_content) == b"hi\n"
    other = submission_of(owner, submission.job)
    assert client_for(owner).get(f"/api/submissions/{other.uuid}/results/{result.pk}/").status_code == 404


def test_a_job_can_require_login(api, owner):
    make_job("private", steps=[make_task("t", "true")], login_required=True)
    response = api.post("/api/submissions/", {"job": "private"}, format="json")
    assert response.status_code == 401
    assert "needs you to log in" in response.json()["detail"]
    _, key = AuthToken.objects.create(user=owner)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = api.post("/api/submissions/", {"job": "private"}, format="json")
    assert response.status_code == 201
    assert Submission.objects.get().user == owner


def test_session_login_identifies_the_user(owner):
    make_job("j", steps=[make_task("t", "true")])
    client = APIClient(enforce_csrf_checks=False)
    client.login(username="owner", password="pw-owner-123")
    assert client.post("/api/submissions/", {"job": "j"}, format="json").status_code == 201
    assert Submission.objects.get().user == owner


# --- controls -------------------------------------------------------------------------


def test_cancel_by_owner_and_staff_but_not_others(owner, other_user, staff):
    job = make_job("slowjob", steps=[make_task("t", "sleep 5")])
    submission = engine.submit(job, user=owner)
    url = f"/api/submissions/{submission.uuid}/cancel/"
    assert client_for(None).post(url).status_code == 404
    assert client_for(other_user).post(url).status_code == 404
    response = client_for(owner).post(url)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client_for(staff).post(url)
    assert again.status_code == 409 and "already finished (cancelled)" in again.json()["detail"]
    submission.refresh_from_db()
    assert submission.status == "cancelled" and "cancelled by owner" in submission.last_message


# --- quotas and priorities ---------------------------------------------------------


def test_a_hard_limit_answers_429(api, settings):
    settings.QUEUE_HARD_LIMIT = 2
    make_job("j", steps=[make_task("t", "true")])
    assert [api.post("/api/submissions/", {"job": "j"}, format="json").status_code for _ in range(3)] == [201, 201, 429]


def test_a_queue_hog_is_demoted_and_logged_in_users_go_first(api, owner, settings):
    settings.QUEUE_HOG_SIZE = 1
    make_job("j", steps=[make_task("t", "true")])
    first = api.post("/api/submissions/", {"job": "j"}, format="json").json()
    second = api.post("/api/submissions/", {"job": "j"}, format="json").json()
    by_owner = client_for(owner).post("/api/submissions/", {"job": "j"}, format="json").json()
    priorities = {s.uuid.hex: s.priority for s in Submission.objects.all()}
    assert [priorities[item["uuid"].replace("-", "")] for item in (first, second, by_owner)] == ["normal", "low", "high"]


def test_quotas_count_anonymous_submissions_per_client_ip(settings):
    settings.QUEUE_HARD_LIMIT = 1
    make_job("j", steps=[make_task("t", "true")])
    one, two = APIClient(REMOTE_ADDR="10.0.0.1"), APIClient(REMOTE_ADDR="10.0.0.2")
    assert one.post("/api/submissions/", {"job": "j"}, format="json").status_code == 201
    assert one.post("/api/submissions/", {"job": "j"}, format="json").status_code == 429
    assert two.post("/api/submissions/", {"job": "j"}, format="json").status_code == 201


# --- end to end, e-mail, figures -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_submission_runs_to_complete_through_the_api(worker, settings):
    task = make_task("count", "wc -l < $I1", in_glob=".input", stdout_glob=".count")
    make_job("counting", steps=[task])
    client = APIClient()
    response = client.post("/api/submissions/", {"job": "counting", "input_data": "a\nb\nc\n", "email": "me@example.org"}, format="json")
    submission = wait_for(Submission.objects.get(uuid=response.json()["uuid"]))
    document = client.get(f"/api/submissions/{submission.uuid}/").json()
    assert document["status"] == "complete"
    [result] = [r for r in document["results"] if r["node"] == "count"]
    download = client.get(result["url"])
    assert b"".join(download.streaming_content).strip() == b"3"
    settle(worker)  # the mail goes after the status is set: wait for the worker to be done
    [message] = mail.outbox
    assert message.to == ["me@example.org"] and f"/submissions/{submission.uuid}/" in message.body
    assert "finished: complete" in message.body
    submission.refresh_from_db()
    assert submission.email == ""  # EMAIL_DELETE_AFTER_USE


@pytest.mark.django_db(transaction=True)
def test_submitted_values_never_reach_a_shell_unquoted(worker, tmp_path):
    task = make_task("echo", "printf '%s\\n' $P1 > $O1", out_glob=".out")
    make_parameter(task, "text", switchless=True)
    make_job("echo", steps=[task])
    hostile = [f"$(touch {tmp_path}/a)", f"`touch {tmp_path}/b`", f"; touch {tmp_path}/c", f"&& touch {tmp_path}/d", f"x\ntouch {tmp_path}/e", f"| touch {tmp_path}/f"]
    for value in hostile:
        response = APIClient().post("/api/submissions/", {"job": "echo", "echo_text": value}, format="json")
        submission = wait_for(Submission.objects.get(uuid=response.json()["uuid"]))
        with submission.results.get().file.open("rb") as handle:
            assert handle.read().decode() == value + "\n"
    assert list(tmp_path.glob("?")) == []


def test_jobtimes_report_mean_and_median(api):
    job = make_job("timed", steps=[make_task("t", "true")])
    SynchronousRunner(job).run(n=3)
    [row] = api.get("/api/jobtimes/").json()
    assert row["job"] == "timed" and row["count"] == 3
    assert 0 < row["median_seconds"] < 10 and row["mean_seconds"] > 0


def test_the_schema_and_the_docs_page_are_served_without_a_cdn(api, counting_job):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    document = json.loads(schema.content)
    assert "/api/submissions/" in document["paths"]
    assert document["components"]["schemas"]["Job_counting"]["properties"]["count_mode"]["enum"] == ["fast", "slow"]
    page = api.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower() and "http://" not in html and "https://" not in html


def test_bad_paging_values_are_refused(owner):
    response = client_for(owner).get("/api/submissions/?offset=null&limit=0")
    assert response.status_code == 400
    assert set(errors(response)) == {"offset", "limit"}
    response = client_for(owner).get("/api/submissions/?limit=%C2%B2&offset=%D9%A3")  # "²" and an Arabic-Indic three
    assert response.status_code == 400 and set(errors(response)) == {"offset", "limit"}


@pytest.mark.parametrize("body", [
    '{"job": "j", "submission_name": "\\ud800"}',
    '{"job": "j", "input_data": "\\ud800"}',
    '{"job": "j", "j_p": "a\\udfff"}',
    '{"job": "j", "\\ud800": 1}',
    '{"job": "j", "list": ["ok", {"deep": "\\ud800"}]}',
])
def test_json_strings_that_are_not_unicode_text_are_refused_and_nothing_is_stored(api, body):
    task = make_task("j", "echo $P1")
    make_parameter(task, rest_alias="p")
    make_job("j", steps=[task])
    response = api.generic("POST", "/api/submissions/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "not valid Unicode text" in response.json()["detail"]
    assert Submission.objects.count() == 0


def test_a_batch_counts_every_submission_against_the_quota(api, settings):
    settings.QUEUE_HARD_LIMIT = 2
    make_job("a", steps=[make_task("ta", "true")])
    make_job("b", steps=[make_task("tb", "true")])
    make_job("c", steps=[make_task("tc", "true")])
    response = api.post("/api/submissions/", {"job": "a,b,c"}, format="json")
    assert response.status_code == 429 and "this request adds 3" in response.json()["detail"]
    assert Submission.objects.count() == 0


def test_behind_a_proxy_the_client_address_comes_from_the_configured_header(settings):
    settings.SLUICE_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    make_job("j", steps=[make_task("t", "true")])
    APIClient(REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="203.0.113.7, 10.0.0.9").post("/api/submissions/", {"job": "j"}, format="json")
    APIClient(REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="not-an-address").post("/api/submissions/", {"job": "j"}, format="json")
    assert sorted(Submission.objects.values_list("ip", flat=True)) == ["10.0.0.9", "203.0.113.7"]


def test_a_json_body_over_the_upload_limit_is_a_413(api, settings):
    settings.SLUICE_MAX_UPLOAD_BYTES = 1000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    make_job("j", steps=[make_task("t", "true")])
    response = api.post("/api/submissions/", {"job": "j", "input_data": "x" * 5000}, format="json")
    assert response.status_code == 413 and response.json()["errors"]["input_data"]


def test_controls_on_an_unknown_node_are_404(owner):
    submission = engine.submit(make_job("j", steps=[make_task("t", "true")]), user=owner)
    response = client_for(owner).post(f"/api/submissions/{submission.uuid}/nodes/nope/restart/")
    assert response.status_code == 404 and "has no node 'nope'" in response.json()["detail"]
