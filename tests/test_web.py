"""Server-rendered pages: every page, every kind of visitor."""
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from execution import engine
from execution.local import SynchronousRunner
from execution.models import Submission
from tests.factories import make_job, make_parameter, make_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def counting_job():
    task = make_task("count", "wc -l < $I1", in_glob=".input", stdout_glob=".count", description="Count lines.")
    make_parameter(task, "n", flag="-n", type="int", default="3", description="How many.")
    make_parameter(task, "mode", flag="--mode", type="choice", choices="fast,slow", required=True)
    make_parameter(task, "loud", flag="--loud", bool_valued=True, type="bool", default="true")
    return make_job("counting", steps=[task], description="Counts the lines of the upload.")


def client_for(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_the_catalogue_lists_runnable_jobs_with_diagrams(client, counting_job):
    make_job("hidden", steps=[make_task("t", "true")], runnable=False)
    page = client.get("/").content.decode()
    assert "counting" in page and "Counts the lines of the upload." in page
    assert "hidden" not in page
    assert "<svg" in page and "count_mode" in page


def test_the_job_page_shows_diagram_parameters_and_form(client, counting_job):
    page = client.get("/jobs/counting/").content.decode()
    assert "<svg" in page and ">count<" in page
    assert "count_n" in page and "How many." in page and "fast, slow" in page
    assert 'name="input_data"' in page and 'enctype="multipart/form-data"' in page


def test_an_unknown_job_page_is_404(client):
    assert client.get("/jobs/nope/").status_code == 404


def test_submitting_the_form_lands_on_the_submission_page(client, counting_job):
    upload = SimpleUploadedFile("lines.txt", b"a\nb\n")
    response = client.post("/jobs/counting/", {"count_mode": "slow", "count_n": "4", "input_data": upload})
    submission = Submission.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/submissions/{submission.uuid}/"
    assert submission.params == {"count_n": 4, "count_mode": "slow", "count_loud": False}


def test_form_errors_are_shown_next_to_their_fields(client, counting_job):
    response = client.post("/jobs/counting/", {"count_n": "lots"})
    page = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_count_n-error"' in page and "must be an integer, got &#x27;lots&#x27;" in page
    assert 'id="id_count_mode-error"' in page and "is required" in page
    assert Submission.objects.count() == 0


def test_the_submission_page_shows_nodes_results_and_messages(client, counting_job):
    submission = SynchronousRunner(counting_job, input=b"x\ny\n", params={"count_mode": "fast"}).init().process()
    page = client.get(f"/submissions/{submission.uuid}/").content.decode()
    assert 'data-status="complete"' in page and 'data-active="false"' in page
    assert 'data-node="count"' in page and "<svg" in page
    assert f"{submission.uuid}.count" in page and "complete: 1 of 1 steps done" in page


def test_the_live_fragment_is_what_the_page_polls(client, counting_job):
    submission = engine.submit(counting_job, input_data=b"x\n", params={"count_mode": "fast"})
    page = client.get(f"/submissions/{submission.uuid}/").content.decode()
    assert 'data-active="true"' in page and f'data-live-url="/submissions/{submission.uuid}/live/"' in page
    fragment = client.get(f"/submissions/{submission.uuid}/live/").content.decode()
    assert 'data-status="submitted"' in fragment and "<html" not in fragment


@pytest.mark.parametrize("suffix", ["", "live/"])
def test_a_users_submission_page_is_theirs_and_staffs_alone(owner, other_user, staff, suffix):
    submission = engine.submit(make_job("j", steps=[make_task("t", "true")]), user=owner)
    url = f"/submissions/{submission.uuid}/{suffix}"
    assert client_for(None).get(url).status_code == 404
    assert client_for(other_user).get(url).status_code == 404
    assert client_for(owner).get(url).status_code == 200
    assert client_for(staff).get(url).status_code == 200


def test_cancel_from_the_page(owner, other_user):
    submission = engine.submit(make_job("j", steps=[make_task("t", "sleep 5")]), user=owner)
    assert client_for(other_user).post(f"/submissions/{submission.uuid}/cancel/").status_code == 404
    response = client_for(owner).post(f"/submissions/{submission.uuid}/cancel/")
    assert response.status_code == 302
    submission.refresh_from_db()
    assert submission.status == "cancelled"
    assert client_for(owner).get(f"/submissions/{submission.uuid}/cancel/").status_code == 405


def test_my_submissions_lists_only_mine_and_anonymous_visitors_get_their_own_recent_list(owner, other_user):
    job = make_job("j", steps=[make_task("t", "true")])
    mine = engine.submit(job, user=owner, submission_name="mine")
    engine.submit(job, user=other_user, submission_name="theirs")
    anonymous = client_for(None).get("/submissions/").content.decode()
    assert "Recent in this browser" in anonymous and "mine" not in anonymous and "theirs" not in anonymous
    page = client_for(owner).get("/submissions/").content.decode()
    assert str(mine.uuid) in page and "theirs" not in page


def run_with_output(executable, ending):
    task = make_task("make", executable, out_glob=ending)
    return SynchronousRunner(make_job("outputs", steps=[task])).init().process()


def preview(submission):
    result = submission.results.get()
    return Client().get(f"/submissions/{submission.uuid}/results/{result.pk}/").content.decode()


def test_previews_pretty_print_json():
    page = preview(run_with_output("""printf '{"a":[1,2]}' > $O1""", ".json"))
    assert 'data-kind="json"' in page and '&quot;a&quot;: [\n    1,' in page


def test_previews_show_csv_as_a_table():
    page = preview(run_with_output("printf 'x,y\\n1,2\\n' > $O1", ".csv"))
    assert '<th scope="col">x</th>' in page and "<td>2</td>" in page


def test_previews_show_text_escaped():
    page = preview(run_with_output("printf '<script>alert(1)</script>' > $O1", ".txt"))
    assert "&lt;script&gt;" in page and "<script>alert" not in page


def test_images_are_previewed_inline_and_everything_else_downloads():
    submission = run_with_output("printf '\\x89PNG\\r\\n\\x1a\\nxx' > $O1", ".png")
    result = submission.results.get()
    page = preview(submission)
    assert f'src="/submissions/{submission.uuid}/results/{result.pk}/file/?inline=1"' in page
    inline = Client().get(f"/submissions/{submission.uuid}/results/{result.pk}/file/?inline=1")
    assert inline["Content-Type"] == "image/png" and inline["Content-Disposition"].startswith("inline")
    download = Client().get(f"/submissions/{submission.uuid}/results/{result.pk}/file/")
    assert download["Content-Disposition"].startswith("attachment")


def test_html_results_are_never_served_inline():
    submission = run_with_output("printf '<html><script>alert(1)</script>' > $O1", ".html")
    result = submission.results.get()
    response = Client().get(f"/submissions/{submission.uuid}/results/{result.pk}/file/?inline=1")
    assert response["Content-Type"] == "application/octet-stream" and response["Content-Disposition"].startswith("attachment")


def test_login_page_and_logout(owner):
    assert Client().get("/accounts/login/").status_code == 200
    client = Client()
    response = client.post("/accounts/login/", {"username": "owner", "password": "pw-owner-123"})
    assert response.status_code == 302
    assert "Log out owner" in client.get("/").content.decode()


# --- Content-Security-Policy ---------------------------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|<[^>]+\sstyle=", re.IGNORECASE)


def policy(response):
    """The response's Content-Security-Policy as {directive: [sources]}."""
    return {name: sources for name, *sources in (part.split() for part in response["Content-Security-Policy"].split(";") if part.strip())}


def pages_to_check(counting_job):
    """The pages anyone may see, one of each kind."""
    submission = SynchronousRunner(counting_job, input=b"x\ny\n", params={"count_mode": "fast"}).init().process()
    return ["/", "/jobs/counting/", f"/submissions/{submission.uuid}/", f"/submissions/{submission.uuid}/live/",
            f"/submissions/{submission.uuid}/results/{submission.results.first().pk}/", "/accounts/login/", "/admin/login/",
            "/api/docs/", "/api/jobs/"]


def test_every_page_refuses_inline_script_and_framing_and_holds_none(staff, counting_job):
    anonymous = [(None, path) for path in pages_to_check(counting_job)]
    logged_in = [(staff, path) for path in ("/submissions/", "/admin/", f"/admin/jobs/job/{counting_job.pk}/change/", "/admin/jobs/task/add/",
                                            "/admin/execution/submission/")]
    for user, path in anonymous + logged_in:
        response = client_for(user).get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, path
        rules = policy(response)
        assert rules["script-src"] == ["'self'"] and rules["style-src"] == ["'self'"], path
        assert (rules["object-src"], rules["base-uri"], rules["frame-ancestors"]) == (["'none'"], ["'self'"], ["'none'"]), path
        page = response.content.decode()
        assert not INLINE_SCRIPT.search(page) and not HANDLER.search(page) and not INLINE_STYLE.search(page), path


def test_the_api_docs_start_swagger_from_a_script_file(client):
    page = client.get("/api/docs/").content.decode()
    assert '<script src="/api/docs/?script="></script>' in page
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()


def test_an_svg_picture_may_load_and_run_nothing(counting_job):
    response = Client().get("/api/jobs/counting/graph/?format=svg")
    assert response.status_code == 200 and policy(response) == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}


def test_the_policy_is_a_setting_and_empty_sends_none(client, settings, counting_job):
    settings.SLUICE_CONTENT_SECURITY_POLICY = "default-src 'self'; img-src *"
    assert client.get("/")["Content-Security-Policy"] == "default-src 'self'; img-src *"
    settings.SLUICE_CONTENT_SECURITY_POLICY = ""
    assert "Content-Security-Policy" not in client.get("/")
