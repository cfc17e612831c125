"""The job page's form: a file field only when a step reads the upload, labels, marks, errors, curl, Run again."""
import re
import shlex
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from execution import engine
from execution.models import Submission
from tests.factories import make_job, make_parameter, make_task
from web.forms import FILE_AGAIN
from web.lists import RECENT_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def reading_job():
    task = make_task("count", "wc -l < $I1", in_glob=".input", stdout_glob=".count")
    make_parameter(task, "mode", flag="--mode", type="choice", choices="fast,slow", required=True, label="Counting mode")
    make_parameter(task, "n", flag="-n", type="int", default="3", description="How many.")
    make_parameter(task, "word", flag="-w", required=True)
    return make_job("counting", steps=[task])


@pytest.fixture
def paramless_job():
    task = make_task("hello", "echo $P1", stdout_glob=".txt")
    make_parameter(task, "who", required=True, label="Whom to greet")
    return make_job("greeting", steps=[task])


def page(client, url):
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def curl_of(html):
    return unescape(re.search(r'<pre id="curl">(.*?)</pre>', html, re.DOTALL)[1])


def test_a_job_whose_steps_read_no_upload_has_no_file_field(client, paramless_job):
    html = page(client, "/jobs/greeting/")
    assert 'name="input_data"' not in html and "Input file" not in html
    assert "reads no file" in html


def test_a_job_whose_step_reads_input_has_a_file_field_marked_required(client, reading_job):
    html = page(client, "/jobs/counting/")
    assert re.search(r'for="id_input_data">Input file <abbr title="required" class="required">\*</abbr>', html)
    assert 'name="input_data"' in html


def test_a_compat_aa_job_asks_for_the_file_its_first_step_reads(client):
    make_job("aajob", steps=[make_task("first", "cat $I1", in_glob=".fa")], compat="aa")
    assert 'name="input_data"' in page(client, "/jobs/aajob/")
    make_job("plainjob", steps=[make_task("second", "cat $I1", in_glob=".fa")])
    assert 'name="input_data"' not in page(client, "/jobs/plainjob/")


def test_labels_are_human_with_the_rest_name_beside_and_required_marks(client, reading_job):
    html = page(client, "/jobs/counting/")
    assert re.search(r'for="id_count_mode">Counting mode <abbr title="required" class="required">\*</abbr> <small class="rest"><code>count_mode</code></small>', html)
    # Without a label the REST name is the label, shown once; an optional parameter has no mark.
    assert re.search(r'for="id_count_word">count_word <abbr title="required" class="required">\*</abbr></label>', html)
    assert re.search(r'for="id_count_n">count_n</label>', html)


def test_the_curl_snippet_works_as_copied_without_an_upload(client, paramless_job):
    command = curl_of(page(client, "/jobs/greeting/"))
    assert "input_data" not in command
    words = shlex.split(command)
    assert words[0] == "curl" and words[-1] == "http://testserver/api/submissions/"
    fields = dict(words[index + 1].split("=", 1) for index, word in enumerate(words) if word == "-F")
    assert fields == {"job": "greeting", "hello_who": "VALUE"}
    response = APIClient().post("/api/submissions/", fields, format="multipart")
    assert response.status_code == 201, response.content


def test_the_curl_snippet_sends_the_file_and_required_values_with_the_right_host(reading_job):
    command = curl_of(Client(HTTP_HOST="localhost").get("/jobs/counting/").content.decode())
    words = shlex.split(command)
    assert words[-1] == "http://localhost/api/submissions/"
    fields = dict(words[index + 1].split("=", 1) for index, word in enumerate(words) if word == "-F")
    assert fields == {"job": "counting", "input_data": "@yourfile", "count_mode": "fast", "count_word": "VALUE"}
    fields["input_data"] = SimpleUploadedFile("yourfile", b"a\nb\n")
    assert APIClient().post("/api/submissions/", fields, format="multipart").status_code == 201


def test_errors_are_summed_up_at_the_top_with_links_to_the_fields(client, reading_job):
    response = client.post("/jobs/counting/", {"count_n": "lots", "count_mode": "fast"})
    assert response.status_code == 400
    html = response.content.decode()
    summary = re.search(r'<div class="error-summary".*?</div>', html, re.DOTALL)[0]
    assert '<a href="#id_count_n">count_n</a>' in summary
    assert '<a href="#id_count_word">count_word</a>: parameter &#x27;count_word&#x27; is required' in summary
    assert '<a href="#id_input_data">Input file</a>' in summary
    assert 'id="id_count_n"' in html and html.index("error-summary") < html.index('id="id_count_n"')


def test_a_chosen_file_is_asked_for_again_after_an_error(client, reading_job):
    upload = SimpleUploadedFile("lines.txt", b"a\n")
    html = client.post("/jobs/counting/", {"count_mode": "fast", "input_data": upload}).content.decode()
    assert 'id="file-again"' in html and unescape(FILE_AGAIN) in unescape(html)
    # No file chosen: nothing to choose again.
    assert 'id="file-again"' not in client.post("/jobs/counting/", {"count_mode": "fast"}).content.decode()


def test_a_submission_through_the_form_is_remembered_in_the_session(client, paramless_job):
    response = client.post("/jobs/greeting/", {"hello_who": "world"})
    submission = Submission.objects.get()
    assert response.status_code == 302
    assert client.session[RECENT_KEY] == [str(submission.uuid)]


def test_run_again_prefills_parameters_and_name_and_keeps_them_editable(client, reading_job):
    earlier = engine.submit(reading_job, params={"count_mode": "slow", "count_word": "x<y", "count_n": "9"}, input_data=b"a\n", submission_name="first run")
    html = page(client, f"/jobs/counting/?again={earlier.uuid}")
    assert "Run again" in html
    assert re.search(r'<option value="slow" selected>', html)
    assert 'value="x&lt;y"' in html and 'value="9"' in html and 'value="first run"' in html
    assert f'action="?again={earlier.uuid}"' in html


def test_run_again_reuses_the_stored_upload_when_asked(client, reading_job):
    earlier = engine.submit(reading_job, params={"count_mode": "slow", "count_word": "w"}, input_data=SimpleUploadedFile("data.txt", b"one\ntwo\n"))
    html = page(client, f"/jobs/counting/?again={earlier.uuid}")
    assert re.search(r'<input type="checkbox" name="reuse_upload"[^>]* checked>\s*Use the same file \(data.txt\)', html)
    response = client.post(f"/jobs/counting/?again={earlier.uuid}", {"reuse_upload": "on", "count_mode": "fast", "count_word": "w"})
    assert response.status_code == 302
    again = Submission.objects.exclude(pk=earlier.pk).get()
    assert again.params["count_mode"] == "fast" and again.upload_name == "data.txt"
    stored = again.results.get(node__isnull=True, ending=".input")
    with stored.file.open("rb") as handle:
        assert handle.read() == b"one\ntwo\n"


def test_run_again_without_the_old_file_and_no_new_one_asks_for_a_file(client, reading_job):
    earlier = engine.submit(reading_job, params={"count_mode": "slow", "count_word": "w"}, input_data=SimpleUploadedFile("data.txt", b"x\n"))
    response = client.post(f"/jobs/counting/?again={earlier.uuid}", {"count_mode": "fast", "count_word": "w"})
    assert response.status_code == 400 and "needs an upload" in response.content.decode()
    assert Submission.objects.count() == 1


def test_run_again_follows_the_submission_pages_visibility(owner, other_user, reading_job):
    theirs = engine.submit(reading_job, params={"count_mode": "slow", "count_word": "secret"}, input_data=b"x\n", user=other_user)
    client = Client()
    client.force_login(owner)
    assert client.get(f"/jobs/counting/?again={theirs.uuid}").status_code == 404
    assert client.post(f"/jobs/counting/?again={theirs.uuid}", {"reuse_upload": "on", "count_mode": "fast", "count_word": "w"}).status_code == 404
    assert Submission.objects.count() == 1
    assert client.get("/jobs/counting/?again=not-a-uuid").status_code == 404
    mine = engine.submit(reading_job, params={"count_mode": "slow", "count_word": "mine"}, input_data=b"x\n", user=owner)
    assert 'value="mine"' in client.get(f"/jobs/counting/?again={mine.uuid}").content.decode()


def test_run_again_of_another_jobs_submission_is_404(client, reading_job, paramless_job):
    other = engine.submit(paramless_job, params={"hello_who": "x"})
    assert client.get(f"/jobs/counting/?again={other.uuid}").status_code == 404


def test_run_again_does_not_show_the_earlier_e_mail_address(client, paramless_job):
    earlier = engine.submit(paramless_job, params={"hello_who": "x"}, email="someone@example.org")
    assert "someone@example.org" not in page(client, f"/jobs/greeting/?again={earlier.uuid}")


def test_a_reused_upload_goes_through_the_jobs_validators(client, reading_job):
    from jobs.models import Validator

    earlier = engine.submit(reading_job, params={"count_mode": "slow", "count_word": "w"}, input_data=SimpleUploadedFile("d.json", b'{"a": 1}'))
    Validator.objects.create(job=reading_job, validation_type="json")
    assert client.post(f"/jobs/counting/?again={earlier.uuid}", {"reuse_upload": "on", "count_mode": "fast", "count_word": "w"}).status_code == 302
    again = Submission.objects.exclude(pk=earlier.pk).get()
    with again.results.get(node__isnull=True).file.open("rb") as handle:
        assert handle.read() == b'{"a": 1}'


def test_a_reused_upload_no_longer_stored_asks_for_a_file(client, reading_job):
    earlier = engine.submit(reading_job, params={"count_mode": "slow", "count_word": "w"}, input_data=SimpleUploadedFile("d.txt", b"x\n"))
    stored = earlier.results.get(node__isnull=True)
    stored.file.storage.delete(stored.file.name)
    response = client.post(f"/jobs/counting/?again={earlier.uuid}", {"reuse_upload": "on", "count_mode": "fast", "count_word": "w"})
    assert response.status_code == 400 and "no longer stored; choose a file" in response.content.decode()
    assert Submission.objects.count() == 1
