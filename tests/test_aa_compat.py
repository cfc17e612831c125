"""Jobs with ``compat: aa`` keep Analytics Automated's run-time semantics; default jobs keep Sluice's.

Each assertion on A_A behaviour names where that behaviour comes from: a test
or the code of A_A (``analytics_automated``) or of the ``commandRunner``
package A_A runs its commands with.
"""
import json

import pytest

from execution.local import SynchronousRunner
from execution.models import Result
from tests.factories import make_backend, make_job, make_parameter, make_queue_type, make_task

pytestmark = pytest.mark.django_db

ATTACK = "x'}\nimport os; os.system('touch pwned')\n{'y': '"


def run(job, **kwargs):
    return SynchronousRunner(job, **kwargs).init().process()


def result_text(submission, ending):
    result = Result.objects.get(submission=submission, ending=ending, superseded=False)
    with result.file.open("rb") as handle:
        return handle.read().decode()


def code_backend(behaviour):
    return make_backend(behaviour, queue_type=make_queue_type(behaviour, behaviour))


# The field: YAML and admin


CATALOGUE = """\
queue_types: [{name: localhost, execution_behaviour: localhost}]
backends: [{name: local, queue_type: localhost}]
tasks: [{name: echo, backend: local, executable: echo hi, stdout_glob: .txt}]
jobs: [{name: kept, compat: %s, steps: [{id: echo, task: echo, ordering: 0}]}]
"""


def test_compat_goes_through_yaml_and_a_wrong_value_is_refused():
    from jobs.models import Job
    from jobs.yaml_io import CatalogueError, dump_catalogue, load_text

    load_text(CATALOGUE % "aa")
    assert Job.objects.get(name="kept").compat == "aa"
    assert dump_catalogue(["kept"])["jobs"][0]["compat"] == "aa"
    with pytest.raises(CatalogueError, match="compat"):
        load_text(CATALOGUE % "bb")
    assert Job.objects.get(name="kept").compat == "aa"


def test_a_default_job_dumps_without_compat():
    from jobs.yaml_io import dump_catalogue

    make_job("plain", steps=[make_task("t", "true")])
    assert "compat" not in dump_catalogue(["plain"])["jobs"][0]


def test_staff_set_compat_in_admin(client, staff):
    client.force_login(staff)
    job = make_job("adminjob", steps=[make_task("t", "true")])
    page = client.get(f"/admin/jobs/job/{job.pk}/change/")
    assert page.status_code == 200
    assert b'name="compat"' in page.content and b"Analytics Automated" in page.content


# 1. Python and R code gets I1.., O1.., P1..

PYTHON_VARIABLES = """\
import json
json.dump({"input": I1.read(), "p1": P1, "p2": P2, "output_name": O1.name, "input_name": I1.name}, O1)
"""


def python_job(compat, executable=PYTHON_VARIABLES, value="7"):
    task = make_task("py", executable, backend=code_backend("python"), in_glob=".input", out_glob=".json")
    make_parameter(task, "size", flag="-s", default=value)
    make_parameter(task, "verbose", flag="-v", bool_valued=True, type="bool", default="true")
    return make_job("pyjob", steps=[task], compat=compat)


def test_python_code_of_an_aa_job_gets_open_files_and_parameter_variables():
    submission = run(python_job("aa"), input=b"ACGT\n")
    assert submission.status == "complete", submission.last_message
    data = json.loads(result_text(submission, ".json"))
    # commandRunner pythonRunner.prepare: I<n> = open(<staged file>, 'r'); O<n> = open(<ID><out ending>, 'w')
    # (tests/test_pythonRunner.py test_prepare_with_just_infiles, test_prepare_with_outfiles).
    assert data["input"] == "ACGT\n"
    assert data["input_name"] == f"{submission.uuid}.input"
    assert data["output_name"] == f"{submission.uuid}.json"
    # P<n> = {flag: value} for a valued parameter, True for a flag
    # (tests/test_pythonRunner.py test_prepare_with_params: "P1 = True ... P3 = {'-a': '12'}").
    assert data["p1"] == {"-s": "7"}
    assert data["p2"] is True


def test_a_flag_set_false_is_still_true_as_in_aa():
    submission = run(python_job("aa"), input=b"x", params={"py_verbose": "false"})
    # A_A's api.py __build_params puts '' for a flag set false, which pythonRunner.prepare then sets to True
    # (it is not among param_values): P<n> is True whatever the flag's value.
    assert json.loads(result_text(submission, ".json"))["p2"] is True


def test_an_attackers_value_in_p1_stays_data():
    # A_A pasted the value between quotes into the code (commandRunner pythonRunner.prepare); here it is read from a file.
    code = "import os\nO1.write(P1['-s'] + '|' + str(os.path.exists('pwned')))\n"
    submission = run(python_job("aa", executable=code), input=b"x", params={"py_size": ATTACK})
    assert submission.status == "complete", submission.last_message
    assert result_text(submission, ".json") == ATTACK + "|False"
    assert ATTACK not in submission.nodes.get().command


def test_python_code_of_a_default_job_has_no_aa_variables():
    submission = run(python_job(""), input=b"ACGT\n")
    # Sluice's own semantics: the code names $I1, $O1, $P1 placeholders; I1 is undefined.
    assert submission.status == "error"
    assert "NameError" in submission.nodes.get().message + submission.last_message


R_VARIABLES = """\
writeLines(c(readLines(I1), P1[["-s"]], as.character(isTRUE(P2))), O1)
"""


def test_r_code_of_an_aa_job_gets_open_connections_and_parameter_variables():
    task = make_task("rtask", R_VARIABLES, backend=code_backend("r"), in_glob=".input", out_glob=".txt")
    make_parameter(task, "size", flag="-s", default="7")
    make_parameter(task, "verbose", flag="-v", bool_valued=True, type="bool", default="true")
    submission = run(make_job("rjob", steps=[task], compat="aa"), input=b"ACGT\n", params={"rtask_size": ATTACK})
    assert submission.status == "complete", submission.last_message
    # commandRunner rRunner.prepare: I<n> <- file(<staged>, 'r'), O<n> <- file(<ID><ending>, 'w'),
    # P<n> <- list(); P<n>[[flag]] <- value, or P<n> <- TRUE for a flag (tests/test_rRunner.py).
    assert result_text(submission, ".txt") == f"ACGT\n{ATTACK}\nTRUE\n"


# 2. Later stages receive every earlier result with an in-glob ending


def three_steps(compat):
    far = make_task("far", "echo far", stdout_glob=".txt")
    near = make_task("near", "echo near", stdout_glob=".txt")
    # Lists every staged .txt file in name order, then the content of $I1.
    reader = make_task("reader", "cat $(ls *.txt | sort); echo I1=$(cat $I1)", in_glob=".txt", stdout_glob=".seen")
    return make_job(f"three_{compat or 'sluice'}", steps=[far, near, reader], compat=compat)


def test_a_later_stage_of_an_aa_job_receives_every_earlier_result_with_its_ending():
    submission = run(three_steps("aa"))
    assert submission.status == "complete", submission.last_message
    # A_A's get_data copies every Result of steps <= previous_step whose name has an in-glob ending
    # into the working directory (analytics_automated/tasks.py, get_data).
    seen = result_text(submission, ".seen").split("\n")
    assert sorted(seen[:2]) == ["far", "near"]
    # $I1 is still the nearest one, <ID>.txt.
    assert seen[2] == "I1=near"


def test_a_later_stage_of_a_default_job_receives_only_the_nearest_result():
    submission = run(three_steps(""))
    assert result_text(submission, ".seen") == "near\nI1=near\n"


def test_an_aa_step_missing_an_ending_still_runs_as_in_aa():
    first = make_task("first", "echo a", stdout_glob=".txt")
    second = make_task("second", "cat $I1; test -e $I2 || echo no-I2", in_glob=".txt, .absent", stdout_glob=".seen")
    # A_A's check that every in-glob was found is commented out (analytics_automated/tasks.py, get_data).
    submission = run(make_job("missing_aa", steps=[first, second], compat="aa"))
    assert submission.status == "complete", submission.last_message
    assert result_text(submission, ".seen") == "a\nno-I2\n"
    # Sluice's own semantics: a missing input fails the step.
    default = run(make_job("missing_sluice", steps=[first, second]))
    assert default.status == "error"


# 3. The upload goes to every first-stage step under its first in-glob ending


def first_stage(compat):
    left = make_task("left", "cat $I1 > $O1", in_glob=".fasta, .other", out_glob=".left")
    right = make_task("right", "cat $I1 > $O1", in_glob=".pdb", out_glob=".right")
    return make_job(f"first_{compat or 'sluice'}", steps=[left, ("right", right, {"ordering": 0})], compat=compat)


def test_the_upload_goes_to_every_first_stage_step_of_an_aa_job_under_its_first_ending():
    submission = run(first_stage("aa"), input=b">s\nACGT\n")
    assert submission.status == "complete", submission.last_message
    # A_A's get_data, step 1: data_dict[<ID>.<first in_glob ending>] = the upload, for every task of
    # the first step (analytics_automated/tasks.py, get_data; build_file_globs takes in_globs[0]).
    assert result_text(submission, ".left") == ">s\nACGT\n"
    assert result_text(submission, ".right") == ">s\nACGT\n"


def test_an_aa_job_whose_first_stage_reads_the_upload_needs_one():
    from execution.errors import SubmissionInvalid

    # A_A's submission API requires input_data (api.py, SubmissionDetails.post: "Input does not contain all required fields"),
    # and its first step reads it under the first in-glob ending (tasks.py, get_data).
    with pytest.raises(SubmissionInvalid, match="needs an upload: step 'left' reads it"):
        run(first_stage("aa"))


def test_a_first_stage_step_of_a_default_job_reads_the_upload_only_as_input():
    submission = run(first_stage(""), input=b">s\nACGT\n")
    assert submission.status == "error"
    assert not Result.objects.filter(submission=submission, ending=".left").exists()


# importaa: jobs it imports are compat "aa", and their Python code runs


def test_an_imported_python_job_runs_with_aa_variables_and_a_task_first_in_one_job_later_in_another():
    from jobs.aa_import import import_dumps
    from jobs.models import Job

    entries = [
        {"model": "analytics_automated.queuetype", "pk": 1, "fields": {"name": "sh", "execution_behaviour": 1}},
        {"model": "analytics_automated.queuetype", "pk": 2, "fields": {"name": "py", "execution_behaviour": 4}},
        {"model": "analytics_automated.backend", "pk": 1, "fields": {"name": "local", "root_path": "/srv/aa/", "queue_type": 1}},
        {"model": "analytics_automated.backend", "pk": 2, "fields": {"name": "python", "root_path": "/srv/aa/", "queue_type": 2}},
        {"model": "analytics_automated.task", "pk": 1, "fields": {"backend": 2, "name": "upper", "in_glob": ".fasta", "out_glob": ".up", "executable": "O1.write(I1.read().upper() + P1['-n'])"}},
        {"model": "analytics_automated.task", "pk": 2, "fields": {"backend": 1, "name": "make", "in_glob": ".input", "out_glob": ".fasta", "executable": "cp $INPUT $ID.fasta"}},
        {"model": "analytics_automated.parameter", "pk": 1, "fields": {"task": 1, "flag": "-n", "rest_alias": "n", "default": "!", "bool_valued": False}},
        {"model": "analytics_automated.job", "pk": 1, "fields": {"name": "alone", "runnable": True}},
        {"model": "analytics_automated.job", "pk": 2, "fields": {"name": "after", "runnable": True}},
        {"model": "analytics_automated.step", "pk": 1, "fields": {"job": 1, "task": 1, "ordering": 0}},
        {"model": "analytics_automated.step", "pk": 2, "fields": {"job": 2, "task": 2, "ordering": 0}},
        {"model": "analytics_automated.step", "pk": 3, "fields": {"job": 2, "task": 1, "ordering": 1}},
    ]
    import_dumps([("dump.json", json.dumps(entries))])
    alone, after = Job.objects.get(name="alone"), Job.objects.get(name="after")
    assert (alone.runnable, alone.compat, after.runnable, after.compat) == (True, "aa", True, "aa")
    # First in "alone": the upload is its .fasta (tasks.py, get_data, step 1); I1 and P1 are pythonRunner's.
    first = run(alone, input=b"acgt")
    assert first.status == "complete", first.last_message
    assert result_text(first, ".up") == "ACGT!"
    # Later in "after": its .fasta is the earlier step's result (tasks.py, get_data, later steps).
    later = run(after, input=b"tttt", params={"upper_n": "?"})
    assert later.status == "complete", later.last_message
    assert result_text(later, ".up") == "TTTT?"


# 4. A_A's validators' rules, as aa_seq and aa_pdb_file (importaa selects them for A_A's seq and pdb_file)

PROTEIN = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEK"  # 53 residues


def validated_job(name, validator):
    from jobs.models import Validator

    job = make_job(name, steps=[make_task(f"{name}_t", "cat $I1", in_glob=".input", stdout_glob=".out")], compat="aa")
    Validator.objects.create(job=job, validation_type=validator)
    return job


def refusal(job, upload):
    from execution.errors import SubmissionInvalid

    with pytest.raises(SubmissionInvalid) as caught:
        run(job, input=upload)
    return str(caught.value.errors if hasattr(caught.value, "errors") else caught.value)


@pytest.mark.parametrize(
    "upload, why",
    [
        # A_A validators.py __test_seq: fewer than 30 residues is refused, so 3 residues are.
        (b">p\nMKT\n", "30 to 1500 residues"),
        # __test_seq: more than 1500 is refused.
        (b">p\n" + b"M" * 1501 + b"\n", "30 to 1500 residues"),
        # __test_seq: 95% or more of A/T/C/G/U/N is nucleotides (test_validators.py, testRejectNucleotide).
        (b">n\n" + b"ACGT" * 10 + b"\n", "nucleotides"),
        # __test_seq: only ACDEFGHIKLMNPQRSTVWYX- (B is not among them) (test_validators.py, testRejectBadSeq).
        (b">p\n" + PROTEIN.encode() + b"B\n", "'B'"),
        # seq: a header and no residues holds no sequence (test_validators.py, testRejectNoSeq).
        (b">p\n\n", "holds none"),
        # seq: an alignment whose residues are not count x the first's length (test_validators.py, testRejectBadMSA).
        (f">a\n{PROTEIN}\n>b\n{PROTEIN[:-5]}\n".encode(), "equally long"),
        # seq: every sequence of an alignment passes __test_seq (test_validators.py, testRejectMSAWithBadChar).
        (f">a\n{PROTEIN}\n>b\n{PROTEIN[:-1]}B\n".encode(), "sequence 2"),
    ],
)
def test_aa_seq_refuses_what_aa_refused(upload, why):
    assert why in refusal(validated_job("seqjob", "aa_seq"), upload)


def test_aa_seq_accepts_a_protein_and_an_alignment():
    job = validated_job("seqjob", "aa_seq")
    # test_validators.py, testAcceptFasta and testAcceptMSA.
    assert run(job, input=f">p\n{PROTEIN[:30]}\n{PROTEIN[30:]}\n".encode()).status == "complete"
    assert run(job, input=f">a\n{PROTEIN}\n>b\n{PROTEIN.lower()}\n".encode()).status == "complete"


def test_sluices_own_seq_still_accepts_nucleotides():
    job = validated_job("plainseq", "seq")
    assert run(job, input=b">n\nACGTACGT\n").status == "complete"


def test_aa_pdb_file_wants_an_atom_record_in_any_case():
    job = validated_job("pdbjob", "aa_pdb_file")
    # A_A validators.py pdb_file: re.search("ATOM\\s+\\d+", re.IGNORECASE) (test_validators.py, testAcceptValidPDB, testRegjectInvalidPDB).
    assert run(job, input=b"REMARK x\natom      1  N   MET A   1\n").status == "complete"
    assert "ATOM <serial number>" in refusal(job, f">p\n{PROTEIN}\n".encode())


def test_importaa_selects_the_aa_validators():
    from jobs.aa_import import VALIDATORS

    # A_A's ValidatorTypes names are the functions of its validators.py.
    assert VALIDATORS["seq"] == "aa_seq" and VALIDATORS["pdb_file"] == "aa_pdb_file"


def test_a_cached_step_is_not_reused_between_an_aa_job_and_a_default_job():
    task = make_task("cached", "print('I1' in globals())", backend=code_backend("python"), in_glob=".input", stdout_glob=".seen", cache=True)
    default = run(make_job("cache_sluice", steps=[task]), input=b"same")
    compat = run(make_job("cache_aa", steps=[task], compat="aa"), input=b"same")
    # Same task, same upload: only the job's semantics differ, and the aa run is run, not taken from the cache.
    assert compat.nodes.get().status == "succeeded"
    assert (result_text(default, ".seen"), result_text(compat, ".seen")) == ("False\n", "True\n")


def test_an_aa_jobs_python_code_keeps_its_own_line_numbers_and_future_imports():
    code = "from __future__ import annotations\nimport sys\nx = 1\nraise SystemExit('at line %d' % sys._getframe().f_lineno)\n"
    submission = run(python_job("aa", executable=code), input=b"x")
    # commandRunner compiled the header and the code together; here the code is compiled as written.
    node = submission.nodes.get()
    assert node.status == "failed"
    assert "at line 4" in node.message + submission.last_message
