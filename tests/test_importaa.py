"""``manage.py importaa``: Analytics Automated (A_A) configuration dumps become the equivalent catalogue.

Two dumps: A_A's own ``example_scripts/example_config.yaml`` (its older models: a
backend's ``server_type``, ``$INPUT``/``$OUTPUT``), and ``current_models.json``,
written for these tests from A_A's current ``analytics_automated/models.py``.
Comments name the A_A test or document each expectation about A_A comes from.
"""
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from execution.local import SynchronousRunner
from jobs.aa_commands import ParameterOrder, translate
from jobs.aa_import import ImportProblem, import_dumps
from jobs.models import Backend, Configuration, Environment, Job, Parameter, QueueType, Step, Task, Validator
from jobs.yaml_io import CatalogueError, dump_catalogue, load_text

from .conftest import embedded_env

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parent / "data" / "aa"
EXAMPLE = DATA / "example_config.yaml"
CURRENT = DATA / "current_models.json"
MODELS = [QueueType, Backend, Task, Parameter, Environment, Configuration, Job, Step, Validator]

TASK_DEFAULTS = {
    "description": "", "in_glob": "", "out_glob": "", "stdout_glob": "", "parameters": [], "environment": {}, "configurations": [],
    "incomplete_outputs_behaviour": "fail", "custom_exit_status": "", "custom_exit_behaviour": "continue", "dynamic": False, "timeout": None,
    "retries": 0, "cache": False, "input_prompt": "", "input_choices": [], "qc": {}, "resources": {}, "image": "", "container_options": {},
}
PARAMETER_DEFAULTS = {
    "flag": "", "default": "", "bool_valued": False, "spacing": True, "switchless": False, "type": "string", "choices": [], "required": True,
    "allow_dash": False, "label": "", "description": "",
}


def task(**fields):
    return {**TASK_DEFAULTS, **fields}


def parameter(**fields):
    return {"rest_alias": fields.pop("rest_alias"), **PARAMETER_DEFAULTS, **fields}


def job(name, steps, runnable=True, validators=(), aa_name=None):
    return {
        "name": name, "description": "", "runnable": runnable, "login_required": False, "compat": "aa",
        **({"aa_name": aa_name} if aa_name else {}), "validators": list(validators), "promises": [],
        "steps": [{"id": key, "task": task, "ordering": ordering, "after": [], "enabled": True, "when": "", "foreach": {}, "params": {}} for key, task, ordering in steps],
    }


def run_import(*paths, dry_run=False):
    return import_dumps([(path.name, path.read_text(encoding="utf-8")) for path in paths], dry_run=dry_run)


def counts():
    return {model.__name__: model.objects.count() for model in MODELS}


def by_name(rows):
    return {row["name"]: row for row in rows}


# --- A_A's example_config.yaml (older models) ----------------------------------------------------


def test_loadjobs_cannot_read_an_aa_dump_which_is_why_importaa_exists():
    with pytest.raises(CatalogueError, match="must be a mapping"):
        load_text(EXAMPLE.read_text(encoding="utf-8"))


def test_the_example_config_becomes_the_psipred_and_disopred_catalogue():
    report = run_import(EXAMPLE)
    catalogue = dump_catalogue()
    # A backend's server_type 1 is localhost, 2 GridEngine (A_A models.py of 2016, Backend.SERVER_CHOICES);
    # GridEngine runs on Slurm here.
    assert catalogue["queue_types"] == [{"name": "gridengine", "execution_behaviour": "slurm"}, {"name": "localhost", "execution_behaviour": "localhost"}]
    assert catalogue["backends"] == [
        {"name": "gridengine_default", "queue_type": "gridengine", "root_path": "/tmp/", "options": {}},
        {"name": "local1", "queue_type": "localhost", "root_path": "/tmp/", "options": {}},
    ]
    tasks = by_name(catalogue["tasks"])
    assert len(tasks) == 16
    # $INPUT and $OUTPUT name <ID>.<first in_glob / out_glob ending> (A_A docs/the_Job_UI.rst and its older
    # the_UI page, "LOCALHOST Executable Syntax"); older A_A wrote the parameters after the program's name.
    assert tasks["task1"] == task(
        name="task1", backend="local1", in_glob=".in", out_glob=".stdout", stdout_glob=".stdout", executable="ls $P1",
        parameters=[parameter(rest_alias="all", flag="-lah", default="True", bool_valued=True, type="bool")],
    )
    assert tasks["task2"] == task(
        name="task2", backend="local1", in_glob=".stdout", out_glob=".final", executable='/usr/bin/grep $P1 "/" $I1 || :',
        parameters=[parameter(rest_alias="number", flag="-a", default="10")],
    )
    assert tasks["psiblast_seq"] == task(
        name="psiblast_seq", backend="local1", description="Run psiblast", in_glob=".input", out_glob=".chk",
        executable="/opt/Applications/ncbi-blast-2.2.31+/bin/psiblast -db /opt/Data/uniref/uniref_test_db/uniref_test.fasta -query $I1 "
        "-inclusion_ethresh 0.001 -out_pssm $O1 -num_iterations 3 -num_alignments 0",
    )
    assert tasks["diso_nearest_neighbour"]["environment"] == {"DSO_LIB_PATH": "/opt/Code/disopred/dso_lib/"}
    # A_A writes stdout to <ID>.<stdout_glob> (.stdout when empty) and keeps only what the out_glob endings gather
    # (A_A analytics_automated/tasks.py, task_runner's stdoglob; CommandRunner localRunner.py, run_cmd).
    globs = {name: (row["in_glob"], row["out_glob"], row["stdout_glob"], row["executable"]) for name, row in tasks.items()}
    assert globs["Run_chkparse"] == (".chk", ".mtx", ".mtx", "/opt/Code/psipred/bin/chkparse $I1")
    assert globs["psipass2"] == (".ss", ".ss2, .horiz", ".horiz", "/opt/Code/psipred/bin/psipass2 /opt/Code/psipred/data/weights_p2.dat 1 1.0 1.0 $O1 $I1")
    assert globs["PsipredGS"] == (".ps", ".png", "", "/bin/gs -q -dTextAlphaBits=2 -dNOPAUSE -dBATCH -sDEVICE=png16m -sOutputFile=${SLUICE_ID}_%d.png -c save pop -f $I1")
    assert globs["diso_combine"] == (".nndiso, .dnb, .diso", ".comb", ".comb", "/opt/Code/disopred/bin/combine /opt/Code/disopred/data/weights_comb.dat $ID.diso $ID.nndiso $ID.dnb")
    # Steps run in ascending ordering (A_A tests/test_api_chainconstruction.py, test__construct_chain_string_multitask).
    psipred = ["psiblast_seq", "Run_chkparse", "Psipred", "psipass2", "PSGraphic", "ps2pdf", "PsipredGS"]
    disopred = ["psiblast_seq", "Run_chkparse", "disopred2", "diso_neu_net", "diso_nearest_neighbour", "diso_combine", "diso_parse_combine", "diso_svm_predict", "diso_format"]
    assert catalogue["jobs"] == [
        job("disopred", [(name, name, ordering) for ordering, name in enumerate(disopred)]),
        job("psipred", [(name, name, ordering) for ordering, name in enumerate(psipred)]),
    ]
    text = report.render()
    assert "task 'psiblast seq' (pk 74) -> 'psiblast_seq'" in text
    assert "server_type 2 (GridEngine) -> queue type 'gridengine', execution behaviour slurm" in text
    # A_A gathers every file whose name ends in an out_glob ending (CommandRunner localRunner.py, run_cmd: outfile.endswith).
    assert "task 'PsipredGS': it writes $ID_%d.png; A_A kept every file whose name ends in .png, Sluice keeps <ID>.png only" in text
    assert "54 auth.permission" in text and "1 auth.user" in text and "1 analytics_automated.backenduser" in text


# --- A dump of A_A's current models -------------------------------------------------------------


def test_the_current_models_import_row_by_row():
    report = run_import(CURRENT)
    catalogue = dump_catalogue()
    # A_A's QueueType.execution_behaviour: 1 localhost, 2 GridEngine, 3 R (A_A analytics_automated/models.py, EXECUTION_CHOICES).
    assert catalogue["queue_types"] == [
        {"name": "R_queue", "execution_behaviour": "r"},
        {"name": "gridengine", "execution_behaviour": "slurm"},
        {"name": "localhost", "execution_behaviour": "localhost"},
    ]
    assert catalogue["backends"] == [
        {"name": "ge_cluster", "queue_type": "gridengine", "root_path": "/scratch/aa/", "options": {}},
        {"name": "local1", "queue_type": "localhost", "root_path": "/tmp/", "options": {}},
        {"name": "rbox", "queue_type": "R_queue", "root_path": "/tmp/", "options": {}},
    ]
    tasks = by_name(catalogue["tasks"])
    assert sorted(tasks) == ["cluster_align", "count_words", "label", "r_summary"]
    # A_A stores rest_alias already prefixed with the task name (A_A tests/test_models.py, test_rest_alias_takes_task_name);
    # Sluice prefixes it itself, so the alias loses the prefix and the REST name follows the task's new name.
    # Task.COMPLETION_CHOICES: 0 continue, 1 terminate, 3 fail (A_A tests/test_tasks_customexitstatus.py, testCustomExitContinues;
    # tests/test_tasks_incompletefiles.py, testIncompleteFilesTerminates).
    assert tasks["count_words"] == task(
        name="count_words", backend="local1", description="Count the words of the upload", in_glob=".input", out_glob=".count", stdout_glob=".count",
        executable="wc $P1 $I1", incomplete_outputs_behaviour="terminate", custom_exit_status="1", custom_exit_behaviour="continue",
        parameters=[parameter(rest_alias="words", aa_rest_name="count words_words", flag="-w", default="True", bool_valued=True, type="bool")],
    )
    # The parameter whose flag holds VALUE is not a $P: it fills $VALUE (A_A tests/test_api_chainconstruction.py,
    # test__ensure_option_order_preserved_with_value), so it comes last and $VALUE becomes its $P.
    assert tasks["label"] == task(
        name="label", backend="local1", in_glob=".count", out_glob=".label", stdout_glob=".label",
        executable='cat $I1 && echo $P1 $P2 $P3 ${SLUICE_ID}_done "$GREETING"',
        parameters=[
            parameter(rest_alias="tag", flag="--tag=", default="t1", spacing=False),
            parameter(rest_alias="word", flag="-n", default="plain", switchless=True),
            parameter(rest_alias="value", default="v1"),
        ],
        environment={"GREETING": "hello"},
        configurations=[
            {"kind": "dataset", "name": "uniref", "version": "2024_01"},
            {"kind": "software", "name": "coreutils", "version": "9.1"},
            {"kind": "software", "name": "notes", "version": ""},
        ],
    )
    # A custom exit status with no behaviour is not added to the successful ones (A_A tasks.py, prepare_exit_statuses), so it fails.
    assert tasks["cluster_align"] == task(
        name="cluster_align", backend="ge_cluster", description="Align on the cluster", in_glob=".input", out_glob=".aln",
        executable="aligner -in $I1 -out $O1 $P1 -w $TMP/work", incomplete_outputs_behaviour="continue", custom_exit_status="2, 3",
        custom_exit_behaviour="fail", parameters=[parameter(rest_alias="threads", aa_rest_name="cluster align_threads", flag="-t", default="-1", allow_dash=True)],
    )
    assert tasks["r_summary"] == task(
        name="r_summary", backend="rbox", in_glob=".input", out_glob=".txt", executable="write(summary(read.csv('data.csv')), 'out.txt')",
    )
    # Steps of equal ordering run together (A_A tests/test_api_chainconstruction.py, test__construct_group_chain_string).
    # Validators are named by ValidatorTypes.name, the functions of A_A's validators.py (A_A tests/test_validators.py).
    assert catalogue["jobs"] == [
        job("cluster_job", [("cluster_align", "cluster_align", 5), ("cluster_align_2", "cluster_align", 5)], validators=["aa_seq", "aa_pdb_file"], aa_name="cluster job"),
        job("count_label", [("count_words", "count_words", 0), ("label", "label", 1)], validators=["none"]),
        job("draft", [], runnable=False),
        job("r_job", [("r_summary", "r_summary", 0)]),  # its R code runs with A_A's I1.., O1.., P1.. (compat: aa)
    ]
    assert [p.rest_name for p in Parameter.objects.filter(task__name="label")] == ["label_tag", "label_word", "label_value"]
    text = report.render()
    for line in (
        "task 'count words' (pk 10) -> 'count_words'",
        "parameter REST name 'count words_words' -> 'count_words_words'",
        "queue type 'gridengine': execution behaviour GridEngine -> slurm",
        "backend 'ge_cluster': GridEngine runs on Slurm; the dump names no queue",
        "job 'cluster_job': validator 'mp3' has no Sluice equivalent",
        "task 'r_summary': r code imported unchanged: its jobs are compat: aa, which define A_A's I1.., O1.., P1.. for it",
        "job 'draft' is imported not runnable: it has no steps",
        "configuration 'notes' is of type Misc., which Sluice does not have; recorded as software",
    ):
        assert line in text


def test_an_imported_job_runs_end_to_end():
    run_import(CURRENT)
    Backend.objects.filter(name="local1").update(root_path="")  # SLUICE_WORK_DIR, not A_A's /tmp/
    submission = SynchronousRunner("count_label", input=b"one two three\n").init().process()
    assert submission.status == "complete", submission.last_message
    label = submission.results.get(ending=".label")
    file_id = submission.file_id
    # The first step gets the upload as <ID>.input (A_A docs/the_Job_UI.rst, "Executable Syntax").
    # Defaults are used when a value is not passed (A_A tests/test_api_chainconstruction.py, test__option_uses_default_if_not_passed);
    # spacing false glues the value to its flag, switchless writes the value alone (A_A docs/the_Job_UI.rst, "Parameters": Spacing, Switchless).
    # A_A replaces $ID wherever it stands, so $ID_done is <ID>_done (CommandRunner commandRunner.py, _translate_command).
    assert label.file.read().decode() == f"3 {file_id}.input\n--tag=t1 plain v1 {file_id}_done hello\n"
    words = submission.results.get(ending=".count").file.read().decode()
    assert words == f"3 {file_id}.input\n"


def test_a_submitted_value_reaches_the_translated_value_placeholder():
    # A user-provided value of the VALUE parameter is $VALUE (A_A docs/the_Job_UI.rst, "Parameters": Flag).
    run_import(CURRENT)
    Backend.objects.filter(name="local1").update(root_path="")
    params = {"label_value": "given", "label_tag": "x", "count_words_words": "false"}
    submission = SynchronousRunner("count_label", input=b"a b\n", params=params).init().process()
    assert submission.status == "complete", submission.last_message
    file_id = submission.file_id
    # wc without -w prints lines, words and bytes.
    assert submission.results.get(ending=".label").file.read().decode() == f"1 2 4 {file_id}.input\n--tag=x plain given {file_id}_done hello\n"


def test_a_hostile_value_for_an_imported_shell_step_is_one_quoted_word(settings):
    """A_A filtered values by a blacklist and spliced them into the command line; an imported job quotes them."""
    run_import(CURRENT)
    Backend.objects.filter(name="local1").update(root_path="")
    hostile = "x; touch pwned $(touch pwned2) `touch pwned3`"
    params = {"label_value": hostile, "label_tag": "x", "count_words_words": "false"}
    submission = SynchronousRunner("count_label", input=b"a b\n", params=params).init().process()
    assert submission.status == "complete", submission.last_message
    assert f"plain {hostile} {submission.file_id}_done" in submission.results.get(ending=".label").file.read().decode()
    assert not list(Path(settings.SLUICE_WORK_DIR).rglob("pwned*"))


def test_passwords_users_and_backend_logins_are_never_imported(capsys):
    text = run_import(CURRENT).render() + run_import(EXAMPLE).render()
    assert User.objects.count() == 0
    secrets = ("s3cr3t-backend-pw", "cluster_login", "HASHOFTHEADMINPASSWORD", "p4ssw0rd", "dummyid", "iwIWVM6MJsZwtba9LX3a0NoHWAGMe8TqGwS5f8pwMyk")
    for secret in secrets:
        assert secret not in text
    stored = json.dumps([list(model.objects.values()) for model in apps.get_models()], default=str)
    for secret in secrets:
        assert secret not in stored


def test_dry_run_prints_the_report_and_changes_nothing():
    out = io.StringIO()
    call_command("importaa", str(CURRENT), "--dry-run", stdout=out)
    assert set(counts().values()) == {0}
    text = out.getvalue()
    assert text.startswith("Analytics Automated import of ")
    assert "(dry run: nothing was changed)" in text
    assert "Would make: 3 queue types, 3 backends, 4 tasks, 4 jobs (14 created, 0 updated)" in text
    assert "task 'count words' (pk 10) -> 'count_words'" in text


def test_importing_twice_gives_the_same_rows():
    first = run_import(CURRENT, EXAMPLE)
    rows, numbers = dump_catalogue(), counts()
    # Each file is read by the models it came from: the current dump's $VALUE still becomes its parameter.
    assert Task.objects.get(name="label").executable == 'cat $I1 && echo $P1 $P2 $P3 ${SLUICE_ID}_done "$GREETING"'
    assert Task.objects.get(name="task1").executable == "ls $P1"
    second = run_import(CURRENT, EXAMPLE)
    assert dump_catalogue() == rows
    assert counts() == numbers
    assert first.made.endswith("(36 created, 0 updated)")
    assert second.made.endswith("(0 created, 36 updated)")


def _with_entries(tmp_path, *extra):
    entries = json.loads(CURRENT.read_text(encoding="utf-8")) + list(extra)
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path, len(entries)


def test_a_bad_entry_late_in_the_file_changes_nothing(tmp_path):
    run_import(EXAMPLE)
    before, numbers = dump_catalogue(), counts()
    path, last = _with_entries(tmp_path, {"model": "analytics_automated.step", "pk": 99, "fields": {"job": 1, "task": 77, "ordering": 2}})
    with pytest.raises(ImportProblem) as caught:
        run_import(path)
    assert str(caught.value) == (
        f"dump.json: entry {last} (analytics_automated.step pk=99): task 77 is not an analytics_automated.task entry of the dump; dump the task entries too"
    )
    assert dump_catalogue() == before and counts() == numbers


def test_a_sluice_rule_refusing_an_entry_names_that_entry_and_changes_nothing(tmp_path):
    run_import(EXAMPLE)
    before = dump_catalogue()
    bad = {"model": "analytics_automated.task", "pk": 90, "fields": {
        "backend": 1, "name": "quoted", "in_glob": ".in", "out_glob": ".out", "stdout_glob": None, "executable": "echo '$P1'",
        "incomplete_outputs_behaviour": 3, "custom_exit_status": None, "custom_exit_behaviour": None,
    }}
    parameter_entry = {"model": "analytics_automated.parameter", "pk": 91, "fields": {
        "task": 90, "flag": "-x", "default": "a", "bool_valued": False, "rest_alias": "quoted_x", "spacing": True, "switchless": False,
    }}
    path, last = _with_entries(tmp_path, bad, parameter_entry)
    with pytest.raises(ImportProblem) as caught:
        run_import(path)
    message = str(caught.value)
    assert message.startswith(f"dump.json: entry {last - 1} (analytics_automated.task pk=90): tasks[")
    assert "$P1 is inside single quotes" in message
    assert dump_catalogue() == before


@pytest.mark.slow
def test_importaa_as_a_process_exits_2_without_a_traceback(tmp_path):
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "data").mkdir()
    env = embedded_env(tmp_path / "data")
    path, last = _with_entries(tmp_path, {"model": "analytics_automated.step", "pk": 99, "fields": {"job": 42, "task": 10, "ordering": 0}})

    def manage(*args):
        return subprocess.run([sys.executable, "manage.py", *args], check=False, cwd=root, env=env, capture_output=True, text=True, timeout=120)

    assert manage("migrate", "--verbosity", "0").returncode == 0
    result = manage("importaa", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"CommandError: {path}: entry {last} (analytics_automated.step pk=99): job 42 is not an analytics_automated.job entry of the dump; dump the job entries too"
    )


def test_the_command_reports_an_unreadable_file_with_exit_status_2(tmp_path):
    with pytest.raises(CommandError) as caught:
        call_command("importaa", str(tmp_path / "missing.json"))
    assert caught.value.returncode == 2
    assert "cannot read the file" in str(caught.value)


# --- Translations, one at a time ------------------------------------------------------------------


def _dump(executable, parameters=(), behaviour=1, legacy=False, root="/srv/aa/", in_glob=".in", out_glob=".out"):
    """A one-task, one-job dump in A_A's current (or older) models."""
    backend = {"name": "b", "root_path": root, **({"server_type": behaviour} if legacy else {"queue_type": 1})}
    entries = [] if legacy else [{"model": "analytics_automated.queuetype", "pk": 1, "fields": {"name": "q", "execution_behaviour": behaviour}}]
    entries += [
        {"model": "analytics_automated.backend", "pk": 1, "fields": backend},
        {"model": "analytics_automated.task", "pk": 1, "fields": {"backend": 1, "name": "t", "in_glob": in_glob, "out_glob": out_glob, "executable": executable}},
        {"model": "analytics_automated.job", "pk": 1, "fields": {"name": "j", "runnable": True}},
        {"model": "analytics_automated.step", "pk": 1, "fields": {"job": 1, "task": 1, "ordering": 0}},
    ]
    for pk, fields in enumerate(parameters, start=1):
        entries.append({"model": "analytics_automated.parameter", "pk": pk, "fields": {"task": 1, "default": None, "bool_valued": False, **fields}})
    return entries


def _import(entries):
    report = import_dumps([("dump.json", json.dumps(entries))])
    return Task.objects.get(name="t"), Job.objects.get(name="j"), report.render()


def test_older_flags_and_options_go_where_the_docs_put_them():
    # $FLAGS: boolean switches, $OPTIONS: parameters with values (A_A's older the_UI page, "LOCALHOST Executable Syntax").
    parameters = [
        {"flag": "-n", "rest_alias": "t_n", "default": "5"},
        {"flag": "-l", "rest_alias": "t_l", "bool_valued": True},
        {"flag": "-a", "rest_alias": "t_a", "default": "x"},
    ]
    task_row, job_row, _ = _import(_dump("prog $FLAGS in $INPUT $OPTIONS", parameters, legacy=True))
    assert task_row.executable == "prog $P1 in $I1 $P2 $P3"
    # Flags first, then the options sorted by flag, as older A_A's commandRunner built them.
    assert [p.flag for p in task_row.parameters.all()] == ["-l", "-a", "-n"]
    assert job_row.runnable


def test_older_parameters_without_markers_follow_the_program_name():
    # Older commandRunner put the flags and options right after the command's first word (CommandRunner commandRunner.py of 2016, _translate_command).
    parameters = [{"flag": "-n", "rest_alias": "t_n", "default": "5"}]
    task_row, _, text = _import(_dump("prog in $INPUT", parameters, legacy=True))
    assert task_row.executable == "prog $P1 in $I1"
    assert "parameters written after the program's name, as older A_A did: $P1" in text


def test_value_without_a_value_parameter_is_not_carried_and_the_job_is_not_runnable():
    task_row, job_row, text = _import(_dump("echo $VALUE"))
    assert task_row.executable == "echo $VALUE"
    assert not job_row.runnable
    assert "task 't': it uses $VALUE, which A_A fills from a parameter whose flag is VALUE; the task has none" in text
    assert "job 'j' is imported not runnable" in text


def test_a_gridengine_command_with_shell_syntax_is_not_carried():
    # A_A's geRunner hands the first word and the other words to DRMAA, without a shell (CommandRunner geRunner.py, README "Grid Engine Quirks").
    task_row, job_row, text = _import(_dump("prog $I1 | sort", behaviour=2))
    assert task_row.backend.queue_type.execution_behaviour == "slurm"
    assert not job_row.runnable
    assert "Sluice's slurm runs it as a shell line, which reads | as syntax" in text


def test_a_gridengine_backend_keeps_its_queue_as_the_partition():
    entries = _dump("prog $I1", behaviour=2)
    entries[1]["fields"]["queue"] = "short.q"
    task_row, job_row, text = _import(entries)
    assert task_row.backend.options == {"partition": "short.q"}
    assert job_row.runnable
    assert "A_A queue 'short.q' -> Slurm partition (options.partition)" in text


def test_tmp_is_the_backend_root_and_tmp_id_the_working_directory():
    # commandRunner's $TMP is the tmp_path A_A passes, the backend's root_path; the step's directory is <root>/<ID>/.
    task_row, job_row, _ = _import(_dump("prog $TMP/$ID/in $TMP/shared", root="/srv/aa/"))
    assert task_row.executable == "prog $TMP/in /srv/aa/shared"
    assert job_row.runnable


def test_a_glued_id_inside_single_quotes_is_not_carried():
    # A_A replaces $ID inside quotes too (CommandRunner commandRunner.py, _translate_command: str.replace on each word).
    task_row, job_row, text = _import(_dump("echo '$ID_x'"))
    assert task_row.executable == "echo '$ID_x'"
    assert not job_row.runnable
    assert "$ID_... stands glued to text inside single quotes" in text


def test_a_parameter_placeholder_beyond_the_parameters_is_dropped_as_the_shell_did():
    # A_A replaces only $P1..$Pn of the parameters it has and leaves the rest to the shell (CommandRunner commandRunner.py, _translate_command).
    task_row, job_row, text = _import(_dump("prog $P1 $P2", [{"flag": "-n", "rest_alias": "t_n", "default": "5"}]))
    assert task_row.executable == "prog $P1 "
    assert job_row.runnable
    assert "$P2 removed (there is no such parameter" in text


def test_python_code_is_imported_unchanged_and_runnable_with_aa_semantics():
    # A_A's pythonRunner opens I1.., O1.. and sets P1.. for the code (CommandRunner pythonRunner.py, prepare()):
    # the job is compat "aa", which defines them (tests/test_aa_compat.py).
    task_row, job_row, text = _import(_dump("print(open('x').read())", behaviour=4))
    assert task_row.executable == "print(open('x').read())"
    assert job_row.runnable
    assert job_row.compat == "aa"
    assert "python code imported unchanged" in text


def test_a_non_numeric_exit_status_is_refused_naming_the_entry():
    # A_A fails such a task at every run (A_A tests/test_tasks_customexitstatus.py, testCustomExitFailsIfGivenNonNumbericalExitStatuses).
    entries = _dump("prog")
    entries[2]["fields"]["custom_exit_status"] = "123,ARGHEL"
    with pytest.raises(ImportProblem, match=r"^dump.json: entry 3 \(analytics_automated.task pk=1\): custom_exit_status '123,ARGHEL' is not a list of numbers"):
        _import(entries)
    assert Task.objects.count() == 0


def test_exit_status_zero_with_terminate_is_not_carried():
    # Adding 0 to the custom exit statuses changes what success does (A_A docs/the_Job_UI.rst, "Custom exit behaviour").
    entries = _dump("prog")
    entries[2]["fields"].update(custom_exit_status="0", custom_exit_behaviour=1)
    task_row, job_row, text = _import(entries)
    assert task_row.custom_exit_status == ""
    assert not job_row.runnable
    assert "custom exit status 0 with terminate: A_A ends the job after this step succeeds" in text


def test_a_name_that_is_already_valid_keeps_it_and_the_cleaned_one_moves_aside():
    entries = _dump("prog")
    entries[2]["fields"]["name"] = "t x"
    entries.append({"model": "analytics_automated.task", "pk": 2, "fields": {"backend": 1, "name": "t_x", "in_glob": ".in", "out_glob": ".out", "executable": "prog"}})
    report = import_dumps([("dump.json", json.dumps(entries))])
    assert sorted(Task.objects.values_list("name", flat=True)) == ["t_x", "t_x_2"]
    assert Job.objects.get(name="j").steps.get().task.name == "t_x_2"
    assert "task 't x' (pk 1) -> 't_x_2'" in report.render()


# --- The command translation on plain data ----------------------------------------------------------


@pytest.mark.parametrize(
    ("executable", "text", "problems"),
    [
        ("prog $INPUT $OUTPUT", "prog $I1 $O1", 0),
        ("prog $INPUT2", "prog $INPUT2", 1),  # $I12 would be another placeholder
        ("prog -o $ID.out $IDX", "prog -o $ID.out ${SLUICE_ID}X", 0),
        ('prog "$ID_a"', 'prog "${SLUICE_ID}_a"', 0),
        ("cd $TMP/$ID && prog $TMP", "cd $TMP && prog /srv/aa", 0),
        ("prog $VALUE", "prog $P2", 0),
        ("prog $P1 $P9", "prog $P1 ", 0),
        ("prog $P12", "prog $P12", 1),
    ],
)
def test_the_translation_of_a_shell_line(executable, text, problems):
    order = ParameterOrder(options=[1, 2], value=[2], count=1)
    result = translate(executable, "localhost", False, order, [".in"], [".out"], "/srv/aa/")
    assert (result.text, len(result.problems)) == (text, problems)


def test_the_translation_of_older_placement_and_markers():
    order = ParameterOrder(flags=[1], options=[2, 3], count=3)
    assert translate("prog x", "localhost", True, order, [".in"], [".out"], "").text == "prog $P1 $P2 $P3 x"
    assert translate("prog $OPTIONS x $FLAGS", "localhost", True, order, [".in"], [".out"], "").text == "prog $P2 $P3 x $P1"
    assert translate("prog $FLAGS x", "localhost", True, order, [".in"], [".out"], "").text == "prog $P2 $P3 $P1 x"
