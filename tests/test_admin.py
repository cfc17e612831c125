"""Admin screens: pages render, inline validation, actions, read-only runs."""
import json
import re
import sys
import types

import pytest
from django.core.files.base import ContentFile
from django.test import Client

import jobs

from execution.models import Batch, Message, Node, Result, Submission
from jobs.models import Job, JobPromise, Step, Task, Validator
from jobs.services import duplicate_job
from tests.factories import make_backend, make_job, make_parameter, make_queue_type, make_task


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def catalogue(db):
    """One of each catalogue row, and a submission with a node, a result and a message."""
    task = make_task(name="align", executable="align $P1", in_glob=".input", out_glob=".aln")
    make_parameter(task, rest_alias="gap", flag="-g")
    job = make_job(name="pipeline", steps=[task])
    submission = Submission.objects.create(job=job, batch=Batch.objects.create(), submission_name="first")
    node = Node.objects.create(submission=submission, key="align", task=task)
    Result.objects.create(submission=submission, node=node, name="x.aln", file=ContentFile(b"ACGT", name="x.aln"), size=4)
    Message.objects.create(submission=submission, node=node, text="align started")
    return types.SimpleNamespace(task=task, job=job, submission=submission, node=node)


def form_data(client, url, fields, rows=None):
    """Return POST data for the admin add form at ``url``: ``fields`` plus inline ``rows`` by prefix."""
    rows = rows or {}
    page = client.get(url)
    data = dict(fields)
    for inline in page.context["inline_admin_formsets"]:
        prefix = inline.formset.prefix
        data.update({f"{prefix}-TOTAL_FORMS": len(rows.get(prefix, [])), f"{prefix}-INITIAL_FORMS": 0})
        data.update({f"{prefix}-MIN_NUM_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000})
        for index, row in enumerate(rows.get(prefix, [])):
            data.update({f"{prefix}-{index}-{name}": value for name, value in row.items()})
    assert set(rows) <= {inline.formset.prefix for inline in page.context["inline_admin_formsets"]}
    return data


def shown_data(page):
    """Return POST data that resubmits the admin change form ``page`` as it is shown."""
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for bound in (bound for form in forms for bound in form):
        value = bound.value()
        # A JSON field's shown value is already its text; preparing it again would quote it twice.
        value = value if isinstance(value, str) else bound.field.prepare_value(value)
        if value is not None and value is not False:
            data[bound.html_name] = "on" if value is True else value
    return data


def inline_errors(response, prefix):
    """Return the formset-wide error messages of the inline ``prefix`` on a re-rendered form."""
    for inline in response.context["inline_admin_formsets"]:
        if inline.formset.prefix == prefix:
            return list(inline.formset.non_form_errors())
    raise AssertionError(f"no inline with prefix {prefix!r}")


def task_fields(name="t", executable="true", **fields):
    return {
        "name": name,
        "backend": make_backend().pk,
        "executable": executable,
        "incomplete_outputs_behaviour": "fail",
        "custom_exit_behaviour": "continue",
        "retries": 0,
        **fields,
    }


def step_row(key, task, after="", ordering=0):
    return {"key": key, "task": task.pk, "after": after, "ordering": ordering, "enabled": "on"}


def parameter_row(alias, position=0):
    return {"rest_alias": alias, "position": position, "type": "string", "spacing": "on"}


CATALOGUE_MODELS = ["queuetype", "backend", "task", "job"]


@pytest.mark.parametrize("model", [*(f"jobs/{m}" for m in CATALOGUE_MODELS), "execution/submission", "execution/batch"])
def test_staff_sees_every_changelist(admin_client, catalogue, model):
    assert admin_client.get(f"/admin/{model}/").status_code == 200


@pytest.mark.parametrize("model", CATALOGUE_MODELS)
def test_staff_sees_catalogue_add_and_change_pages(admin_client, catalogue, model):
    first = {"queuetype": make_queue_type, "backend": make_backend, "task": lambda: catalogue.task, "job": lambda: catalogue.job}[model]()
    assert admin_client.get(f"/admin/jobs/{model}/add/").status_code == 200
    assert admin_client.get(f"/admin/jobs/{model}/{first.pk}/change/").status_code == 200


@pytest.mark.parametrize("model", ["submission", "batch"])
def test_runs_are_view_only(admin_client, catalogue, model):
    obj = catalogue.submission if model == "submission" else catalogue.submission.batch
    url = f"/admin/execution/{model}/{obj.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    assert admin_client.get(f"/admin/execution/{model}/add/").status_code == 403
    assert admin_client.post(url, {"status": "complete"}).status_code == 403


def test_submission_page_shows_nodes_results_and_messages_without_a_status_field(admin_client, catalogue):
    page = admin_client.get(f"/admin/execution/submission/{catalogue.submission.pk}/change/")
    html = page.content.decode()
    assert 'name="status"' not in html
    assert "align started" in html
    result = catalogue.submission.results.get()
    assert f'href="/api/submissions/{catalogue.submission.uuid}/results/{result.pk}/"' in html
    catalogue.submission.refresh_from_db()
    assert catalogue.submission.status == "submitted"


def test_an_active_submission_cannot_be_deleted(admin_client, catalogue):
    assert admin_client.get(f"/admin/execution/submission/{catalogue.submission.pk}/delete/").status_code == 403


def test_submissions_are_found_by_uuid(admin_client, catalogue):
    page = admin_client.get("/admin/execution/submission/", {"q": str(catalogue.submission.uuid)})
    assert list(page.context["cl"].result_list) == [catalogue.submission]


def test_it_refuses_a_task_using_more_parameters_than_it_has(admin_client, db):
    url = "/admin/jobs/task/add/"
    data = form_data(admin_client, url, task_fields(executable="run $P1 $P2"), {"parameters": [parameter_row("a")]})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert inline_errors(response, "parameters") == ["$P2 is used but the task has 1 parameter"]
    assert not Task.objects.filter(name="t").exists()


def test_it_saves_a_task_whose_parameters_cover_its_placeholders(admin_client, db):
    url = "/admin/jobs/task/add/"
    rows = {"parameters": [parameter_row("a", 0), parameter_row("b", 1)]}
    response = admin_client.post(url, form_data(admin_client, url, task_fields(executable="run $P1 $P2"), rows))
    assert response.status_code == 302
    assert list(Task.objects.get(name="t").parameters.values_list("rest_alias", flat=True)) == ["a", "b"]


def test_it_refuses_deleting_a_parameter_the_executable_still_uses(admin_client, db):
    task = make_task(name="t", executable="run $P1 $P2")
    make_parameter(task, rest_alias="a")
    make_parameter(task, rest_alias="b")
    url = f"/admin/jobs/task/{task.pk}/change/"
    data = {**shown_data(admin_client.get(url)), "parameters-1-DELETE": "on"}
    response = admin_client.post(url, data)
    assert inline_errors(response, "parameters") == ["$P2 is used but the task has 1 parameter"]
    assert task.parameters.count() == 2


def test_resubmitting_a_task_unchanged_saves(admin_client, db):
    task = make_task(name="t", executable="run $P1 $P2", timeout=5)
    make_parameter(task, rest_alias="a")
    make_parameter(task, rest_alias="b")
    url = f"/admin/jobs/task/{task.pk}/change/"
    assert admin_client.post(url, shown_data(admin_client.get(url))).status_code == 302
    task.refresh_from_db()
    assert (task.timeout, task.parameters.count()) == (5, 2)


def test_it_rejects_a_cyclic_job(admin_client, db):
    task = make_task(name="m")
    url = "/admin/jobs/job/add/"
    rows = {"steps": [step_row("a", task, after="b"), step_row("b", task, after="a")]}
    response = admin_client.post(url, form_data(admin_client, url, {"name": "loop", "runnable": "on"}, rows))
    assert response.status_code == 200
    [message] = inline_errors(response, "steps")
    assert re.fullmatch(r"steps form a cycle: (a -> b -> a|b -> a -> b)", message)
    assert not Job.objects.filter(name="loop").exists()


def test_it_rejects_a_step_after_an_unknown_key(admin_client, db):
    task = make_task(name="m")
    url = "/admin/jobs/job/add/"
    rows = {"steps": [step_row("a", task, after="nope")]}
    response = admin_client.post(url, form_data(admin_client, url, {"name": "j"}, rows))
    assert inline_errors(response, "steps") == ["step 'a' runs after unknown step 'nope'"]


def test_after_text_saves_as_a_list(admin_client, db):
    task = make_task(name="m")
    url = "/admin/jobs/job/add/"
    rows = {"steps": [step_row("a", task), step_row("b", task), step_row("c", task, after=" a, b ,")]}
    response = admin_client.post(url, form_data(admin_client, url, {"name": "j"}, rows))
    assert response.status_code == 302
    assert Step.objects.get(job__name="j", key="c").after == ["a", "b"]
    assert Step.objects.get(job__name="j", key="a").after == []


def test_change_page_shows_after_as_text(admin_client, db):
    task = make_task(name="m")
    job = make_job(name="j", steps=[("a", task), ("b", task), ("c", task, {"after": ["a", "b"]})])
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/")
    assert 'value="a, b"' in page.content.decode()


def test_editing_after_on_the_change_page_keeps_a_list(admin_client, db):
    task = make_task(name="m")
    job = make_job(name="j", steps=[("a", task), ("b", task), ("c", task, {"after": ["a", "b"]})])
    url = f"/admin/jobs/job/{job.pk}/change/"
    data = {**shown_data(admin_client.get(url)), "steps-2-after": "b"}
    assert admin_client.post(url, data).status_code == 302
    assert Step.objects.get(job=job, key="c").after == ["b"]
    assert Step.objects.get(job=job, key="a").after == []


def test_step_key_defaults_to_the_task_name(admin_client, db):
    task = make_task(name="count")
    url = "/admin/jobs/job/add/"
    response = admin_client.post(url, form_data(admin_client, url, {"name": "j"}, {"steps": [step_row("", task)]}))
    assert response.status_code == 302
    assert list(Job.objects.get(name="j").steps.values_list("key", flat=True)) == ["count"]


def test_runnable_is_editable_from_the_job_list(admin_client, db):
    job = make_job(name="j")
    data = {"form-TOTAL_FORMS": 1, "form-INITIAL_FORMS": 1, "form-0-id": job.pk, "_save": "Save"}
    assert admin_client.post("/admin/jobs/job/", data).status_code == 302
    job.refresh_from_db()
    assert not job.runnable


def test_export_action_asks_yaml_io_for_the_selected_jobs(admin_client, db, monkeypatch):
    make_job(name="kept")
    chosen = make_job(name="chosen")
    fake = types.SimpleNamespace(dump_text=lambda job_names=None: f"jobs: {job_names}\n")
    # Both, so the stand-in wins whether or not the real module was imported already.
    monkeypatch.setitem(sys.modules, "jobs.yaml_io", fake)
    monkeypatch.setattr(jobs, "yaml_io", fake, raising=False)
    response = admin_client.post("/admin/jobs/job/", {"action": "export_yaml", "_selected_action": [chosen.pk]})
    assert response["Content-Disposition"] == 'attachment; filename="sluice-jobs.yaml"'
    assert response.content.decode() == "jobs: ['chosen']\n"


def test_export_action_returns_yaml_naming_the_job(admin_client, db):
    job = make_job(name="exported", steps=[make_task(name="m")])
    response = admin_client.post("/admin/jobs/job/", {"action": "export_yaml", "_selected_action": [job.pk]})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="sluice-jobs.yaml"'
    assert "exported" in response.content.decode()


def test_duplicate_action_copies_the_job_with_its_steps(admin_client, db):
    task = make_task(name="m")
    job = make_job(name="orig", steps=[("a", task), ("b", task, {"after": ["a"]})])
    for _ in range(2):
        response = admin_client.post("/admin/jobs/job/", {"action": "duplicate", "_selected_action": [job.pk]})
        assert response.status_code == 302
    copy = Job.objects.get(name="orig-copy")
    assert [(s.key, s.task, s.after) for s in copy.steps.all()] == [("a", task, []), ("b", task, ["a"])]
    assert not copy.runnable
    assert Job.objects.filter(name="orig-copy-2").exists()


def test_duplicate_job_copies_validators_and_promises_and_leaves_the_original(db):
    job = make_job(name="orig", steps=[make_task(name="m")])
    Validator.objects.create(job=job, validation_type="fasta")
    JobPromise.objects.create(job=job, kind="max_nodes", spec={"value": 3})
    copy = duplicate_job(job, new_name="other")
    job.refresh_from_db()
    assert (job.name, job.runnable, job.steps.count()) == ("orig", True, 1)
    assert [v.validation_type for v in copy.validators.all()] == ["fasta"]
    assert [p.as_dict() for p in copy.promises.all()] == [{"kind": "max_nodes", "value": 3}]


def test_anonymous_user_is_redirected_to_login(client, db):
    response = client.get("/admin/jobs/job/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def field_errors(response, prefix, field):
    """Return the errors of ``field`` in the rows of the inline ``prefix`` on a re-rendered form."""
    for inline in response.context["inline_admin_formsets"]:
        if inline.formset.prefix == prefix:
            return [error for form in inline.formset.forms for error in form.errors.get(field, [])]
    raise AssertionError(f"no inline with prefix {prefix!r}")


def test_it_refuses_a_parameter_whose_rest_name_another_task_has(admin_client, db):
    make_parameter(make_task(name="a_b", executable="echo $P1"), rest_alias="c")
    url = "/admin/jobs/task/add/"
    response = admin_client.post(url, form_data(admin_client, url, task_fields(name="a", executable="echo $P1"), {"parameters": [parameter_row("b_c")]}))
    assert response.status_code == 200
    assert field_errors(response, "parameters", "rest_alias") == [
        "parameter 'b_c' of task 'a' and parameter 'c' of task 'a_b' would both be sent as 'a_b_c'; change one of the rest aliases"
    ]
    assert not Task.objects.filter(name="a").exists()


def test_renaming_a_task_into_a_clash_is_refused(admin_client, db):
    make_parameter(make_task(name="a_b", executable="echo $P1"), rest_alias="c")
    task = make_task(name="x", executable="echo $P1")
    make_parameter(task, rest_alias="b_c")
    url = f"/admin/jobs/task/{task.pk}/change/"
    response = admin_client.post(url, {**shown_data(admin_client.get(url)), "name": "a"})
    assert response.status_code == 200
    assert "would both be sent as 'a_b_c'" in field_errors(response, "parameters", "rest_alias")[0]
    task.refresh_from_db()
    assert task.name == "x"


def test_it_refuses_a_value_placeholder_inside_quotes(admin_client, db):
    url = "/admin/jobs/task/add/"
    response = admin_client.post(url, form_data(admin_client, url, task_fields(executable="grep '$P1' $I1", in_glob=".input"), {"parameters": [parameter_row("a")]}))
    assert response.status_code == 200
    [message] = response.context["adminform"].form.errors["executable"]
    assert message.startswith("$P1 is inside single quotes on line 1, where its quoting does not hold; write it bare")
    assert not Task.objects.filter(name="t").exists()


def test_it_refuses_a_string_parameter_in_shell_arithmetic_but_takes_an_int(admin_client, db):
    url = "/admin/jobs/task/add/"
    fields = task_fields(executable="echo $(( $P1 * 2 ))")
    response = admin_client.post(url, form_data(admin_client, url, fields, {"parameters": [parameter_row("n")]}))
    [message] = inline_errors(response, "parameters")
    assert message.startswith("$P1 is inside arithmetic $(( )) on line 1, where bash evaluates text as arithmetic")
    response = admin_client.post(url, form_data(admin_client, url, fields, {"parameters": [{**parameter_row("n"), "type": "int"}]}))
    assert response.status_code == 302


def test_allow_dash_is_editable_with_the_parameters(admin_client, db):
    url = "/admin/jobs/task/add/"
    rows = {"parameters": [{**parameter_row("flags"), "default": "-n", "allow_dash": "on"}]}
    response = admin_client.post(url, form_data(admin_client, url, task_fields(executable="cat $P1 $I1", in_glob=".input"), rows))
    assert response.status_code == 302
    assert Task.objects.get(name="t").parameters.get().allow_dash is True


def test_it_refuses_a_runnable_job_without_steps(admin_client, db):
    url = "/admin/jobs/job/add/"
    response = admin_client.post(url, form_data(admin_client, url, {"name": "empty", "runnable": "on"}))
    assert inline_errors(response, "steps") == ["job 'empty' is runnable but has no steps; add a step, or make it not runnable to keep it as a draft"]
    assert not Job.objects.filter(name="empty").exists()
    assert admin_client.post(url, form_data(admin_client, url, {"name": "empty"})).status_code == 302


@pytest.fixture
def owned_result(owner):
    task = make_task(name="align", executable="true", out_glob=".aln")
    submission = Submission.objects.create(job=make_job(name="pipeline", steps=[task]), user=owner)
    node = Node.objects.create(submission=submission, key="align", task=task)
    return Result.objects.create(submission=submission, node=node, name="x.aln", file=ContentFile(b"ACGT", name="x.aln"), size=4)


def test_the_admin_download_link_serves_the_file_to_staff_and_not_to_other_users(admin_client, owned_result, other_user):
    page = admin_client.get(f"/admin/execution/submission/{owned_result.submission.pk}/change/")
    [link] = re.findall(r'<a href="([^"]+)">download</a>', page.content.decode())
    response = admin_client.get(link)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"ACGT"
    assert response["Content-Disposition"] == 'attachment; filename="x.aln"'
    stranger = Client()
    assert stranger.get(link).status_code == 404
    stranger.force_login(other_user)
    assert stranger.get(link).status_code == 404


def greeting_job():
    """A job 'greeting' whose parameter greet_name is required, and a sub-job task 'run_greeting' that runs it."""
    greet = make_task(name="greet", executable="echo $P1")
    make_parameter(greet, rest_alias="name", switchless=True, required=True)
    make_job(name="greeting", steps=[greet])
    return make_task(name="run_greeting", executable="greeting", backend=make_backend(name="subjobs", queue_type=make_queue_type(name="jobs", execution_behaviour="job")))


def test_it_saves_a_sub_job_step_with_params(admin_client, db):
    task = greeting_job()
    url = "/admin/jobs/job/add/"
    rows = {"steps": [{**step_row("hello", task), "params": '{"greet_name": "\'world\'"}'}]}
    response = admin_client.post(url, form_data(admin_client, url, {"name": "parent", "runnable": "on"}, rows))
    assert response.status_code == 302
    assert Step.objects.get(job__name="parent").params == {"greet_name": "'world'"}
    url = f"/admin/jobs/job/{Job.objects.get(name='parent').pk}/change/"
    assert admin_client.post(url, shown_data(admin_client.get(url))).status_code == 302
    assert Step.objects.get(job__name="parent").params == {"greet_name": "'world'"}


def test_it_refuses_a_sub_job_step_that_leaves_a_required_child_parameter_unset(admin_client, db):
    task = greeting_job()
    url = "/admin/jobs/job/add/"
    rows = {"steps": [{**step_row("hello", task), "params": ""}]}
    response = admin_client.post(url, form_data(admin_client, url, {"name": "parent", "runnable": "on"}, rows))
    assert response.status_code == 200
    [message] = inline_errors(response, "steps")
    assert message.startswith("step 'hello' runs job 'greeting', whose parameter 'greet_name' is required and has no default")
    assert not Job.objects.filter(name="parent").exists()


def component_row(start, end):
    return {"kind": "component", "spec": json.dumps({"from": start, "to": end, "alternatives": ["x"]})}


def test_a_component_may_lie_between_steps_saved_in_the_same_form_and_nowhere_else(admin_client, db):
    task = make_task(name="m")
    url = "/admin/jobs/job/add/"
    rows = {"steps": [step_row("a", task), step_row("b", task, after="a")], "promises": [component_row("a", "c")]}
    response = admin_client.post(url, form_data(admin_client, url, {"name": "region", "runnable": "on"}, rows))
    assert response.status_code == 200
    [message] = inline_errors(response, "promises")
    assert message == "component 'to' names 'c', which is not a step of the job; its steps are a, b"
    rows["promises"] = [component_row("a", "b")]
    assert admin_client.post(url, form_data(admin_client, url, {"name": "region", "runnable": "on"}, rows)).status_code == 302
    assert Job.objects.get(name="region").promises.get().as_dict()["to"] == "b"


def test_a_child_that_gains_a_required_parameter_warns_and_its_parent_refuses_submissions(admin_client, db):
    task = greeting_job()
    make_job(name="parent", steps=[("hello", task, {"params": {"greet_name": "'world'"}})])
    greet = Task.objects.get(name="greet")
    url = f"/admin/jobs/task/{greet.pk}/change/"
    data = shown_data(admin_client.get(url))
    total = int(data["parameters-TOTAL_FORMS"])
    data.update({f"parameters-{total}-{name}": value for name, value in {**parameter_row("mood", position=1), "required": "on"}.items()})
    data["parameters-TOTAL_FORMS"] = total + 1
    response = admin_client.post(url, data, follow=True)
    warnings = [str(message) for message in response.context["messages"] if message.level_tag == "warning"]
    assert warnings == [
        "Job 'parent' takes no submissions until it is changed: step 'hello' runs job 'greeting', whose parameter 'greet_mood' is required and has "
        "no default; give it a value in the step's params, e.g. params: {greet_mood: \"'value'\"}."
    ]
    answer = admin_client.post("/api/submissions/", {"job": "parent"}, content_type="application/json")
    assert answer.status_code == 400, answer.content
    assert "job 'parent' is not runnable: step 'hello' runs job 'greeting', whose parameter 'greet_mood' is required" in json.dumps(answer.json())
