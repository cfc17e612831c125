"""Submissions run end to end in-process: real processes, a real database."""
import json

import pytest

from execution import engine
from execution.errors import SubmissionInvalid
from execution.local import RunnerStateError, SynchronousRunner
from execution.models import Node, Result
from tests.factories import make_backend, make_job, make_parameter, make_queue_type, make_task

pytestmark = pytest.mark.django_db


def statuses(submission):
    return {node.key: node.status for node in submission.nodes.all()}


def result_text(submission, ending):
    result = Result.objects.get(submission=submission, ending=ending)
    with result.file.open("rb") as handle:
        return handle.read().decode()


def run(job, **kwargs):
    return SynchronousRunner(job, **kwargs).init().process()


def test_a_two_step_job_passes_files_from_step_to_step():
    first = make_task("first", "printf 'a\\nb\\nc\\n'", stdout_glob=".lines")
    second = make_task("second", "wc -l < $I1", in_glob=".lines", stdout_glob=".count")
    submission = run(make_job(steps=[first, second]))
    assert submission.status == "complete"
    assert statuses(submission) == {"first": "succeeded", "second": "succeeded"}
    assert result_text(submission, ".count").strip() == "3"


def test_the_upload_is_the_input_file():
    task = make_task("upper", "tr a-z A-Z < $I1 > $O1", in_glob=".input", out_glob=".rev")
    submission = run(make_job(steps=[task]), input=b"abc\n")
    assert result_text(submission, ".rev") == "ABC\n"
    assert Result.objects.get(submission=submission, ending=".input").name == f"{submission.uuid}.input"


def test_inputs_come_from_the_nearest_ancestor():
    a = make_task("a", "echo far", stdout_glob=".txt")
    b = make_task("b", "echo near", stdout_glob=".txt")
    c = make_task("c", "cat $I1", in_glob=".txt", stdout_glob=".seen")
    submission = run(make_job(steps=[a, b, c]))
    assert result_text(submission, ".seen") == "near\n"


def test_a_disabled_step_is_skipped_and_the_next_reads_past_it():
    a = make_task("a", "echo from-a", stdout_glob=".txt")
    b = make_task("b", "echo from-b", stdout_glob=".txt")
    c = make_task("c", "cat $I1", in_glob=".txt", stdout_glob=".seen")
    job = make_job(steps=[a, ("b", b, {"enabled": False}), c])
    submission = run(job)
    assert statuses(submission) == {"a": "succeeded", "b": "skipped", "c": "succeeded"}
    assert result_text(submission, ".seen") == "from-a\n"


def test_runner_can_disable_and_enable_steps_between_epochs():
    a = make_task("a", "echo from-a", stdout_glob=".txt")
    b = make_task("b", "echo from-b", stdout_glob=".txt")
    runner = SynchronousRunner(make_job(steps=[a, b])).init()
    runner.disable_node("b")
    first = runner.process()
    runner.enable_node("b")
    second = runner.process()
    assert statuses(first)["b"] == "skipped"
    assert statuses(second)["b"] == "succeeded"
    with pytest.raises(KeyError, match="has no step 'zz'"):
        runner.disable_node("zz")


def test_run_n_and_iter_make_independent_submissions():
    runner = SynchronousRunner(make_job(steps=[make_task("t", "true")]))
    submissions = runner.run(n=3)
    assert [s.status for s in submissions] == ["complete"] * 3
    assert len({s.uuid for s in submissions}) == 3
    assert next(runner.iter()).status == "complete"


def test_process_before_init_is_refused():
    runner = SynchronousRunner(make_job(steps=[make_task("t", "true")]))
    with pytest.raises(RunnerStateError, match="call init"):
        runner.process()


def test_a_failing_step_fails_the_submission_and_cancels_the_rest():
    bad = make_task("bad", "echo oops >&2; exit 3")
    after = make_task("after", "true")
    submission = run(make_job(steps=[bad, after]))
    assert submission.status == "error"
    node = submission.nodes.get(key="bad")
    assert (node.status, node.exit_code) == ("failed", 3)
    assert "exited with status 3" in node.message and "oops" in node.message
    assert submission.nodes.get(key="after").status == "cancelled"
    assert "step 'bad' failed: exited with status 3" in submission.last_message


def test_a_custom_exit_status_can_continue():
    task = make_task("grep", "exit 1", custom_exit_status="1,2", custom_exit_behaviour="continue")
    after = make_task("after", "true")
    submission = run(make_job(steps=[task, after]))
    assert submission.status == "complete"
    assert statuses(submission) == {"grep": "succeeded", "after": "succeeded"}


def test_a_custom_exit_status_can_terminate_the_submission_as_complete():
    task = make_task("check", "exit 70", custom_exit_status="70", custom_exit_behaviour="terminate")
    after = make_task("after", "true")
    submission = run(make_job(steps=[task, after]))
    assert submission.status == "complete"
    assert statuses(submission) == {"check": "succeeded", "after": "skipped"}
    assert "custom status 70" in submission.last_message


def test_a_custom_exit_status_can_fail():
    task = make_task("check", "exit 70", custom_exit_status="70", custom_exit_behaviour="fail")
    assert run(make_job(steps=[task])).status == "error"


def test_missing_outputs_fail_by_default():
    task = make_task("lazy", "true", out_glob=".out")
    submission = run(make_job(steps=[task]))
    assert submission.status == "error"
    assert "expected outputs missing: .out" in submission.nodes.get().message


@pytest.mark.parametrize("behaviour, status, node_status", [("continue", "complete", "succeeded"), ("terminate", "complete", "succeeded")])
def test_missing_outputs_follow_the_task_behaviour(behaviour, status, node_status):
    task = make_task("lazy", "true", out_glob=".out", incomplete_outputs_behaviour=behaviour)
    after = make_task("after", "true")
    submission = run(make_job(steps=[task, after]))
    assert submission.status == status
    assert submission.nodes.get(key="lazy").status == node_status
    assert submission.nodes.get(key="after").status == ("succeeded" if behaviour == "continue" else "skipped")


def test_a_job_that_reads_the_upload_refuses_a_submission_without_one():
    job = make_job(steps=[make_task("reader", "cat $I1", in_glob=".input")])
    with pytest.raises(SubmissionInvalid, match="job 'job' needs an upload: step 'reader' reads it"):
        engine.submit(job, input_data=b"")
    assert Node.objects.count() == 0


def test_a_step_that_needs_a_missing_input_fails_with_a_clear_message():
    maker = make_task("maker", "true")
    reader = make_task("reader", "cat $I1", in_glob=".txt")
    submission = run(make_job(steps=[maker, reader]))
    assert submission.status == "error"
    assert "reads an earlier step's '.txt' file but there is none" in submission.nodes.get(key="reader").message


def test_a_timeout_kills_the_whole_process_group(shared_dir):
    marker = shared_dir / "survivor"
    task = make_task("slow", f"(sleep 3; touch {marker}) & sleep 30", timeout=1)
    submission = run(make_job(steps=[task]))
    node = submission.nodes.get()
    assert node.status == "failed"
    assert node.message.startswith("timed out after 1 s")
    import time

    time.sleep(3.2)
    assert not marker.exists()


def test_retries_run_a_failed_step_again(shared_dir):
    counter = shared_dir / "count"
    task = make_task("flaky", f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 3 ]", retries=2)
    submission = run(make_job(steps=[task]))
    node = submission.nodes.get()
    assert (submission.status, node.status, node.attempt) == ("complete", "succeeded", 3)
    assert submission.messages.filter(text__contains="retrying").count() == 2


def test_retries_are_bounded():
    submission = run(make_job(steps=[make_task("never", "exit 1", retries=1)]))
    assert (submission.status, submission.nodes.get().attempt) == ("error", 2)


def test_parameters_are_typed_defaulted_and_quoted():
    task = make_task("echoer", "printf '%s|' $P1 $P2 $P3 > $O1", out_glob=".out")
    make_parameter(task, "n", flag="-n", type="int", default="5")
    make_parameter(task, "word", switchless=True, required=True)
    make_parameter(task, "loud", flag="--loud", bool_valued=True, type="bool")
    submission = run(make_job(steps=[task]), params={"echoer_word": "$(touch PWNED) x", "echoer_loud": "yes"})
    assert result_text(submission, ".out") == "-n|5|$(touch PWNED) x|--loud|"
    assert submission.params == {"echoer_n": 5, "echoer_word": "$(touch PWNED) x", "echoer_loud": True}


def test_bad_parameters_are_refused_before_anything_runs():
    task = make_task("t", "true")
    make_parameter(task, "n", flag="-n", type="int", required=True)
    job = make_job(steps=[task])
    with pytest.raises(SubmissionInvalid) as caught:
        engine.submit(job, params={"t_n": "abc", "t_zzz": "1"})
    assert caught.value.errors["t_n"] == ["parameter 't_n' must be an integer, got 'abc'"]
    assert "has no parameter 't_zzz'" in caught.value.errors["t_zzz"][0]
    with pytest.raises(SubmissionInvalid, match="parameter 't_n' is required"):
        engine.submit(job, params={})
    assert Node.objects.count() == 0


def test_a_job_that_is_not_runnable_refuses_submissions():
    job = make_job(steps=[make_task("t", "true")], runnable=False)
    with pytest.raises(SubmissionInvalid, match="job 'job' is not runnable"):
        engine.submit(job)


def test_a_validator_refuses_a_bad_upload():
    job = make_job(steps=[make_task("t", "true")])
    job.validators.create(validation_type="json")
    with pytest.raises(SubmissionInvalid, match="validator 'json' rejected the upload"):
        engine.submit(job, input_data=b"{not json")


def test_task_environment_and_sluice_variables_reach_the_process():
    task = make_task("env", 'printf "%s %s %s" "$GREETING" "$SLUICE_ID" "$SLUICE_P1" > $O1', out_glob=".out")
    task.environment.create(name="GREETING", value="hello world")
    make_parameter(task, "x", flag="-x", default="7")
    submission = run(make_job(steps=[task]))
    assert result_text(submission, ".out") == f"hello world {submission.uuid} 7"


def test_a_python_task_runs_in_its_own_interpreter():
    backend = make_backend("py", queue_type=make_queue_type("python", "python"))
    task = make_task("py", "import json, os\njson.dump({'n': int($P1), 'pid': os.getpid()}, open('$O1', 'w'))", backend=backend, out_glob=".json")
    make_parameter(task, "n", default="41")
    submission = run(make_job(steps=[task]))
    data = json.loads(result_text(submission, ".json"))
    import os

    assert data["n"] == 41 and data["pid"] != os.getpid()


def test_results_keep_the_rendered_command_and_messages_tell_the_story():
    task = make_task("hello", "echo hi", stdout_glob=".txt")
    submission = run(make_job(steps=[task]))
    assert submission.nodes.get().command == "echo hi"
    texts = list(submission.messages.values_list("text", flat=True))
    assert texts[0] == "submitted to job 'job'"
    assert texts[-1] == "complete: 1 of 1 steps done"
    assert submission.started_at and submission.finished_at


def test_a_step_does_not_inherit_the_workers_secrets(monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "top-secret")
    task = make_task("env", 'printf "%s|%s" "${DJANGO_SECRET_KEY:-none}" "$PATH" > $O1', out_glob=".out")
    secret, path = result_text(run(make_job(steps=[task])), ".out").split("|")
    assert secret == "none" and path


def test_an_output_belongs_to_its_longest_ending():
    task = make_task("two", "echo a > $ID.txt; echo b > $ID.gz.txt", out_glob=".txt,.gz.txt")
    submission = run(make_job(steps=[task]))
    assert submission.status == "complete"
    assert sorted(submission.results.values_list("ending", flat=True)) == [".gz.txt", ".txt"]


def test_killing_a_group_whose_leader_dies_on_sigterm_does_not_wait_out_the_grace():
    import subprocess
    import time

    from execution.processes import kill_group

    process = subprocess.Popen(["sleep", "30"], start_new_session=True)
    started = time.monotonic()
    kill_group(process.pid, grace=30, reap=process.poll)  # waiting out the grace would take 30 s
    assert time.monotonic() - started < 10
    assert process.returncode is not None


def test_an_r_task_runs_with_rscript_and_reads_values_as_strings():
    backend = make_backend("r", queue_type=make_queue_type("r", "r"))
    code = 'n <- as.integer($P1)\nwriteLines(sprintf("%d %s", n * n, $P2), "$O1")'
    task = make_task("square_r", code, backend=backend, out_glob=".txt")
    make_parameter(task, "n", type="int", default="12")
    make_parameter(task, "note", default='it\'s "quoted"; q()')
    submission = run(make_job(steps=[task]))
    assert submission.status == "complete", submission.nodes.get().message
    assert result_text(submission, ".txt") == '144 it\'s "quoted"; q()\n'
