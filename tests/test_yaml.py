"""Catalogue YAML: loading, dumping, round trips, errors that name the bad field, and the commands."""
import datetime
import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs.models import Backend, Configuration, Environment, Job, JobPromise, Parameter, QueueType, Step, Task, Validator
from jobs.yaml_io import CatalogueError, dump_catalogue, dump_text, load_catalogue, load_text

from .conftest import embedded_env
from .factories import make_backend, make_job, make_queue_type, make_task

MODELS = [QueueType, Backend, Task, Parameter, Environment, Configuration, Job, Step, Validator, JobPromise]

CATALOGUE = """
queue_types:
  - name: localhost
    execution_behaviour: localhost
  - name: py
    execution_behaviour: python
backends:
  - name: local
    queue_type: localhost
    root_path: /srv/sluice
  - name: pybox
    queue_type: py
tasks:
  - name: align
    backend: local
    description: Align the sequences.
    in_glob: .input
    out_glob: .aln, .log
    stdout_glob: .out
    executable: |
      aligner $P1 $P2 $P3 --in $I1 --out $O1
      echo done > $O2
    parameters:
      - rest_alias: gap
        flag: --gap=
        spacing: false
        type: int
        default: 10
        required: true
        description: Gap penalty.
      - rest_alias: mode
        flag: -m
        type: choice
        choices: [fast, slow]
        default: fast
      - rest_alias: verbose
        flag: -v
        bool_valued: true
    environment:
      OMP_NUM_THREADS: 4
      LANG: C
    configurations:
      - {kind: software, name: aligner, version: "2.1"}
      - {kind: dataset, name: pdb70}
    incomplete_outputs_behaviour: continue
    custom_exit_status: 3, 4
    custom_exit_behaviour: terminate
    timeout: 600
    retries: 2
  - name: count
    backend: pybox
    in_glob: .aln
    out_glob: .txt
    executable: print(open("$I1").read().count(">"))
    dynamic: true
  - name: report
    backend: local
    in_glob: .txt
    executable: cat $I1
jobs:
  - name: pipeline
    description: Align, count, report.
    validators: [fasta]
    steps:
      - {task: align}
      - {id: count, task: count, after: [align]}
      - {id: report, task: report, after: [count], enabled: false}
    promises:
      - {kind: only_tasks, tasks: [count, report]}
      - {kind: max_nodes, value: 10}
  - name: quick
    runnable: false
    steps:
      - {task: align, ordering: 0}
      - {task: report, ordering: 1}
"""


def catalogue():
    """Return a fresh copy of the full-featured catalogue as plain data."""
    return yaml.safe_load(CATALOGUE)


def row_counts():
    return {model.__name__: model.objects.count() for model in MODELS}


def empty_database():
    # Steps protect their tasks, and tasks their backends: delete from the top down.
    for model in (Job, Task, Backend, QueueType):
        model.objects.all().delete()


@pytest.fixture
def loaded(db):
    return load_catalogue(catalogue())


# --- Loading --------------------------------------------------------------------------------------


def test_it_loads_a_full_featured_catalogue(loaded):
    assert loaded.counts == {"queue_types": 2, "backends": 2, "tasks": 3, "jobs": 2}
    assert (loaded.created, loaded.updated) == (9, 0)
    align = Task.objects.get(name="align")
    assert align.backend.queue_type.execution_behaviour == "localhost"
    assert align.executable == "aligner $P1 $P2 $P3 --in $I1 --out $O1\necho done > $O2\n"
    assert (align.timeout, align.retries, align.exit_statuses) == (600, 2, {3, 4})
    assert align.incomplete_outputs_behaviour == "continue" and align.custom_exit_behaviour == "terminate"
    parameters = [(p.position, p.rest_alias, p.type) for p in align.parameters.all()]
    assert parameters == [(0, "gap", "int"), (1, "mode", "choice"), (2, "verbose", "string")]
    assert align.parameters.get(rest_alias="mode").choice_list == ["fast", "slow"]
    assert {e.name: e.value for e in align.environment.all()} == {"OMP_NUM_THREADS": "4", "LANG": "C"}
    assert [(c.kind, c.name, c.version) for c in align.configurations.all()] == [("dataset", "pdb70", ""), ("software", "aligner", "2.1")]


def test_it_loads_steps_validators_and_promises(loaded):
    pipeline = Job.objects.get(name="pipeline")
    steps = {step.key: step for step in pipeline.steps.all()}
    assert steps["align"].task.name == "align"
    assert steps["report"].after == ["count"] and steps["report"].enabled is False
    assert [v.validation_type for v in pipeline.validators.all()] == ["fasta"]
    promises = [p.as_dict() for p in pipeline.promises.all()]
    assert promises == [{"kind": "only_tasks", "tasks": ["count", "report"]}, {"kind": "max_nodes", "value": 10}]
    assert Job.objects.get(name="quick").runnable is False


def test_omitted_fields_take_the_model_defaults(loaded):
    report = Task.objects.get(name="report")
    assert (report.timeout, report.retries, report.dynamic, report.incomplete_outputs_behaviour) == (None, 0, False, "fail")
    assert Backend.objects.get(name="pybox").root_path == ""
    assert Job.objects.get(name="pipeline").runnable is True


def test_choices_may_be_a_comma_separated_string(db):
    data = catalogue()
    data["tasks"][0]["parameters"][1]["choices"] = "fast, slow"
    load_catalogue(data)
    assert Parameter.objects.get(rest_alias="mode").choice_list == ["fast", "slow"]
    assert dump_catalogue()["tasks"][0]["parameters"][1]["choices"] == ["fast", "slow"]


def test_it_refers_to_objects_already_in_the_database(db):
    make_backend(name="shared", queue_type=make_queue_type(name="shared_q"))
    load_text("tasks: [{name: t, backend: shared, executable: 'true'}]\njobs: [{name: j, steps: [{task: t}]}]")
    assert Job.objects.get(name="j").steps.get().task.backend.name == "shared"


# --- Idempotence and updates ------------------------------------------------------------------------


def test_loading_twice_is_idempotent(loaded):
    before = row_counts()
    summary = load_catalogue(catalogue())
    assert (summary.created, summary.updated) == (0, 9)
    assert row_counts() == before


def test_loading_again_updates_changed_fields_and_removes_dropped_children(loaded):
    data = catalogue()
    align = data["tasks"][0]
    align["description"] = "Align, faster."
    align["executable"] = "aligner $P1 --in $I1 --out $O1"
    align["parameters"] = align["parameters"][:1]
    del align["environment"]["LANG"], align["timeout"]
    data["jobs"][0]["steps"] = data["jobs"][0]["steps"][:2]
    data["jobs"][0]["promises"] = []
    load_catalogue(data)
    task = Task.objects.get(name="align")
    assert (task.description, task.timeout) == ("Align, faster.", None)
    assert [p.rest_alias for p in task.parameters.all()] == ["gap"]
    assert [e.name for e in task.environment.all()] == ["OMP_NUM_THREADS"]
    pipeline = Job.objects.get(name="pipeline")
    assert [s.key for s in pipeline.steps.all()] == ["align", "count"]
    assert not pipeline.promises.exists()


def test_reloading_keeps_the_rows_of_steps_whose_id_is_unchanged(loaded):
    step = Step.objects.get(job__name="pipeline", key="count")
    data = catalogue()
    data["jobs"][0]["steps"][1]["enabled"] = False
    load_catalogue(data)
    step.refresh_from_db()
    assert step.enabled is False


# --- Dumping and round trips ---------------------------------------------------------------------------


def test_a_dump_loads_back_into_an_empty_database_identically(loaded):
    dumped = dump_catalogue()
    empty_database()
    load_catalogue(dumped)
    assert dump_catalogue() == dumped


def test_dump_text_loads_back_identically(loaded):
    text = dump_text()
    empty_database()
    load_text(text)
    assert dump_text() == text


def test_dump_text_writes_multi_line_executables_as_literal_blocks(loaded):
    text = dump_text(["pipeline"])
    assert "executable: |\n      aligner $P1 $P2 $P3 --in $I1 --out $O1\n      echo done > $O2\n" in text


def test_dump_writes_every_field_in_a_stable_order(loaded):
    task = dump_catalogue()["tasks"][0]
    assert list(task) == [
        "name", "backend", "description", "in_glob", "out_glob", "stdout_glob", "executable", "parameters", "environment",
        "configurations", "incomplete_outputs_behaviour", "custom_exit_status", "custom_exit_behaviour", "dynamic", "timeout", "retries",
        "cache", "input_prompt", "input_choices", "qc", "resources", "image", "container_options",
    ]  # fmt: skip
    assert dump_catalogue()["jobs"][0]["steps"][0] == {
        "id": "align", "task": "align", "ordering": 0, "after": [], "enabled": True, "when": "", "foreach": {}, "params": {},
    }


def test_dumping_a_job_includes_only_what_it_uses(loaded):
    make_task(name="unrelated", backend=make_backend(name="elsewhere", queue_type=make_queue_type(name="other")))
    make_job(name="quick2", steps=[Task.objects.get(name="report")])
    data = dump_catalogue(["quick"])
    assert [job["name"] for job in data["jobs"]] == ["quick"]
    assert [task["name"] for task in data["tasks"]] == ["align", "report"]
    assert [backend["name"] for backend in data["backends"]] == ["local"]
    assert [queue_type["name"] for queue_type in data["queue_types"]] == ["localhost"]


def test_dumping_a_dynamic_job_includes_the_tasks_it_promises_to_add(loaded):
    Step.objects.filter(job__name="pipeline", key="report").delete()
    data = dump_catalogue(["pipeline"])
    assert [task["name"] for task in data["tasks"]] == ["align", "count", "report"]
    assert [q["name"] for q in data["queue_types"]] == ["localhost", "py"]


def test_dumping_an_unknown_job_is_an_error(loaded):
    with pytest.raises(CatalogueError, match="no job named 'nope'"):
        dump_catalogue(["pipeline", "nope"])


# --- Bad files -------------------------------------------------------------------------------------------


CYCLE = [{"id": "a", "task": "align", "after": ["b"]}, {"id": "b", "task": "report", "after": ["a"]}]

# case: (a change that spoils the full catalogue, how the error starts)
BAD_FILES = {
    "missing required field": (lambda d: d["tasks"][2].pop("executable"), "tasks[2].executable: required"),
    "missing rest alias": (lambda d: d["tasks"][0]["parameters"][0].pop("rest_alias"), "tasks[0].parameters[0].rest_alias: required"),
    "unknown field": (lambda d: d["tasks"][0].update(exectuable="x"), "tasks[0].exectuable: unknown field"),
    "unknown section": (lambda d: d.update(task=[]), "task: unknown section; expected queue_types, backends, tasks, jobs"),
    "unknown step task": (lambda d: d["jobs"][0]["steps"][1].update(task="nope"), "jobs[0].steps[1].task: unknown task 'nope'"),
    "unknown queue type": (lambda d: d["backends"][1].update(queue_type="gpu"), "backends[1].queue_type: unknown queue type 'gpu'"),
    "unknown backend": (lambda d: d["tasks"][1].update(backend="cluster"), "tasks[1].backend: unknown backend 'cluster'"),
    "text for an integer": (lambda d: d["tasks"][0].update(timeout="abc"), "tasks[0].timeout: must be a positive integer, got 'abc'"),
    "zero timeout": (lambda d: d["tasks"][0].update(timeout=0), "tasks[0].timeout: must be a positive integer, got 0"),
    "text for a list": (lambda d: d["tasks"][0].update(parameters="gap"), "tasks[0].parameters: must be a list, got text"),
    "text for a step": (lambda d: d["jobs"][0]["steps"].__setitem__(0, "align"), "jobs[0].steps[0]: must be a mapping, got text"),
    "text for a flag": (lambda d: d["tasks"][1].update(dynamic="maybe"), "tasks[1].dynamic: must be true or false, got 'maybe'"),
    "list for text": (lambda d: d["tasks"][0].update(in_glob=[".a", ".b"]), "tasks[0].in_glob: must be text, got a list"),
    "cycle": (lambda d: d["jobs"][1].update(steps=CYCLE), "jobs[1].steps: steps form a cycle: "),
    "unknown after key": (
        lambda d: d["jobs"][0]["steps"][2].update(after=["nope"]),
        "jobs[0].steps[2].after: step 'report' runs after unknown step 'nope'",
    ),
    "duplicate step id": (lambda d: d["jobs"][0]["steps"][1].update(id="align"), "jobs[0].steps[1].id: duplicate step key 'align'"),
    "bad step id": (lambda d: d["jobs"][1]["steps"][0].update(id="a b"), "jobs[1].steps[0].id: use letters"),
    "$I3 with two in endings": (
        lambda d: d["tasks"][2].update(in_glob=".txt, .log", executable="cat $I1 $I2 $I3"),
        "tasks[2].executable: $I3 is used but in_glob defines 2 endings",
    ),
    "$P2 with one parameter": (
        lambda d: d["tasks"][2].update(executable="report $P1 $P2", parameters=[{"rest_alias": "title"}]),
        "tasks[2].executable: $P2 is used but the task has 1 parameter",
    ),
    "bad promise kind": (
        lambda d: d["jobs"][0]["promises"][0].update(kind="bogus"),
        "jobs[0].promises[0].kind: must be one of no_new_nodes, no_new_edges,",
    ),
    "promise without its field": (lambda d: d["jobs"][0]["promises"][1].pop("value"), "jobs[0].promises[1]: promise 'max_nodes' needs"),
    "date in a promise": (
        lambda d: d["jobs"][0]["promises"][1].update(value=datetime.date(2024, 1, 1)),
        "jobs[0].promises[1]: must hold only text, numbers, true/false, lists and mappings",
    ),
    "unknown validator": (lambda d: d["jobs"][0]["validators"].append("xml"), "jobs[0].validators[1]: must be one of none, fasta, "),
    "default not among the choices": (
        lambda d: d["tasks"][0]["parameters"][1].update(default="medium"),
        "tasks[0].parameters[1].default: the default must be one of fast, slow; got 'medium'",
    ),
    "duplicate rest alias": (
        lambda d: d["tasks"][0]["parameters"][1].update(rest_alias="gap"),
        "tasks[0].parameters[1].rest_alias: duplicate rest_alias 'gap'",
    ),
    "bad environment name": (
        lambda d: d["tasks"][0]["environment"].update({"1X": "y"}),
        "tasks[0].environment.1X: an environment variable name is letters, digits and '_'",
    ),
    "relative root path": (lambda d: d["backends"][0].update(root_path="srv"), "backends[0].root_path: must be an absolute path"),
    "unknown behaviour": (
        lambda d: d["tasks"][0].update(custom_exit_behaviour="ignore"),
        "tasks[0].custom_exit_behaviour: must be one of continue, terminate, fail; got 'ignore'",
    ),
    "empty name": (lambda d: d["jobs"][1].update(name=""), "jobs[1].name: must not be empty"),
    "duplicate task name": (lambda d: d["tasks"][2].update(name="align"), "tasks[2].name: 'align' is already defined by tasks[0]"),
    "value placeholder quoted in Python": (
        lambda d: d["tasks"][1].update(executable="print('$P1')", parameters=[{"rest_alias": "title"}]),
        "tasks[1].executable: $P1 is inside a string on line 1; write the bare placeholder, e.g. v = $P1",
    ),
    "value placeholder quoted in a shell line": (
        lambda d: d["tasks"][2].update(executable='cat $I1 "$P1"', parameters=[{"rest_alias": "title"}]),
        "tasks[2].executable: $P1 is inside double quotes on line 1, where its quoting does not hold; write it bare",
    ),
    "string value in shell arithmetic": (
        lambda d: d["tasks"][2].update(executable="echo $(( $P1 * 2 ))", parameters=[{"rest_alias": "n"}]),
        "tasks[2].executable: $P1 is inside arithmetic $(( )) on line 1, where bash evaluates text as arithmetic",
    ),
    "default that begins with a dash": (
        lambda d: d["tasks"][2].update(executable="cat $P1 $I1", parameters=[{"rest_alias": "flags", "default": "-n"}]),
        "tasks[2].parameters[0].default: the default must not begin with '-' (a program could take it for an option), got '-n'; "
        "tick allow_dash",
    ),
    "clashing REST names": (
        lambda d: d["tasks"].extend([
            {"name": "a_b", "backend": "local", "executable": "echo $P1", "parameters": [{"rest_alias": "c"}]},
            {"name": "a", "backend": "local", "executable": "echo $P1", "parameters": [{"rest_alias": "b_c"}]},
        ]),
        "tasks[4].parameters[0].rest_alias: parameter 'b_c' of task 'a' and parameter 'c' of task 'a_b' would both be sent as 'a_b_c'; "
        "change one of the rest aliases",
    ),
    "runnable job without steps": (
        lambda d: d["jobs"][0].update(steps=[]),
        "jobs[0].steps: job 'pipeline' is runnable but has no steps; add a step, or make it not runnable",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_file_names_the_bad_field_and_changes_nothing(loaded, case):
    change, expected = BAD_FILES[case]
    data = catalogue()
    change(data)
    before, dumped = row_counts(), dump_catalogue()
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(data)
    assert str(caught.value).startswith(expected)
    assert row_counts() == before
    assert dump_catalogue() == dumped


def test_a_job_that_is_not_runnable_may_have_no_steps_yet(db):
    data = catalogue()
    data["jobs"][1]["steps"] = []
    load_catalogue(data)
    assert not Job.objects.get(name="quick").steps.exists()


def test_allow_dash_loads_and_dumps_back(db):
    data = catalogue()
    data["tasks"][2].update(executable="cat $P1 $I1", parameters=[{"rest_alias": "flags", "default": "-n", "allow_dash": True}])
    load_catalogue(data)
    flags = Parameter.objects.get(rest_alias="flags")
    assert (flags.allow_dash, flags.default) == (True, "-n")
    dumped = dump_catalogue()
    assert dumped["tasks"][2]["parameters"][0]["allow_dash"] is True
    assert dumped["tasks"][0]["parameters"][0]["allow_dash"] is False
    empty_database()
    load_catalogue(dumped)
    assert dump_catalogue() == dumped


def test_numbers_may_stand_in_shell_arithmetic(db):
    data = catalogue()
    data["tasks"][2].update(executable="echo $(( $P1 * $P2 ))", parameters=[{"rest_alias": "n", "type": "int"}, {"rest_alias": "m", "type": "choice", "choices": ["2", "3"]}])
    load_catalogue(data)
    assert Task.objects.get(name="report").parameters.count() == 2


def test_a_file_must_be_a_mapping(db):
    with pytest.raises(CatalogueError, match=r"^catalogue: must be a mapping of queue_types, backends, tasks, jobs, got a list$"):
        load_catalogue([])


def test_it_rejects_an_input_placeholder_beyond_the_in_glob(db):
    data = catalogue()
    data["tasks"][2].update(in_glob=".txt, .log", executable="cat $I1 $I2 $I3")
    with pytest.raises(CatalogueError, match=r"^tasks\[2\]\.executable: \$I3 is used but in_glob defines 2 endings$"):
        load_catalogue(data)


def test_it_rejects_a_parameter_placeholder_beyond_the_parameters(db):
    data = catalogue()
    data["tasks"][2].update(executable="report $P1 $P2", parameters=[{"rest_alias": "title"}])
    with pytest.raises(CatalogueError, match=r"^tasks\[2\]\.executable: \$P2 is used but the task has 1 parameter$"):
        load_catalogue(data)


def test_it_rejects_a_cyclic_job(db):
    data = catalogue()
    data["jobs"][1]["steps"] = [{"id": "a", "task": "align", "after": ["b"]}, {"id": "b", "task": "report", "after": ["a"]}]
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(data)
    assert caught.value.path == "jobs[1].steps"
    assert caught.value.message in {"steps form a cycle: a -> b -> a", "steps form a cycle: b -> a -> b"}


def test_a_file_that_fails_late_undoes_everything_it_did_before(loaded):
    before, dumped = row_counts(), dump_catalogue()
    data = catalogue()
    data["queue_types"][1]["execution_behaviour"] = "r"
    data["tasks"][0]["environment"].pop("LANG")
    data["tasks"].append({"name": "extra", "backend": "local", "executable": "true"})
    data["jobs"][1]["steps"][1]["task"] = "nope"
    with pytest.raises(CatalogueError, match=r"jobs\[1\]\.steps\[1\]\.task: unknown task 'nope'"):
        load_catalogue(data)
    assert row_counts() == before
    assert dump_catalogue() == dumped


def test_a_bad_file_leaves_an_empty_database_empty(db):
    data = catalogue()
    data["jobs"][0]["validators"] = ["xml"]
    with pytest.raises(CatalogueError):
        load_catalogue(data)
    assert set(row_counts().values()) == {0}


def test_a_yaml_syntax_error_names_the_line(db):
    with pytest.raises(CatalogueError, match=r"^line 3, column 8: "):
        load_text("tasks:\n  - name: a\n    x: : y\n")


def test_a_duplicate_key_is_an_error(db):
    with pytest.raises(CatalogueError, match=r"^line 3, column 5: duplicate key 'name'"):
        load_text("tasks:\n  - name: a\n    name: b\n")


def test_an_empty_file_loads_nothing(db):
    assert load_text("").counts == {"queue_types": 0, "backends": 0, "tasks": 0, "jobs": 0}


def test_an_error_carries_its_path_and_message():
    error = CatalogueError("tasks[0].timeout", "must be a positive integer, got 'abc'")
    assert str(error) == "tasks[0].timeout: must be a positive integer, got 'abc'"
    assert (error.path, error.message) == ("tasks[0].timeout", "must be a positive integer, got 'abc'")


# --- Commands ---------------------------------------------------------------------------------------------


@pytest.fixture
def catalogue_file(tmp_path):
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE)
    return path


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "bad.yaml"
    data = catalogue()
    data["tasks"][0]["timeout"] = "abc"
    path.write_text(yaml.safe_dump(data))
    return path


def test_loadjobs_prints_a_one_line_summary(db, catalogue_file):
    out = io.StringIO()
    call_command("loadjobs", str(catalogue_file), stdout=out)
    assert out.getvalue() == f"Loaded 2 queue types, 2 backends, 3 tasks, 2 jobs from {catalogue_file} (9 created, 0 updated)\n"
    assert Job.objects.count() == 2


def test_loadjobs_reads_standard_input(db):
    out = io.StringIO()
    call_command("loadjobs", "-", stdin=io.StringIO("queue_types: [{name: q}]"), stdout=out)
    assert out.getvalue() == "Loaded 1 queue type, 0 backends, 0 tasks, 0 jobs from - (1 created, 0 updated)\n"


def test_loadjobs_reports_a_bad_file_with_exit_code_2(db, bad_file):
    with pytest.raises(CommandError) as caught:
        call_command("loadjobs", str(bad_file))
    assert caught.value.returncode == 2
    assert str(caught.value) == f"{bad_file}: tasks[0].timeout: must be a positive integer, got 'abc'"


def test_loadjobs_reports_a_missing_file(db, tmp_path):
    with pytest.raises(CommandError) as caught:
        call_command("loadjobs", str(tmp_path / "missing.yaml"))
    assert caught.value.returncode == 2
    assert str(caught.value) == f"{tmp_path / 'missing.yaml'}: cannot read the file: No such file or directory"


def test_loadjobs_reports_a_yaml_syntax_error_with_its_line(db, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("tasks:\n  - name: [unclosed\n")
    with pytest.raises(CommandError) as caught:
        call_command("loadjobs", str(path))
    assert caught.value.returncode == 2
    assert str(caught.value).startswith(f"{path}: line 3, column 1: ")


def test_loadjobs_loads_no_file_when_a_later_one_is_bad(db, catalogue_file, bad_file):
    with pytest.raises(CommandError):
        call_command("loadjobs", str(catalogue_file), str(bad_file))
    assert set(row_counts().values()) == {0}


def test_dumpjobs_writes_yaml_that_loadjobs_reads_back(loaded, tmp_path):
    out = io.StringIO()
    call_command("dumpjobs", stdout=out)
    path = tmp_path / "dump.yaml"
    call_command("dumpjobs", "--output", str(path))
    assert path.read_text() == out.getvalue()
    empty_database()
    call_command("loadjobs", str(path), stdout=io.StringIO())
    assert dump_text() == out.getvalue()


def test_dumpjobs_dumps_the_named_jobs(loaded):
    out = io.StringIO()
    call_command("dumpjobs", "quick", stdout=out)
    assert [job["name"] for job in yaml.safe_load(out.getvalue())["jobs"]] == ["quick"]


def test_dumpjobs_rejects_an_unknown_job_with_exit_code_2(loaded):
    with pytest.raises(CommandError) as caught:
        call_command("dumpjobs", "nope")
    assert caught.value.returncode == 2
    assert str(caught.value) == "jobs: no job named 'nope'"


@pytest.mark.slow
def test_loadjobs_run_as_a_process_exits_2_without_a_traceback(tmp_path, bad_file):
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "data").mkdir()
    env = embedded_env(tmp_path / "data")  # always a throwaway SQLite file, never a shared server

    def manage(*args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=root, env=env, capture_output=True, text=True, timeout=120)

    assert manage("migrate", "--verbosity", "0").returncode == 0
    result = manage("loadjobs", str(bad_file))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"CommandError: {bad_file}: tasks[0].timeout: must be a positive integer, got 'abc'"


# --- Sub-job parameters ------------------------------------------------------------------------------

SUBJOBS = """
queue_types:
  - {name: localhost, execution_behaviour: localhost}
  - {name: jobs, execution_behaviour: job}
backends:
  - {name: local, queue_type: localhost}
  - {name: subjobs, queue_type: jobs}
tasks:
  - name: setup
    backend: local
    executable: "true"
    parameters:
      - {rest_alias: tag}
  - name: show
    backend: local
    executable: echo $P1 $P2
    parameters:
      - {rest_alias: word, switchless: true, required: true}
      - {rest_alias: size, switchless: true, type: int, default: 3}
  - name: run_child
    backend: subjobs
    executable: child
jobs:
  - name: parent
    steps:
      - {id: setup, task: setup}
      - id: each
        task: run_child
        after: [setup]
        foreach: {lines: .input}
        params: {show_word: $ITEM, show_size: "$INDEX + setup.extra", }
  - name: child
    steps:
      - {id: show, task: show}
"""


def subjobs(**step):
    """The sub-job catalogue as plain data, with ``step`` fields replacing those of the parent's 'each' step (None deletes one)."""
    data = yaml.safe_load(SUBJOBS)
    each = data["jobs"][0]["steps"][1]
    each.update(step)
    for name in [name for name, value in each.items() if value is None]:
        del each[name]
    return data


def test_a_sub_job_step_loads_its_params_even_before_the_child_job_is_defined(db):
    load_catalogue(subjobs())
    step = Step.objects.get(job__name="parent", key="each")
    assert step.params == {"show_word": "$ITEM", "show_size": "$INDEX + setup.extra"}


def test_sub_job_params_dump_and_load_back_identically(db):
    load_catalogue(subjobs(params={"show_word": "setup_tag", "show_size": 4}))
    dumped = dump_catalogue(["parent"])
    assert dumped["jobs"][1]["steps"][1]["params"] == {"show_word": "setup_tag", "show_size": 4}
    text = dump_text(["parent"])
    empty_database()
    load_text(text)
    assert dump_text(["parent"]) == text


@pytest.mark.parametrize(
    "step, message",
    [
        (
            {"params": {"show_size": 1}},
            "step 'each' runs job 'child', whose parameter 'show_word' is required and has no default; give it a value in the step's params",
        ),
        ({"params": None}, "step 'each' runs job 'child', whose parameter 'show_word' is required"),
        ({"params": {"show_word": "'x'", "show_colour": "'red'"}}, "step 'each' maps 'show_colour', but job 'child' has no parameter 'show_colour'; it takes show_size, show_word"),
        ({"params": {"show_word": "red"}}, "step 'each' maps 'show_word' from 'red', which reads 'red': that is neither a parameter of job 'parent' nor a step"),
        ({"params": {"show_word": "$ITEM"}, "foreach": None}, "'show_word' uses $ITEM, which only the instances of a foreach step have"),
        ({"params": {"show_word": "len(setup_tag)"}}, "'show_word': 'len(setup_tag)' uses Call"),
        ({"params": {"show_word": ["a"]}}, "'show_word': give an expression as text, a number or true/false, not list"),
        ({"task": "setup", "params": {"show_word": "'x'"}}, "task 'setup' does not run a sub-job"),
    ],
)
def test_sub_job_params_are_checked_when_the_job_is_loaded(db, step, message):
    with pytest.raises(CatalogueError, match=r"^jobs\[0\]\.steps\[1\]\.params: ") as caught:
        load_catalogue(subjobs(**step))
    assert message in str(caught.value)
    assert not Job.objects.exists()


def test_a_child_parameter_the_parent_takes_itself_needs_no_mapping(db):
    data = subjobs(params=None)
    data["jobs"][0]["steps"].append({"id": "also", "task": "show"})
    load_catalogue(data)
    assert Job.objects.get(name="parent").steps.get(key="each").params == {}


def test_mapping_to_a_job_that_does_not_exist_is_refused(db):
    data = subjobs()
    del data["jobs"][1]
    with pytest.raises(CatalogueError, match=r"jobs\[0\]\.steps\[1\]\.params: step 'each' maps parameters to job 'child', which does not exist"):
        load_catalogue(data)


def test_a_child_that_gains_a_required_parameter_is_refused_while_a_parent_leaves_it_unset(db):
    load_catalogue(subjobs())
    data = yaml.safe_load(SUBJOBS)
    change = {"tasks": [{**data["tasks"][1], "parameters": [*data["tasks"][1]["parameters"], {"rest_alias": "colour", "switchless": True, "required": True}]}]}
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(change)
    assert caught.value.path == "tasks[0]"
    assert caught.value.message.startswith("job 'parent' would be left unable to run: step 'each' runs job 'child', whose parameter 'show_colour' is required")
    assert not Parameter.objects.filter(rest_alias="colour").exists()
    load_catalogue({**change, "jobs": [{**data["jobs"][0], "steps": [data["jobs"][0]["steps"][0], {**data["jobs"][0]["steps"][1], "params": {
        "show_word": "$ITEM", "show_colour": "'red'"}}]}]})
    assert Parameter.objects.filter(rest_alias="colour").exists()


def test_a_child_job_that_gains_a_step_with_a_required_parameter_is_refused_too(db):
    load_catalogue(subjobs())
    data = yaml.safe_load(SUBJOBS)
    extra = {"name": "ask", "backend": "local", "executable": "echo $P1", "parameters": [{"rest_alias": "question", "switchless": True, "required": True}]}
    child = {**data["jobs"][1], "steps": [*data["jobs"][1]["steps"], {"id": "ask", "task": "ask"}]}
    with pytest.raises(CatalogueError, match="^jobs\\[0\\]: job 'parent' would be left unable to run: .*'ask_question' is required"):
        load_catalogue({"tasks": [extra], "jobs": [child]})
    assert not Step.objects.filter(key="ask").exists()


@pytest.mark.parametrize(
    "ends, message",
    [
        ({"from": "align", "to": "nope"}, "component 'to' names 'nope', which is not a step of the job; its steps are"),
        ({"from": "align", "to": "align"}, "a component lies between two different steps"),
    ],
)
def test_a_component_must_lie_between_two_steps_of_the_job(db, ends, message):
    data = catalogue()
    data["jobs"][0]["promises"] = [{"kind": "component", **ends, "alternatives": ["x"]}]
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(data)
    assert caught.value.path == "jobs[0].promises[0]" and caught.value.message.startswith(message)


@pytest.mark.parametrize(
    "resources, message",
    [
        ({"cpu": 2}, "tasks[0].resources: unknown resource 'cpu'; known: cpus, memory_mb, time_s, gpus"),
        ({"cpus": 0}, "tasks[0].resources: 'cpus' (CPU cores) must be a whole number of at least 1, got 0"),
        ({"memory_mb": "4G"}, "tasks[0].resources: 'memory_mb' (memory in MiB) must be a whole number of at least 1, got '4G'"),
        ({"gpus": True}, "tasks[0].resources: 'gpus' (GPUs) must be a whole number of at least 0, got True"),
    ],
)
def test_resources_are_named_whole_numbers(db, resources, message):
    data = catalogue()
    data["tasks"][0]["resources"] = resources
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(data)
    assert str(caught.value) == message


def test_resources_image_and_backend_options_load_and_dump_back(db):
    data = catalogue()
    data["tasks"][0].update(resources={"cpus": 2, "memory_mb": 512, "time_s": 60, "gpus": 0}, image="localhost/tools:1", container_options={"network": True})
    data["backends"][0]["options"] = {"partition": "short"}
    load_catalogue(data)
    task = Task.objects.get(name=data["tasks"][0]["name"])
    assert (task.resources, task.image, task.container_options) == ({"cpus": 2, "memory_mb": 512, "time_s": 60, "gpus": 0}, "localhost/tools:1", {"network": True})
    assert Backend.objects.get(name=data["backends"][0]["name"]).options == {"partition": "short"}
    dumped = dump_catalogue()
    assert next(t for t in dumped["tasks"] if t["name"] == task.name)["image"] == "localhost/tools:1"
    assert next(b for b in dumped["backends"] if b["name"] == data["backends"][0]["name"])["options"] == {"partition": "short"}
