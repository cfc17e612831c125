"""A_A's REST API under /analytics_automated/, driven as A_A's clients and tests drive it.

Requests are shaped as A_A's example clients send them (example_scripts/send_file.py,
send_fasta.py: the same URL, form fields and multipart body, made by the requests
library they use) and as A_A's tests make them (analytics_automated/tests/test_api_requests.py).
Each assertion on A_A's behaviour names, in a comment, the A_A test or file it comes from;
the deliberate differences are in docs/migrating-from-aa.md.
"""
import io
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.test import APIClient

from execution.models import Batch, Result, Submission
from jobs.models import Backend, Job
from tests.clients import client_for
from tests.factories import make_job, make_parameter, make_task

pytestmark = pytest.mark.django_db

CURRENT = Path(__file__).parent / "data" / "aa" / "current_models.json"
AA = "/analytics_automated"


@pytest.fixture
def imported():
    """count_label, imported with importaa from a dump of A_A's current models, run where the tests' steps run."""
    call_command("importaa", str(CURRENT), stdout=io.StringIO())
    Backend.objects.filter(name="local1").update(root_path="")  # steps run in SLUICE_WORK_DIR, not in the A_A server's root path
    return Job.objects.get(name="count_label")


@pytest.fixture
def two_jobs():
    """A_A's test setUp (test_api_requests.py, SubmissionRequestTests): job1 runs task1, job2 runs task2."""
    task1 = make_task("task1", "true", in_glob=".input")
    task2 = make_task("task2", "true", in_glob=".input")
    return make_job("job1", steps=[task1]), make_job("job2", steps=[task2])


def upload(text="these are the file contents!", name="file1.txt"):
    return SimpleUploadedFile(name, text.encode())


def form(**fields):
    """The form of A_A's SubmissionRequestTests.setUp: input_data, job, submission_name, email."""
    return {"input_data": upload(), "job": "job1", "submission_name": "test", "email": "a@b.com", **fields}


def post(client, data, path="/submission/"):
    return client.post(AA + path, data, format="multipart")


# --- the example clients, end to end -------------------------------------------------------


def poll(base, path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(base + path, timeout=10).json()
        if body["state"] not in ("Submitted", "Running"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{path} stayed {body['state']}: {body}")


def test_send_file_shaped_post_runs_to_complete_and_its_results_download(live_server, worker, imported, tmp_path):
    base = live_server.url + AA
    source = tmp_path / "file1.txt"
    source.write_text("one two three\n")
    # example_scripts/send_file.py: POST to submission/.json, the file as input_data, the fields and aliased parameters as form data.
    with source.open("rb") as handle:
        payload = {"input_data": ("input.txt", handle)}
        data = {"job": "count_label", "submission_name": "test", "email": "a@b.com", "count_words_words": True, "label_tag": 12}
        response = requests.post(base + "/submission/.json", data=data, files=payload, timeout=30)
    # A_A api.py post: 201 with {"UUID": <the batch's>, "submission_name": ...}.
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"UUID", "submission_name"} and body["submission_name"] == "test"
    # A_A urls.py batchDetail: submission/<UUID> is the batch; its BatchSerializer is UUID, state, submissions.
    batch = poll(base, f"/submission/{body['UUID']}")
    assert set(batch) == {"UUID", "state", "submissions"} and batch["UUID"] == body["UUID"]
    assert batch["state"] == "Complete", batch  # A_A models.py Batch.STATUS_CHOICES
    [entry] = batch["submissions"]
    # A_A test_api_requests.py test_submission_detail_is_returned: the fields of SubmissionOutputSerializer, in order.
    single = poll(base, f"/submission/single/{entry['UUID']}.json")
    assert list(single) == ["submission_name", "job_name", "UUID", "state", "last_message", "email", "input_file", "results"]
    assert single["job_name"] == "count_label" and single["state"] == "Complete"
    assert single["email"] is None  # never returned (A_A returned it; a deliberate difference)
    label = next(result for result in single["results"] if result["name"].endswith(".label"))
    assert set(label) == {"task", "name", "message", "step", "data_path"}  # A_A serializers.py ResultSerializer
    assert label["step"] == 1  # the label step has ordering 1 in the dump
    # A_A's data_path is relative to /analytics_automated (serializers.py get_data_path splits the URL there).
    content = requests.get(base + label["data_path"], timeout=10)
    assert content.status_code == 200
    file_id = entry["UUID"]
    assert content.content.decode() == f"3 {file_id}.input\n--tag=12 plain v1 {file_id}_done hello\n"
    assert requests.get(base + single["input_file"], timeout=10).content == b"one two three\n"
    # An ordinary Sluice submission: the Sluice API shows it, in the batch A_A's UUID names.
    sluice = requests.get(f"{live_server.url}/api/submissions/{file_id}/", timeout=10).json()
    assert sluice["status"] == "complete" and sluice["params"]["label_tag"] == "12"
    in_batch = requests.get(f"{live_server.url}/api/batches/{body['UUID']}/", timeout=10).json()["submissions"]
    assert [item["uuid"] for item in in_batch] == [file_id]
    page = requests.get(f"{live_server.url}/submissions/{file_id}/", timeout=10)  # and its web page
    assert page.status_code == 200 and "count_label" in page.text


def test_send_fasta_shaped_post_to_submission_json_is_accepted(live_server, imported, tmp_path):
    source = tmp_path / "prot.txt"
    source.write_text("MKVLAAGIVALLLAA\n")
    # example_scripts/send_fasta.py: POST to submission.json (no slash), no parameters.
    with source.open("rb") as handle:
        data = {"job": "count_label", "submission_name": "testing", "email": "a@b.com"}
        files = {"input_data": ("prot.txt", handle)}
        response = requests.post(f"{live_server.url}{AA}/submission.json", data=data, files=files, timeout=30)
    assert response.status_code == 201, response.text
    submission = Submission.objects.get(batch__uuid=response.json()["UUID"])
    # Parameters not sent take their defaults (A_A test_api_chainconstruction.py, test__option_uses_default_if_not_passed).
    assert submission.params["label_tag"] == "t1" and submission.submission_name == "testing"


# --- the catalogue ---------------------------------------------------------------------


def test_endpoints_list_a_uri_per_runnable_job(imported):
    make_job("hidden", steps=[make_task("t", "true")], runnable=False)
    response = APIClient().get(AA + "/endpoints/?format=json")
    assert response.status_code == 200
    # A_A test_api_requests.py test_return_of_available_endpoint_types: {"jobs": [URI template]}, bools as [TRUE/FALSE].
    # draft is imported not runnable, and hidden is not runnable: only runnable jobs are listed
    # (r_job is runnable: its R code gets A_A's variables, as the job is compat: aa).
    # The tasks "count words" and "cluster align" and the job "cluster job" are count_words, cluster_align and
    # cluster_job here, but A_A's clients still see, and may send, the names A_A had (api.py: parameter.rest_alias as stored).
    assert response.json() == {"jobs": [
        "/submission/&job=count_label&submission_name=[STRING]&email=[EMAIL_STRING]&input_data=[FILE]"
        "&count words_words=[TRUE/FALSE]&label_tag=[VALUE]&label_word=[VALUE]&label_value=[VALUE]",
        "/submission/&job=cluster job&submission_name=[STRING]&email=[EMAIL_STRING]&input_data=[FILE]&cluster align_threads=[VALUE]",
        "/submission/&job=r_job&submission_name=[STRING]&email=[EMAIL_STRING]&input_data=[FILE]",
    ]}


def test_job_list_and_detail_in_a_a_shapes(two_jobs):
    job1, job2 = two_jobs
    job1.steps.first().task.configurations.create(kind="software", name="ls", version="1")
    job1.steps.first().task.configurations.create(kind="dataset", name="dataset", version="2")
    client = APIClient()
    # A_A test_api_requests.py test_return_of_available_job_types: paginated, pk and name.
    listed = client.get(AA + "/job/?format=json")
    make_job("draft", steps=[make_task("t", "true")], runnable=False)  # not listed: only runnable jobs are
    results = [{"pk": job1.pk, "name": "job1"}, {"pk": job2.pk, "name": "job2"}]
    assert listed.json() == {"count": 2, "next": None, "previous": None, "results": results}
    # A_A test_api_requests.py test_can_get_multi_step_job_config: name, steps of task configuration and ordering.
    detail = client.get(AA + "/job/job1?format=json")
    assert detail.status_code == 200
    assert detail.json() == {"name": "job1", "steps": [{"task": {"configuration": [
        {"type": "Dataset", "name": "dataset", "parameters": "", "version": "2"},
        {"type": "Software", "name": "ls", "parameters": "", "version": "1"},
    ]}, "ordering": 0}]}
    assert client.get(AA + "/job/job1.json").json()["name"] == "job1"  # format_suffix_patterns (A_A project urls.py)
    # A_A test_can_not_get_congif_with_non_existent_job_name: 404 {"detail": "Not found."}.
    missing = client.get(AA + "/job/job2x?format=json")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}


def test_jobtimes_per_job_in_whole_seconds(two_jobs):
    job1, job2 = two_jobs
    start = datetime(2016, 3, 21, 12, 15, tzinfo=timezone.utc)
    # A_A test_api_requests.py JobTimeTests: {} when nothing ran.
    assert APIClient().get(AA + "/jobtimes/?format=json").json() == {}
    # The durations of A_A's test_return_times_when_available: 30 and 5 minutes for job1, 45 for job2.
    for job, minutes in ((job1, 30), (job1, 5), (job2, 45)):
        Submission.objects.create(job=job, status="complete", started_at=start, finished_at=start + timedelta(minutes=minutes))
    Submission.objects.create(job=job1, status="error", started_at=start, finished_at=start + timedelta(hours=5))
    # A_A answers {"job2": 2700, "job1": 1049} (the mode of a density estimate); Sluice's figure is the median.
    assert APIClient().get(AA + "/jobtimes/").json() == {"job1": 1050, "job2": 2700}


# --- submitting: what A_A's tests accept and refuse --------------------------------------


def test_a_valid_post_makes_one_batch_and_one_submission(two_jobs):
    response = post(APIClient(), form())
    # A_A test_valid_submission_post_creates_entry, test_submission_makes_single_batch_entry.
    assert response.status_code == 201
    assert Batch.objects.count() == 1 and Submission.objects.get().batch.uuid == Batch.objects.get().uuid
    assert response.json() == {"UUID": str(Batch.objects.get().uuid), "submission_name": "test"}
    # Its UUIDs are random (uuid4), not A_A's time-based uuid1.
    assert Batch.objects.get().uuid.version == 4 and Submission.objects.get().uuid.version == 4


def test_two_jobs_make_one_batch_and_two_posts_two(two_jobs):
    client = APIClient()
    # A_A test_dual_submission_makes_common_batch_entries.
    assert post(client, form(job="job1,job2")).status_code == 201
    assert Batch.objects.count() == 1 and Submission.objects.filter(batch=Batch.objects.get()).count() == 2
    # A_A test_multiple_submission_makes_seperate_batch_entries.
    post(client, form(job="job1"))
    assert Batch.objects.count() == 2


def test_batch_view_lists_its_submissions_submitted(two_jobs):
    client = APIClient()
    uuid = post(client, form(job="job1,job2")).json()["UUID"]
    body = client.get(f"{AA}/submission/{uuid}.json").json()
    # A_A test_batch_with_multiple_submissions_results_are_returned: UUID, state, submissions (each a submission document).
    assert body["UUID"] == uuid and body["state"] in ("Submitted", "Running")
    assert sorted(sub["job_name"] for sub in body["submissions"]) == ["job1", "job2"]
    assert all(sub["email"] is None for sub in body["submissions"])


@pytest.mark.parametrize("missing", ["job", "email", "submission_name"])
def test_a_missing_field_is_refused(two_jobs, missing):
    data = form()
    del data[missing]
    response = post(APIClient(), data)
    # A_A test_rejection_without_job, _without_email, _without_submission_name; the body is api.py post's.
    assert response.status_code == 400
    assert response.json() == {"error": "Input does not contain all required fields"}
    assert Submission.objects.count() == 0


def test_form_errors_name_the_field(two_jobs):
    client = APIClient()
    # A_A test_rejection_with_blank_submission_name; the body is {"error": form.errors} (api.py __submit_job).
    blank = post(client, form(submission_name=""))
    assert blank.status_code == 400 and blank.json() == {"error": {"submission_name": ["This field is required."]}}
    # A_A test_rejection_with_bad_email.
    bad = post(client, form(email="b"))
    assert bad.status_code == 400 and bad.json() == {"error": {"email": ["Enter a valid email address."]}}
    # A_A test_rejection_without_input_data.
    data = form()
    del data["input_data"]
    none = post(client, data)
    assert none.status_code == 400 and none.json() == {"error": {"input_data": ["This field is required."]}}
    assert Submission.objects.count() == 0 and Batch.objects.count() == 0


def test_unknown_and_disabled_jobs(two_jobs):
    client = APIClient()
    # A_A test_rejection_with_bad_job_id; body from api.py post.
    unknown = post(client, form(job="job34"))
    assert unknown.status_code == 400 and unknown.json() == {"error": "Job name supplied does not exist"}
    # A_A test_reject_where_one_job_does_not_exist: nothing is stored.
    assert post(client, form(job="job1,job34")).status_code == 400
    assert Batch.objects.count() == 0 and Submission.objects.count() == 0
    # A_A test_rejection_with_disabled_job: 403.
    make_job("job303", steps=[make_task("task3", "true")], runnable=False)
    disabled = post(client, form(job="job303"))
    assert disabled.status_code == 403 and disabled.json() == {"error": "job303 is present but currently disabled."}


def test_parameters_by_alias(two_jobs):
    job1, job2 = two_jobs
    task1, task2 = job1.steps.get().task, job2.steps.get().task
    make_parameter(task1, "this", required=True)
    make_parameter(task2, "that", type="int", required=True)
    client = APIClient()
    # A_A test_submission_rejects_when_a_param_is_missed: 400, nothing stored.
    missed = post(client, form())
    assert missed.status_code == 400 and missed.json()["error"].startswith("Required Parameter for job1 Missing.")
    assert Submission.objects.count() == 0
    # A_A test_reject_batch_with_missin_params.
    assert post(client, form(job="job1,job2", task1_this="Value1")).status_code == 400
    # A_A test_submission_ignores_undefined_params.
    assert post(client, form(task1_this="Value1", task1_strange="Value2")).status_code == 201
    # A_A test_accept_batch_with_params.
    assert post(client, form(job="job1,job2", task1_this="Value1", task2_that="12")).status_code == 201
    # A value of the wrong type is refused by Sluice's parameter check, in A_A's form-error shape.
    wrong = post(client, form(job="job2", task2_that="twelve"))
    assert wrong.status_code == 400 and list(wrong.json()["error"]) == ["task2_that"]
    # A value A_A refused for its punctuation is taken, and quoted when rendered (docs/migrating-from-aa.md).
    assert post(client, form(task1_this="a; rm -rf ~")).status_code == 201


def test_names_a_a_held_with_spaces_are_still_what_its_clients_send(imported):
    """A_A allowed spaces in task and job names and stored each parameter's field as "<task name>_<alias>"
    (its models.py Parameter.save); importaa renames them ("count words" -> count_words) and keeps
    A_A's field, so a client that sends "count words_words" still sets the parameter."""
    client = APIClient()
    sent = post(client, form(job="count_label", **{"count words_words": "False"}))
    assert sent.status_code == 201, sent.json()
    assert Submission.objects.get().params["count_words_words"] is False
    # Sluice's own REST name is taken as well.
    assert post(client, form(job="count_label", count_words_words="True")).status_code == 201
    assert Submission.objects.order_by("-pk").first().params["count_words_words"] is True


def test_a_job_a_a_named_with_a_space_answers_to_that_name(two_jobs):
    job1, _ = two_jobs
    job1.aa_name = "job one"
    job1.save()
    make_parameter(job1.steps.get().task, "this", required=True, aa_rest_name="task one_this")
    client = APIClient()
    missed = post(client, form(job="job one"))
    # A_A api.py post: "Required Parameter for <job name> Missing..." names the job and the field as A_A's clients know them.
    assert missed.status_code == 400
    assert missed.json()["error"].startswith("Required Parameter for job one Missing.")
    assert "task one_this" in missed.json()["error"]
    made = post(client, form(job="job one", **{"task one_this": "v"}))
    assert made.status_code == 201, made.json()
    submission = Submission.objects.get()
    assert submission.job == job1 and submission.params == {"task1_this": "v"}
    single = client.get(f"{AA}/submission/single/{submission.uuid}.json").json()
    assert single["job_name"] == "job one"
    assert client.get(f"{AA}/job/job one").json()["name"] == "job one"


def test_a_file_that_does_not_validate_is_refused(two_jobs):
    job1, _ = two_jobs
    job1.validators.create(validation_type="png")
    # A_A test_submission_rejects_when_file_does_not_validate: 400.
    response = post(APIClient(), form(input_data=upload("GIF89a not a png", "test.gif")))
    assert response.status_code == 400 and "input_data" in response.json()["error"]


def test_over_the_hard_limit_is_429_with_a_a_words(two_jobs, settings):
    settings.QUEUE_HARD_LIMIT = 1
    client = APIClient()
    assert post(client, form()).status_code == 201
    # A_A test_submissions_after_hard_limit_get_rejection: 429, body from api.py post.
    refused = post(client, form())
    assert refused.status_code == 429
    words = "You have no authority to post jobs.Either you are not logged in you have too many, 1, concurrent jobs running"
    assert refused.json() == {"error": words}


def test_a_retry_with_the_same_idempotency_key_makes_nothing_new(two_jobs):
    client = APIClient()
    first = client.post(AA + "/submission/", form(), format="multipart", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post(AA + "/submission/", form(), format="multipart", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert first.json()["UUID"] == again.json()["UUID"] and again["Idempotent-Replayed"] == "true"
    assert Batch.objects.count() == 1 and Submission.objects.count() == 1


# --- who may see what ------------------------------------------------------------------


def test_an_anonymous_submission_is_readable_by_its_uuid(two_jobs):
    uuid = post(APIClient(), form()).json()["UUID"]
    single = Submission.objects.get().uuid
    # A_A serves any submission to whoever holds its UUID (api.py BatchDetails, SubmissionDetails); Sluice does too for anonymous ones.
    stranger = APIClient()
    assert stranger.get(f"{AA}/submission/{uuid}").status_code == 200
    assert stranger.get(f"{AA}/submission/single/{single}").json()["UUID"] == str(single)


def test_login_required_jobs_need_a_login(two_jobs, owner):
    Job.objects.filter(name="job1").update(login_required=True)
    anonymous = post(APIClient(), form())
    assert anonymous.status_code == 401 and set(anonymous.json()) == {"error"}
    assert post(client_for(owner), form()).status_code == 201
    submission = Submission.objects.get()
    assert submission.user == owner
    # The submission is the owner's in the Sluice API too.
    assert [item["uuid"] for item in client_for(owner).get("/api/submissions/").json()["results"]] == [str(submission.uuid)]


@pytest.mark.django_db(transaction=True)
def test_another_users_submission_is_not_found(worker, imported, owner, other_user):
    made = client_for(owner).post(AA + "/submission/", {**form(job="count_label"), "input_data": upload("a b\n")}, format="multipart")
    batch = made.json()["UUID"]
    submission = Submission.objects.get()
    # Wait for it to finish so that it has results to try.
    deadline = time.monotonic() + 60
    while submission.status not in ("complete", "error", "crash") and time.monotonic() < deadline:
        time.sleep(0.1)
        submission.refresh_from_db()
    result = submission.results.filter(node__isnull=False).first()
    upload_row = submission.results.get(node__isnull=True)
    assert result is not None, submission.last_message
    owner_view = client_for(owner).get(f"{AA}/submission/single/{submission.uuid}").json()
    assert owner_view["state"] == "Complete"
    paths = [
        f"{AA}/submission/{batch}", f"{AA}/submission/{batch}.json", f"{AA}/submission/single/{submission.uuid}",
        f"{AA}{owner_view['results'][0]['data_path']}", f"{AA}{owner_view['input_file']}",
        f"{AA}/submissions/{submission.uuid}/results/{result.pk}/x", f"{AA}/submissions/{submission.uuid}/results/{upload_row.pk}/",
    ]
    # Sluice's rule, stricter than A_A's: a logged-in user's submission is theirs alone (staff excepted). 404, never 403.
    for client in (client_for(other_user), APIClient()):
        for path in paths:
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json() == {"detail": "Not found."}, path
            assert b"a b" not in response.content and str(submission.uuid).encode() not in response.content


# --- an attacker's pass ------------------------------------------------------------------


def test_a_path_like_file_name_chooses_nothing(two_jobs):
    response = post(APIClient(), form(input_data=upload("data", "../../../etc/passwd")))
    assert response.status_code == 201
    stored = Result.objects.get(node__isnull=True)
    assert ".." not in stored.file.name and "passwd" not in stored.file.name and "passwd" not in stored.name
    body = APIClient().get(f"{AA}/submission/single/{stored.submission.uuid}").json()
    assert "passwd" not in body["input_file"]


def test_huge_and_odd_fields_are_4xx_json(two_jobs, settings):
    job1, _ = two_jobs
    make_parameter(job1.steps.get().task, "this")
    client = APIClient()
    long_name = post(client, form(submission_name="n" * 10_000))
    assert long_name.status_code == 400 and "submission_name" in long_name.json()["error"]
    long_value = post(client, form(task1_this="v" * (settings.SLUICE_MAX_VALUE_LENGTH + 1)))
    assert long_value.status_code == 400 and "task1_this" in long_value.json()["error"]
    nul = post(client, form(submission_name="a\x00b"))
    assert nul.status_code == 400 and "\x00" not in nul.content.decode()
    many = post(client, form(job=",".join(f"j{number}" for number in range(1000))))
    assert many.status_code == 400 and "job" in many.json()["error"]
    a_file_as_job = post(client, form(job=upload("job1")))
    assert a_file_as_job.status_code == 400 and "job" in a_file_as_job.json()["error"]
    settings.SLUICE_MAX_UPLOAD_BYTES = 10
    big = post(client, form(input_data=upload("x" * 100)))
    assert big.status_code == 413 and "input_data" in big.json()["error"]
    # A_A took forms only (api.py parser_classes): JSON is DRF's 415.
    as_json = client.post(AA + "/submission/", {"job": "job1"}, format="json")
    assert as_json.status_code == 415 and set(as_json.json()) == {"detail"}
    assert Submission.objects.count() == 0


@pytest.mark.parametrize("path", [
    "/submission/single/not-a-uuid-at-all-000000000000000000",
    "/submission/single/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
    "/submission/00000000-0000-4000-8000-000000000000",
    "/submission/single/00000000-0000-4000-8000-000000000000.json",
    "/job/..%2F..%2Fetc%2Fpasswd",
    "/nothing/here",
    "/endpoints/?format=xml",
    "/submission/single/%00",
])
def test_odd_paths_are_json_404s_or_400s(path):
    response = APIClient().get(AA + path)
    assert response.status_code in (400, 404), path
    assert response["Content-Type"].startswith("application/json") and set(response.json()) <= {"detail", "error"}


def test_get_on_the_submission_list_and_other_methods_are_4xx():
    client = APIClient()
    assert client.get(AA + "/submission/").status_code == 404
    assert client.delete(AA + "/job/").json() == {"detail": 'Method "DELETE" not allowed.'}


def test_an_accept_header_nothing_answers_is_406():
    # A_A's REST_FRAMEWORK renderers are JSON and the browsable page (its settings/base.py); XML is DRF's 406.
    response = APIClient().get(AA + "/endpoints/", HTTP_ACCEPT="application/xml")
    assert response.status_code == 406 and response.json() == {"detail": "Could not satisfy the request Accept header."}


def test_a_file_that_validates_is_accepted(two_jobs):
    job1, _ = two_jobs
    job1.validators.create(validation_type="png")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    # A_A test_submission_accepts_when_file_validates: 201.
    assert post(APIClient(), form(input_data=SimpleUploadedFile("test.png", png))).status_code == 201


def test_past_the_hog_size_submissions_get_low_priority(two_jobs, settings):
    settings.QUEUE_HOG_SIZE = 1
    client = APIClient()
    post(client, form())
    post(client, form(), path="/submission/?format=json")
    # A_A test_valid_submission_gets_medium_priority and test_submissions_after_threshold_get_low_priority
    # (A_A's MEDIUM is Sluice's normal).
    assert [submission.priority for submission in Submission.objects.order_by("id")] == ["normal", "low"]


@pytest.mark.django_db(transaction=True)
def test_a_failing_step_makes_the_submission_and_its_batch_error(worker):
    make_job("failing", steps=[make_task("fails", "exit 3", in_glob=".input")])
    client = APIClient()
    uuid = post(client, form(job="failing")).json()["UUID"]
    deadline = time.monotonic() + 60
    while (body := client.get(f"{AA}/submission/{uuid}.json").json())["state"] in ("Submitted", "Running") and time.monotonic() < deadline:
        time.sleep(0.1)
    # A_A models.py Batch.STATUS_CHOICES and tasks.py: a failed task makes the submission and its batch Error.
    assert body["state"] == "Error" and body["submissions"][0]["state"] == "Error"
    assert body["submissions"][0]["last_message"]


def test_states_fold_into_a_a_five():
    from compat_aa import serializers

    # A_A models.py Submission.STATUS_CHOICES: Submitted, Running, Complete, Error, Crash.
    assert set(serializers.STATES.values()) == {"Submitted", "Running", "Complete", "Error", "Crash"}
    assert serializers.state("waiting") == "Running" and serializers.state("cancelled") == "Error"
    rows = [Submission(status=status) for status in ("complete", "running")]
    assert serializers.batch_state(rows) == "Running"
    assert serializers.batch_state([Submission(status="complete"), Submission(status="crash")]) == "Crash"
    assert serializers.batch_state([Submission(status="submitted")] * 2) == "Submitted"
    assert serializers.batch_state([Submission(status="complete")] * 2) == "Complete"


def test_a_result_file_gone_from_storage_is_404(two_jobs):
    post(APIClient(), form())
    stored = Result.objects.get(node__isnull=True)
    stored.file.storage.delete(stored.file.name)
    response = APIClient().get(f"{AA}/submissions/{stored.submission.uuid}/results/{stored.pk}/x")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}


# --- the batch's e-mail ------------------------------------------------------------------------


def wait_terminal(client, uuid, timeout=60):
    deadline = time.monotonic() + timeout
    while (body := client.get(f"{AA}/submission/{uuid}.json").json())["state"] in ("Submitted", "Running") and time.monotonic() < deadline:
        time.sleep(0.1)
    return body


def aa_jobs(*specs):
    """compat "aa" jobs, as importaa makes them: (name, executable) each."""
    for name, executable in specs:
        make_job(name, steps=[make_task(f"{name}_task", executable, in_glob=".input")], compat="aa")


@pytest.mark.django_db(transaction=True)
def test_a_batch_of_two_jobs_sends_one_mail_when_both_are_complete(worker, mailoutbox, settings):
    aa_jobs(("quick", "true"), ("slow", "sleep 1"))
    client = APIClient()
    uuid = post(client, form(job="quick,slow", email="someone@example.org")).json()["UUID"]
    assert wait_terminal(client, uuid)["state"] == "Complete"
    time.sleep(0.5)  # room for a second mail, were one to be sent
    # A_A tasks.py __handle_batch_email: subject "<job> : EMAIL_SUBJECT_STRING: <batch UUID>",
    # body EMAIL_MESSAGE_STRING + the batch UUID, sent once the batch is Complete.
    assert len(mailoutbox) == 1, [m.subject for m in mailoutbox]
    mail = mailoutbox[0]
    assert mail.to == ["someone@example.org"]
    assert mail.subject == f"slow : A_A Job Completion: {uuid}"  # the job whose end completed the batch
    assert mail.body == f"{settings.SLUICE_AA_EMAIL_MESSAGE}{uuid}"
    assert mail.body.startswith("Your analysis is complete.\nYou can retrieve the results from")
    assert set(Submission.objects.values_list("email", flat=True)) == {""}  # EMAIL_DELETE_AFTER_USE


@pytest.mark.django_db(transaction=True)
def test_a_failing_batch_mails_its_failure_once_at_the_first_failure(worker, mailoutbox):
    aa_jobs(("breaks", "echo broken >&2; exit 4"), ("lasts", "sleep 2"))
    client = APIClient()
    uuid = post(client, form(job="breaks,lasts", email="someone@example.org")).json()["UUID"]
    deadline = time.monotonic() + 60
    while not mailoutbox and time.monotonic() < deadline:
        time.sleep(0.05)
    # A_A tasks.py __handle_batch_email: an Error batch mails "Job <UUID> has failed ..." with the last message,
    # as soon as the batch is Error (the other submission may still run).
    assert Submission.objects.get(job__name="lasts").is_active
    failed = Submission.objects.get(job__name="breaks")
    assert mailoutbox[0].subject == f"breaks : A_A Job Completion: {uuid}"
    assert mailoutbox[0].body == (
        f"Job {uuid} has failed\n\nPlease contact the server administrator with the job ID and the following error message\n\n"
        f"{failed.last_message}"
    )
    wait_for_status = wait_terminal(client, uuid)
    assert wait_for_status["state"] == "Error"
    time.sleep(0.5)
    assert len(mailoutbox) == 1  # A_A mailed again when "lasts" ended; Sluice does not (a deliberate difference)


@pytest.mark.django_db(transaction=True)
def test_a_compat_job_submitted_through_sluices_api_gets_sluices_mail(worker, mailoutbox):
    aa_jobs(("quick", "true"))
    response = APIClient().post("/api/submissions/", {"job": "quick", "email": "someone@example.org", "input_data": "x"}, format="json")
    assert response.status_code == 201, response.json()
    deadline = time.monotonic() + 60
    while not mailoutbox and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mailoutbox[0].subject == "Sluice: quick complete"  # no batch: not A_A's batch mail


def test_a_hard_limit_of_0_means_no_limit(two_jobs, settings):
    """A_A api.py __get_job_priority refused every submission when QUEUE_HARD_LIMIT was 0; in Sluice 0 means unlimited."""
    settings.QUEUE_HARD_LIMIT, settings.QUEUE_HOG_SIZE = 0, 0
    client = APIClient()
    assert [post(client, form()).status_code for _ in range(5)] == [201] * 5
