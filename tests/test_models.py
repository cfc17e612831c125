"""Catalogue validation: the rules admin, YAML and the API share."""
import importlib

import pytest
from django.core.exceptions import ValidationError

from jobs.models import Job, JobPromise, Parameter, Step, Task
from jobs.params import LeadingDash, ParameterValueError, coerce
from jobs.validators import VALIDATORS, UploadInvalid, validate
from tests.factories import make_backend, make_job, make_parameter, make_task

pytestmark = pytest.mark.django_db


def errors_of(instance):
    with pytest.raises(ValidationError) as caught:
        instance.full_clean()
    return caught.value.message_dict


def test_a_placeholder_beyond_the_in_glob_is_refused():
    task = make_task("t", "cat $I1 $I3", in_glob=".a,.b")
    assert errors_of(task)["executable"] == ["$I3 is used but in_glob defines 2 endings"]


def test_an_out_placeholder_without_an_out_glob_is_refused():
    task = make_task("t", "cmd > $O1")
    assert errors_of(task)["executable"] == ["$O1 is used but out_glob defines 0 endings"]


def test_a_parameter_placeholder_beyond_the_parameters_is_refused():
    task = make_task("t", "cmd $P1 $P2")
    make_parameter(task, "a", flag="-a")
    with pytest.raises(ValidationError, match=r"\$P2 is used but the task has 1 parameter"):
        task.check_parameters()
    make_parameter(task, "b", flag="-b")
    task.check_parameters()


def test_globs_must_be_file_endings_not_paths():
    task = make_task("t", "true", out_glob="../../etc/passwd, .ok", stdout_glob="*.x")
    errors = errors_of(task)
    assert "'../../etc/passwd' is not a file ending" in errors["out_glob"][0]
    assert "'*.x' is not a file ending" in errors["stdout_glob"][0]


def test_custom_exit_statuses_must_be_exit_codes():
    errors = errors_of(make_task("t", "true", custom_exit_status="1, x, 300"))
    assert errors["custom_exit_status"] == ["'x' is not an exit status between 1 and 255", "'300' is not an exit status between 1 and 255"]
    assert make_task("u", "true", custom_exit_status="1, 70").exit_statuses == {1, 70}


def test_a_backend_root_must_be_absolute():
    backend = make_backend(root_path="relative/dir")
    assert errors_of(backend)["root_path"] == ["must be an absolute path"]


def test_parameter_rules_name_the_field():
    task = make_task("t", "true")
    choice = Parameter(task=task, rest_alias="c", type="choice")
    assert "needs a comma-separated list" in errors_of(choice)["choices"][0]
    flagless = Parameter(task=task, rest_alias="b", bool_valued=True)
    assert "needs a flag" in errors_of(flagless)["flag"][0]
    bad_default = Parameter(task=task, rest_alias="n", type="int", default="ten", flag="-n")
    assert errors_of(bad_default)["default"] == ["the default must be an integer, got 'ten'"]


def test_rest_names_join_task_name_and_alias():
    task = make_task("align", "true")
    assert make_parameter(task, "gap", flag="-g").rest_name == "align_gap"


def test_a_step_after_must_be_a_list_of_keys():
    step = Step(job=make_job(), key="a", task=make_task("t", "true"), after="b")
    assert errors_of(step)["after"] == ["must be a list of step keys"]


def test_job_check_steps_reports_cycles():
    a, b = make_task("a", "true"), make_task("b", "true")
    job = make_job(steps=[("a", a, {"after": ["b"]}), ("b", b, {"after": ["a"]})])
    with pytest.raises(ValidationError, match="steps form a cycle"):
        job.check_steps()


def test_job_promises_are_validated():
    job = make_job()
    assert "needs 'tasks'" in errors_of(JobPromise(job=job, kind="only_tasks", spec={}))["spec"][0]
    assert "positive integer" in errors_of(JobPromise(job=job, kind="max_nodes", spec={"value": 0}))["spec"][0]
    JobPromise(job=job, kind="max_nodes", spec={"value": 5}).full_clean()


def test_job_parameters_are_listed_once_per_rest_name():
    task = make_task("t", "true")
    make_parameter(task, "x", flag="-x")
    job = make_job(steps=[("one", task), ("two", task)])
    assert [p.rest_name for p in job.parameters()] == ["t_x"]


@pytest.mark.parametrize(
    "kind, raw, expected",
    [("int", " 12 ", 12), ("float", "1.5", 1.5), ("bool", "Yes", True), ("bool", "off", False), ("string", 7, "7"), ("choice", "b", "b")],
)
def test_coerce_accepts_good_values(kind, raw, expected):
    assert coerce(kind, raw, ["a", "b"]) == expected


@pytest.mark.parametrize("kind, raw", [("int", "1.5"), ("int", True), ("float", "x"), ("bool", "maybe"), ("choice", "z")])
def test_coerce_refuses_bad_values(kind, raw):
    with pytest.raises(ParameterValueError):
        coerce(kind, raw, ["a", "b"])


GOOD = {
    "none": b"anything",
    "fasta": b">seq1\nACDEFGHIK\nLMN\n",
    "seq": b"ACGTACGT\n",
    "pdb": b"HEADER    TEST\nATOM      1  N   MET A   1      11.104   6.134  -6.504  1.00  0.00           N\nEND\n",
    "png": b"\x89PNG\r\n\x1a\n....",
    "gif": b"GIF89a....",
    "jpeg": b"\xff\xd8\xff\xe0....",
    "json": b'{"a": [1, 2]}',
    "csv": b"a,b\n1,2\n3,4\n",
    "aa_seq": b">p\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEK\n",
    "aa_pdb_file": b"atom     1  N   MET\n",
}
BAD = {
    "fasta": b">seq1\nAC GT 12\n",
    "seq": b"",
    "pdb": b"hello\n",
    "png": b"GIF89a",
    "gif": b"\x89PNG",
    "jpeg": b"nope",
    "json": b"{",
    "csv": b"a,b\n1\n",
    "aa_seq": b">p\nMKTAYIAKQR\n",
    "aa_pdb_file": b"HETATM    1  O   HOH\n",
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_validators_accept_good_uploads(name):
    validate(name, GOOD[name])


@pytest.mark.parametrize("name", sorted(BAD))
def test_validators_refuse_bad_uploads_saying_why(name):
    with pytest.raises(UploadInvalid, match="expected"):
        validate(name, BAD[name])


def test_every_registered_validator_is_tested():
    assert set(VALIDATORS) == set(GOOD)


def test_a_bad_default_is_refused_before_the_task_is_saved():
    from jobs.models import Task

    task = Task(name="new", executable="true", backend=make_backend())
    parameter = Parameter(task=task, rest_alias="n", type="int", default="abc", flag="-n")
    assert errors_of(parameter)["default"] == ["the default must be an integer, got 'abc'"]


def test_a_promise_without_fields_accepts_a_blank_spec():
    promise = JobPromise(job=make_job(), kind="no_new_nodes", spec=None)
    promise.full_clean()
    assert promise.spec == {}


# --- Dashes, typed defaults, REST names, jobs without steps -------------------------------------


@pytest.mark.parametrize("raw", ["-r", "--output=/x", " \t-x"])
def test_a_string_that_begins_with_a_dash_is_refused_unless_allowed(raw):
    with pytest.raises(LeadingDash, match=r"^must not begin with '-' \(a program could take it for an option\), got "):
        coerce("string", raw)
    assert coerce("string", raw, allow_dash=True) == raw


@pytest.mark.parametrize("kind, raw, expected", [("int", "-5", -5), ("float", "-0.5", -0.5), ("choice", "-a", "-a"), ("string", "a-b", "a-b")])
def test_numbers_keep_their_sign_choices_and_inner_dashes_pass(kind, raw, expected):
    assert coerce(kind, raw, ["-a"]) == expected


def test_a_dashed_value_is_refused_naming_the_parameter():
    parameter = make_parameter(make_task("sort", "sort $P1 $I1", in_glob=".input"), "key")
    with pytest.raises(ParameterValueError, match=r"^parameter 'sort_key' must not begin with '-'"):
        parameter.parse("--output=/elsewhere")


def test_typed_defaults_are_values_of_their_type():
    task = make_task("t", "true")
    made = {
        "n": make_parameter(task, "n", type="int", default="3"),
        "x": make_parameter(task, "x", type="float", default="0.5"),
        "b": make_parameter(task, "b", type="bool", default="yes"),
        "v": make_parameter(task, "v", flag="-v", bool_valued=True, default="false"),
        "s": make_parameter(task, "s", default="abc"),
        "none": make_parameter(task, "none", type="int"),
    }
    assert {alias: parameter.typed_default for alias, parameter in made.items()} == {"n": 3, "x": 0.5, "b": True, "v": False, "s": "abc", "none": None}


def test_rest_names_that_clash_across_tasks_are_refused_naming_both():
    make_parameter(make_task("a_b", "echo $P1"), "c")
    clashing = Parameter(task=make_task("a", "echo $P1"), rest_alias="b_c")
    assert errors_of(clashing)["rest_alias"] == [
        "parameter 'b_c' of task 'a' and parameter 'c' of task 'a_b' would both be sent as 'a_b_c'; change one of the rest aliases"
    ]
    Parameter(task=Task.objects.get(name="a"), rest_alias="b_d").full_clean()


def test_a_runnable_job_without_steps_is_refused_and_not_submittable():
    job = make_job("empty")
    with pytest.raises(ValidationError, match="job 'empty' is runnable but has no steps"):
        job.check_steps()
    assert job.refusal() == "job 'empty' has no steps, so it is not runnable"
    assert list(Job.accepting()) == []
    job.runnable = False
    job.check_steps()
    assert job.refusal() == "job 'empty' is not runnable"


def test_the_migration_keeps_saved_dashed_defaults_working():
    from django.apps import apps

    migration = importlib.import_module("jobs.migrations.0006_parameter_allow_dash")
    task = make_task("t", "cmd $P1 $P2 $P3")
    dashed, number, plain = make_parameter(task, "a", default=" -v"), make_parameter(task, "b", type="int", default="-5"), make_parameter(task, "c", default="x")
    migration.allow_dashed_defaults(apps, None)
    assert [Parameter.objects.get(pk=p.pk).allow_dash for p in (dashed, number, plain)] == [True, False, False]


def sub_job_step(child_parameters=(), **params):
    """A job 'parent' whose step 'each' runs job 'child' (its task 'show' has ``child_parameters``) with ``params``."""
    from tests.factories import make_queue_type

    show = make_task("show", "true")
    for alias, fields in child_parameters:
        make_parameter(show, alias, **fields)
    make_job("child", steps=[show])
    runner = make_task("run_child", "child", backend=make_backend("subjobs", make_queue_type("jobs", "job")))
    return make_job("parent", steps=[("each", runner, {"params": params})])


def test_a_required_child_parameter_without_a_default_needs_a_mapping():
    job = sub_job_step([("word", {"required": True}), ("size", {"required": True, "default": "3"})])
    with pytest.raises(ValidationError) as caught:
        job.check_subjobs()
    assert caught.value.message_dict["steps"] == [
        "step 'each' runs job 'child', whose parameter 'show_word' is required and has no default; "
        "give it a value in the step's params, e.g. params: {show_word: \"'value'\"}"
    ]
    Step.objects.filter(key="each").update(params={"show_word": "'x'"})
    job.check_subjobs()


def test_a_mapping_to_a_parameter_the_child_lacks_is_refused():
    job = sub_job_step([("word", {})], show_colour="'red'")
    assert job.subjob_problems() == [("each", "step 'each' maps 'show_colour', but job 'child' has no parameter 'show_colour'; it takes show_word")]


def test_params_on_a_step_that_runs_no_sub_job_are_refused():
    step = Step(job=make_job("j"), key="a", task=make_task("plain", "true"), params={"x_y": "1"})
    assert "task 'plain' does not run a sub-job" in errors_of(step)["params"][0]
    assert Step(job=Job.objects.get(name="j"), key="b", task=Task.objects.get(name="plain"), params=None).full_clean() is None
