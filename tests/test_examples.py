"""Every example job loads and runs; runjob behaves as its contract says."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from execution.models import Result, Submission
from tests.conftest import embedded_env

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture
def examples():
    for path in EXAMPLES:
        call_command("loadjobs", str(path), stdout=open(os.devnull, "w"))


def runjob(*args):
    """Call runjob; return (exit code, stdout)."""
    from io import StringIO

    out = StringIO()
    try:
        call_command("runjob", *args, stdout=out)
    except SystemExit as exit:
        return exit.code, out.getvalue()
    return 0, out.getvalue()


def text_of(submission, ending):
    with Result.objects.get(submission=submission, ending=ending).file.open("rb") as handle:
        return handle.read().decode()


def test_tmp_count_counts_the_programs_in_usr_bin(examples):
    code, out = runjob("tmp_count")
    submission = Submission.objects.get()
    assert code == 0 and submission.status == "complete"
    expected = len(os.listdir("/usr/bin"))
    # Packages may be installed while the test runs; the count is of the listing the first step made.
    listing = text_of(submission, ".contents").splitlines()
    assert int(text_of(submission, ".count")) == len(listing)
    assert abs(len(listing) - expected) <= 5
    assert "complete" in out and ".count" in out


def test_grep_head_filters_and_truncates(examples, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("alpha\nBeta\ngamma\nbetamax\nBETA\n")
    code, _ = runjob("grep_head", "--input", str(words), "--param", "grep_lines_pattern=beta", "--param", "grep_lines_ignore_case=true", "--param", "head_lines_lines=2")
    submission = Submission.objects.get()
    assert code == 0
    assert text_of(submission, ".head") == "Beta\nbetamax\n"


def test_grep_head_with_no_match_is_an_empty_result_not_a_failure(examples, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("alpha\n")
    code, _ = runjob("grep_head", "--input", str(words), "--param", "grep_lines_pattern=zzz")
    assert code == 0
    assert text_of(Submission.objects.get(), ".head") == ""


def test_diamond_runs_both_branches_and_joins_them(examples):
    code, out = runjob("diamond", "--param", "numbers_count=10", "--json")
    document = json.loads(out)
    assert code == 0
    assert document["status"] == "complete"
    assert [node["status"] for node in document["nodes"]] == ["succeeded"] * 4
    submission = Submission.objects.get()
    assert json.loads(text_of(submission, ".json")) == {"sum": 55, "max": 10}
    assert {result["name"] for result in document["results"]} >= {f"{submission.uuid}.json", f"{submission.uuid}.sum"}


def test_runjob_json_prints_the_submission_document(examples):
    code, out = runjob("tmp_count", "--json")
    document = json.loads(out)
    assert set(document) >= {"uuid", "job", "submission_name", "status", "last_message", "nodes", "results", "messages"}
    assert set(document["nodes"][0]) == {"key", "task", "status", "started_at", "finished_at", "exit_code", "attempt", "image_digest", "message", "outputs", "logs"}
    assert set(document["results"][0]) == {"name", "node", "url", "size"}


def test_runjob_exits_1_when_the_run_fails(examples, tmp_path):
    code, out = runjob("diamond", "--param", "numbers_count=0")  # no numbers: combine cannot parse an empty sum
    assert code == 1
    assert "error" in out and "step 'combine' failed" in out


def test_runjob_refuses_a_job_that_needs_an_upload_without_one(examples):
    with pytest.raises(CommandError, match="job 'grep_head' needs an upload: step 'grep_lines' reads it") as caught:
        call_command("runjob", "grep_head", "--param", "grep_lines_pattern=x")
    assert caught.value.returncode == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope"], "there is no job 'nope'"),
        (["tmp_count", "--param", "bogus=1"], "job 'tmp_count' has no parameter 'bogus'"),
        (["tmp_count", "--param", "novalue"], "--param takes ALIAS=VALUE"),
        (["tmp_count", "--input", "/nonexistent/file"], "cannot read input file /nonexistent/file"),
        (["diamond", "--param", "numbers_count=abc"], "parameter 'numbers_count' must be an integer, got 'abc'"),
        (["diamond", "--disable", "nope"], "has no step 'nope'"),
    ],
)
def test_runjob_refuses_bad_input_with_exit_code_2(examples, args, message):
    with pytest.raises(CommandError, match=message) as caught:
        call_command("runjob", *args)
    assert caught.value.returncode == 2
    assert Submission.objects.count() == 0


def test_runjob_from_the_command_line_prints_one_line_errors(tmp_path):
    env = embedded_env(tmp_path)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, check=True, capture_output=True)
    subprocess.run([*manage, "loadjobs", str(ROOT / "examples" / "tmp_count.yaml")], env=env, check=True, capture_output=True)
    ok = subprocess.run([*manage, "runjob", "tmp_count"], env=env, capture_output=True, text=True)
    bad = subprocess.run([*manage, "runjob", "tmp_count", "--param", "x=1"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "complete" in ok.stdout
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "has no parameter 'x'" in bad.stderr
