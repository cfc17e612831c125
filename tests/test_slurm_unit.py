"""The Slurm executor's pure parts, without a cluster: sbatch flags, the batch script, states, backend options."""
import subprocess

import pytest
from django.core.exceptions import ValidationError

from execution import verdicts
from execution.slurm import COMMAND, EXIT_STATUS, batch_script, elapsed_seconds, finished_from, sbatch_flags, time_limit
from jobs.models import Backend
from jobs.slurm_options import options_problem
from tests.factories import make_queue_type


def test_resources_and_options_become_sbatch_flags():
    flags = sbatch_flags({"cpus": 4, "memory_mb": 512, "gpus": 2, "time_s": 3600}, None, {"partition": "short", "account": "lab", "sbatch_args": ["--qos=normal"]})
    assert flags == ["--partition=short", "--account=lab", "--cpus-per-task=4", "--mem=512M", "--gres=gpu:2", "--time=60", "--qos=normal"]


def test_the_time_limit_is_the_smaller_of_timeout_and_time_s_in_whole_minutes_rounded_up():
    assert sbatch_flags({"time_s": 3600}, 90, {}) == ["--time=2"]
    assert sbatch_flags({"time_s": 30}, 600, {}) == ["--time=1"]
    assert time_limit({"time_s": 3600}, 90) == 90
    assert time_limit({}, None) is None
    assert sbatch_flags({"gpus": 0}, None, {}) == []


def test_the_batch_script_holds_no_value_and_runs_the_command_file(tmp_path):
    workdir = tmp_path / "it's $(here)"
    workdir.mkdir()
    hostile = "$(touch pwned) `touch pwned2`; exit 9"
    line = "printf '%s\\n' " + "'" + hostile.replace("'", "'\\''") + "' > out.txt; echo err >&2; exit 4"
    (workdir / COMMAND).write_text(line)
    script = batch_script(workdir, ".stdout")
    assert hostile not in script and "printf" not in script
    (tmp_path / "job.sh").write_text(script)

    subprocess.run(["bash", str(tmp_path / "job.sh")], cwd=tmp_path, check=True)

    assert (workdir / "out.txt").read_text() == hostile + "\n"
    assert (workdir / EXIT_STATUS).read_text() == "4\n"
    assert (workdir / ".stderr").read_text() == "err\n"
    assert not list(workdir.glob("pwned*"))


@pytest.mark.parametrize("state", ["PENDING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"])
def test_a_job_that_has_not_ended_is_still_running(state):
    assert finished_from("7", state, None) is None


def test_a_completed_or_failed_job_ends_with_the_status_it_wrote():
    assert finished_from("7", "COMPLETED", 0).exit_code == 0
    assert finished_from("7", "FAILED", 3).exit_code == 3
    assert finished_from("7", None, 5).exit_code == 5  # squeue forgot it, the status file remains


def test_a_job_that_left_no_status_says_where_to_look():
    ended = finished_from("7", "COMPLETED", None)
    assert ended.exit_code is None and not ended.lost and "root_path" in ended.reason


def test_a_job_gone_without_a_status_is_lost():
    gone = finished_from("7", None, None)
    assert gone.lost and gone.reason == "Slurm job 7 is gone and left no exit status"


def test_out_of_memory_names_what_the_task_asks_for():
    ended = finished_from("123", "OUT_OF_MEMORY", 137, {"memory_mb": 512})
    assert ended.reason == "Slurm job 123 ran out of memory (OUT_OF_MEMORY); the task asks for memory_mb=512"
    verdict = verdicts.judge(exit_code=ended.exit_code, reason=ended.reason)
    assert not verdict.succeeded and verdict.message == "exited with status 137: " + ended.reason


@pytest.mark.parametrize("state, words", [
    ("CANCELLED", "was cancelled (CANCELLED)"), ("NODE_FAIL", "its node failed (NODE_FAIL)"), ("PREEMPTED", "was preempted by another job (PREEMPTED)"),
    ("BOOT_FAIL", "(BOOT_FAIL)"), ("DEADLINE", "(DEADLINE)"), ("SOMETHING_NEW", "ended SOMETHING_NEW"),
])
def test_other_ends_fail_with_slurm_s_word_for_them(state, words):
    ended = finished_from("9", state, None)
    assert words in ended.reason and not ended.lost
    verdict = verdicts.judge(exit_code=None, reason=ended.reason)
    assert not verdict.succeeded and verdict.message.startswith("ended without an exit status: Slurm job 9")


def test_a_slurm_timeout_is_a_timeout():
    ended = finished_from("9", "TIMEOUT", None, {"time_s": 60})
    assert ended.timed_out and ended.reason.endswith("the task asks for time_s=60")
    assert verdicts.judge(exit_code=None, timed_out=True, timeout=None, reason=ended.reason).message.startswith("timed out: Slurm job 9 reached its time limit")


def test_a_job_sluice_stopped_at_its_limit_is_a_timeout_even_if_slurm_says_cancelled():
    assert finished_from("9", "CANCELLED", None, timed_out=True).timed_out


def test_squeue_elapsed_times_read_as_seconds():
    assert [elapsed_seconds(text) for text in ("0:00", "5:06", "1:02:03", "2-01:00:00", "INVALID")] == [0, 306, 3723, 176400, 0]


@pytest.mark.parametrize("options, words", [
    ({"partion": "x"}, "unknown Slurm option 'partion'"),
    ({"partition": 3}, "'partition' must be a partition name"),
    ({"account": "two words"}, "'account' must be an account name"),
    ({"sbatch_args": "--qos=normal"}, "'sbatch_args' must be a list"),
    ({"sbatch_args": ["--qos", 1]}, "'sbatch_args' must be a list"),
    ({"sbatch_args": ["normal"]}, "holds options only"),
    ([], "must be a mapping"),
])
def test_bad_slurm_options_are_refused_with_a_clear_message(options, words):
    assert words in options_problem(options)


def test_good_slurm_options_pass():
    assert options_problem({"partition": "short", "account": "lab", "sbatch_args": ["--qos=normal", "--constraint=avx2"]}) is None
    assert options_problem({}) is None


@pytest.mark.django_db
def test_a_slurm_backend_is_validated_when_saved_and_other_backends_are_not():
    slurm = Backend(name="cluster", queue_type=make_queue_type("slurm", "slurm"), options={"sbatch_args": "--qos=x"})
    with pytest.raises(ValidationError) as raised:
        slurm.full_clean()
    assert "'sbatch_args' must be a list" in raised.value.message_dict["options"][0]
    Backend(name="local", queue_type=make_queue_type(), options={"anything": 1}).full_clean()


@pytest.mark.django_db
def test_a_slurm_task_s_executable_is_checked_as_a_shell_line():
    from tests.factories import make_backend, make_task

    task = make_task("unsafe", "echo '$P1'", backend=make_backend("cluster", queue_type=make_queue_type("slurm", "slurm")))
    assert task.quoting_errors()


@pytest.mark.django_db
def test_a_catalogue_file_with_bad_slurm_options_is_refused_where_it_is_wrong():
    from jobs.yaml_io import CatalogueError, load_catalogue

    data = {
        "queue_types": [{"name": "cluster", "execution_behaviour": "slurm"}],
        "backends": [{"name": "cluster", "queue_type": "cluster", "root_path": "/shared/sluice", "options": {"partition": "short", "sbatch_arg": ["--qos=x"]}}],
    }
    with pytest.raises(CatalogueError, match=r"backends\[0\].*unknown Slurm option 'sbatch_arg'; known: partition, account, sbatch_args"):
        load_catalogue(data)
    assert not Backend.objects.filter(name="cluster").exists()


@pytest.mark.django_db
def test_a_slurm_step_run_where_nothing_follows_it_fails_saying_so():
    """engine.run_node takes the process's follower from its caller (a worker, runjob); without one the node fails, it is not left running."""
    from execution import engine
    from tests.factories import make_backend, make_job, make_task

    backend = make_backend("cluster", queue_type=make_queue_type("cluster", execution_behaviour="slurm"))
    submission = engine.submit(make_job("on_cluster", steps=[make_task("remote", "true", backend=backend)]))
    assert engine.run_node(submission.ready[0]) == []
    node = submission.nodes.get()
    assert node.status == "failed" and "nothing follows it here" in node.message and node.handle == ""
    submission.refresh_from_db()
    assert submission.status == "error"
