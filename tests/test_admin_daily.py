"""Admin for daily use: REST names, the public page, input-file warnings, YAML import, branding, app order."""
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import Job, Task
from tests.factories import make_job, make_parameter, make_task

pytestmark = pytest.mark.django_db

EXAMPLE = Path(settings.BASE_DIR, "examples", "grep_head.yaml")


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def chain(db):
    first = make_task("split", "split $I1", in_glob=".input", out_glob=".part", stdout_glob=".log")
    make_parameter(first, "size", label="Chunk size")
    second = make_task("join", "cat $I1 $I2", in_glob=".part,.missing")
    return make_job("chain", steps=[first, second])


def test_the_task_page_shows_rest_names_labels_and_input_choices(admin_client, chain):
    task = Task.objects.get(name="split")
    html = admin_client.get(f"/admin/jobs/task/{task.pk}/change/").content.decode()
    assert re.search(r'<div class="readonly">split_size</div>', html)
    assert 'name="parameters-0-label"' in html and 'value="Chunk size"' in html
    assert 'name="input_choices"' in html
    # The command-line fields of a parameter fold away.
    assert re.search(r'<details><summary>.*?Command line', html, re.DOTALL)


def test_the_job_page_lists_rest_names_links_the_public_page_and_warns_of_missing_inputs(admin_client, chain):
    html = admin_client.get(f"/admin/jobs/job/{chain.pk}/change/").content.decode()
    assert '<ul class="rest-names"><li><code>split_size</code></li></ul>' in html
    assert '<a href="/jobs/chain/">/jobs/chain/</a>' in html
    assert "step &#x27;join&#x27; reads &#x27;.missing&#x27;, which neither the upload (.input) nor an earlier step provides" in html
    assert ".input" not in re.search(r"reads &#x27;\.missing&#x27;.*?</li>", html).group().replace("upload (.input)", "")


def test_input_problems_accept_outputs_stdout_and_the_upload(db):
    first = make_task("one", "x", in_glob=".input", out_glob=".a", stdout_glob=".log")
    second = make_task("two", "x", in_glob=".a,.log,.input,*.part")
    assert make_job("fine", steps=[first, second]).input_problems() == []
    # Side by side (equal ordering), the second cannot read the first's file.
    job = make_job("parallel", steps=[("one", first, {"ordering": 0}), ("two", second, {"ordering": 0})])
    assert [key for key, _ in job.input_problems()] == ["two", "two"]
    # Analytics Automated ran steps without their files: no warning for compat jobs.
    assert make_job("old", steps=[("two", second, {"ordering": 0})], compat="aa").input_problems() == []


def test_a_dynamic_step_before_silences_the_check(db):
    grower = make_task("grow", "x", dynamic=True)
    reader = make_task("read", "x", in_glob=".made_at_run_time")
    assert make_job("grows", steps=[grower, reader]).input_problems() == []


def test_saving_a_job_with_a_missing_input_saves_it_and_warns(admin_client, chain):
    from tests.test_admin import shown_data

    page = admin_client.get(f"/admin/jobs/job/{chain.pk}/change/")
    data = shown_data(page)
    data["description"] = "changed"
    response = admin_client.post(f"/admin/jobs/job/{chain.pk}/change/", data, follow=True)
    assert response.status_code == 200
    chain.refresh_from_db()
    assert chain.description == "changed"
    html = response.content.decode()
    assert re.search(r'<li class="warning">Saved, but step &#x27;join&#x27; reads &#x27;.missing&#x27;', html)


def test_yaml_import_loads_a_catalogue_like_loadjobs(admin_client):
    upload = SimpleUploadedFile("grep_head.yaml", EXAMPLE.read_bytes())
    response = admin_client.post("/admin/jobs/job/import/", {"file": upload}, follow=True)
    assert response.status_code == 200
    assert Job.objects.filter(name="grep_head").exists()
    assert "Loaded 1 queue type, 1 backend, 2 tasks, 1 job (5 created, 0 updated) from grep_head.yaml." in response.content.decode()


def test_yaml_import_shows_the_error_and_loads_nothing(admin_client):
    text = EXAMPLE.read_text().replace("task: head_lines", "task: nowhere")
    response = admin_client.post("/admin/jobs/job/import/", {"file": SimpleUploadedFile("bad.yaml", text.encode())})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was loaded. bad.yaml: jobs[0].steps[1]" in html and "nowhere" in html
    assert not Job.objects.exists() and not Task.objects.exists()


def test_yaml_import_refuses_a_file_that_is_not_text(admin_client):
    response = admin_client.post("/admin/jobs/job/import/", {"file": SimpleUploadedFile("x.yaml", b"\xff\xfe\x00")})
    assert response.status_code == 400 and "is not UTF-8 text" in response.content.decode()


def test_yaml_import_is_for_staff_with_the_rights(client, owner):
    client.force_login(owner)
    assert client.get("/admin/jobs/job/import/").status_code == 302  # not staff: the admin's login


def test_the_job_list_links_the_import(admin_client):
    assert 'href="/admin/jobs/job/import/"' in admin_client.get("/admin/jobs/job/").content.decode()


def test_the_admin_is_branded_and_lists_the_catalogue_before_django_q(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert "Sluice administration" in html and "Django administration" not in html
    assert "<title>Catalogue, runs and accounts | Sluice admin</title>" in html
    apps = re.findall(r'<caption>\s*<a href="/admin/([a-z_]+)/"', html)
    assert apps[0] == "jobs" and apps[-1] == "django_q", apps


def test_yaml_import_needs_the_rights_to_add_and_change_every_kind(client, db):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    editor = get_user_model().objects.create_user("editor", password="pw-editor-123", is_staff=True)
    editor.user_permissions.add(*Permission.objects.filter(codename__in=["add_job", "change_job", "view_job"]))
    client.force_login(editor)
    assert client.get("/admin/jobs/job/import/").status_code == 403
    editor.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs", codename__regex=r"^(add|change)_(queuetype|backend|task)$"))
    client.force_login(get_user_model().objects.get(pk=editor.pk))
    assert client.get("/admin/jobs/job/import/").status_code == 200
