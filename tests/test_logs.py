"""Step logs: every attempt's stdout and stderr kept, capped, served, listed and deleted with the run."""
from io import StringIO

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import Client

from execution import controls, engine, logs, retention
from execution.local import SynchronousRunner
from execution.models import NodeLog
from tests.clients import client_for, errors
from tests.factories import make_job, make_task

pytestmark = pytest.mark.django_db


def run(job, **kwargs):
    return SynchronousRunner(job, **kwargs).init().process()


def stored(log):
    with log.file.open("rb") as handle:
        return handle.read().decode()


def body(response):
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return content.decode()


def seq(tmp_path, count):
    path = tmp_path / "seq.txt"
    path.write_bytes(b"".join(b"%d\n" % number for number in range(1, count + 1)))
    return path


# --- capping (plain files) -----------------------------------------------------------


def test_a_log_within_the_limit_is_kept_whole(tmp_path):
    path = seq(tmp_path, 10)
    assert logs.cap(path, limit=21) == path.read_bytes()  # 21 bytes exactly


def test_a_big_log_keeps_whole_lines_of_its_head_and_tail_with_a_marker(tmp_path):
    path = seq(tmp_path, 1000)  # 3893 bytes
    kept = logs.cap(path, limit=100)
    head = b"".join(b"%d\n" % n for n in range(1, 20))  # 48 bytes: "20\n" would pass the 50 of the head
    tail = b"".join(b"%d\n" % n for n in range(989, 1001))  # 49 bytes: "988\n" would pass the 50 of the tail
    assert kept == head + "… 3796 bytes cut …\n".encode() + tail
    assert 3893 - len(head) - len(tail) == 3796


def test_a_tail_that_starts_at_a_line_start_loses_no_line(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_bytes(b"aaaa\n" * 10)  # 50 bytes; the last 10 are two whole lines
    assert logs.cap(path, limit=20) == b"aaaa\naaaa\n" + "… 30 bytes cut …\n".encode() + b"aaaa\naaaa\n"


def test_a_log_without_line_ends_is_cut_mid_line_on_a_line_of_its_own(tmp_path):
    path = tmp_path / "one-line.txt"
    path.write_bytes(b"h" * 100 + b"t" * 200)
    assert logs.cap(path, limit=21) == b"h" * 10 + "\n… 279 bytes cut …\n".encode() + b"t" * 11


def test_last_lines_never_start_mid_line():
    assert logs.last_lines(b"first line\nsecond\nthird\n", 14) == "second\nthird"
    assert logs.last_lines(b"first line\nsecond\nthird\n", 100) == "first line\nsecond\nthird"
    assert logs.last_lines(b"x" * 50 + b"\n", 10) == "…" + "x" * 9


# --- keeping -------------------------------------------------------------------------


def test_a_succeeding_step_keeps_its_stdout_and_stderr():
    task = make_task("talk", "echo to-out; echo to-err >&2")
    submission = run(make_job(steps=[task]))
    assert submission.status == "complete"
    err, out = NodeLog.objects.filter(node__submission=submission).order_by("stream")
    assert (out.attempt, out.stream, out.size, out.original_size, stored(out)) == (1, "stdout", 7, 7, "to-out\n")
    assert (err.attempt, err.stream, err.size, err.original_size, stored(err)) == (1, "stderr", 7, 7, "to-err\n")
    assert err.file.name == f"logs/{submission.uuid}/{err.node_id}-1-1.stderr.txt"


def test_captured_stdout_is_both_a_result_and_the_log():
    task = make_task("count", "printf '1\\n2\\n'", stdout_glob=".txt")
    submission = run(make_job(steps=[task]))
    result = submission.results.get(ending=".txt")
    with result.file.open("rb") as handle:
        assert handle.read() == b"1\n2\n"
    assert stored(NodeLog.objects.get(node__submission=submission, stream="stdout")) == "1\n2\n"


def test_a_silent_step_stores_no_log(isolated_storage):
    submission = run(make_job(steps=[make_task("quiet", "true")]))
    assert submission.status == "complete"
    assert not NodeLog.objects.exists()
    assert not (isolated_storage / "media" / "logs").exists()


def test_a_big_stream_is_kept_capped(settings):
    settings.SLUICE_LOG_MAX_BYTES = 100
    submission = run(make_job(steps=[make_task("many", "seq 1 1000")]))
    log = NodeLog.objects.get(node__submission=submission, stream="stdout")
    assert (log.original_size, log.size) == (3893, 48 + len("… 3796 bytes cut …\n".encode()) + 49)
    assert stored(log).splitlines()[18:21] == ["19", "… 3796 bytes cut …", "989"]


def test_every_attempt_of_a_retried_step_keeps_its_own_logs(shared_dir):
    counter = shared_dir / "attempts"
    script = f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; echo out $n; echo err $n >&2; [ $n -ge 3 ]"
    submission = run(make_job(steps=[make_task("flaky", script, retries=2)]))
    assert submission.status == "complete"
    kept = {(log.attempt, log.stream): stored(log) for log in NodeLog.objects.filter(node__submission=submission)}
    assert kept == {(n, stream): f"{stream[3:]} {n}\n" for n in (1, 2, 3) for stream in ("stdout", "stderr")}


def test_a_failed_nodes_message_ends_in_whole_lines_of_stderr(settings):
    settings.SLUICE_STDERR_TAIL = 20
    task = make_task("bad", "echo aaaaaaaaaa >&2; echo bbbbbbbbbb >&2; echo cccccccccc >&2; exit 1")
    submission = run(make_job(steps=[task]))
    node = submission.nodes.get()
    assert node.message == "exited with status 1\ncccccccccc"  # the last 20 bytes start inside the b line
    assert stored(NodeLog.objects.get(node=node, stream="stderr")) == "aaaaaaaaaa\nbbbbbbbbbb\ncccccccccc\n"


# --- restart and deletion ------------------------------------------------------------


def test_a_restarted_node_keeps_its_earlier_logs_as_history(shared_dir):
    counter = shared_dir / "runs"
    task = make_task("tick", f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; echo run $n")
    submission = run(make_job(steps=[task]))
    node = submission.nodes.get()
    for node_id in controls.restart(submission.pk, "tick"):
        engine.run_node(node_id)
    first, second = NodeLog.objects.filter(node=node).order_by("id")
    assert (first.run, first.attempt, stored(first)) == (1, 1, "run 1\n")
    assert (second.run, second.attempt, stored(second)) == (2, 1, "run 2\n")
    assert first.file.name != second.file.name
    node.refresh_from_db()
    assert (node.restarts, node.attempt) == (1, 1)
    assert logs.find(node) == second
    assert [entry["stdout"] for entry in client_for(None).get(f"/api/submissions/{submission.uuid}/").json()["nodes"][0]["logs"]] == [6]


def test_deleting_a_submission_deletes_its_logs_and_their_files():
    submission = run(make_job(steps=[make_task("talk", "echo out; echo err >&2")]))
    names = [log.file.name for log in NodeLog.objects.filter(node__submission=submission)]
    assert len(names) == 2 and all(default_storage.exists(name) for name in names)
    assert retention.delete_submissions(type(submission).objects.filter(pk=submission.pk)) == 1
    assert not NodeLog.objects.exists()
    assert not any(default_storage.exists(name) for name in names)


def test_deleting_a_submission_in_admin_deletes_its_log_files(staff):
    submission = run(make_job(steps=[make_task("talk", "echo out")]))
    [name] = [log.file.name for log in NodeLog.objects.all()]
    client = Client()
    client.force_login(staff)
    response = client.post(f"/admin/execution/submission/{submission.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not type(submission).objects.exists() and not NodeLog.objects.exists()
    assert not default_storage.exists(name)


# --- the API -------------------------------------------------------------------------


@pytest.fixture
def talking(owner, shared_dir):
    """An owner's submission whose step failed once (out 1 / err 1), then succeeded (out 2, no stderr)."""
    counter = shared_dir / "attempts"
    script = f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; echo out $n; [ $n -ge 2 ] || {{ echo err $n >&2; exit 1; }}"
    return SynchronousRunner(make_job(steps=[make_task("talk", script, retries=1)]), user=owner).init().process()


def test_a_log_is_the_submissions_to_see(talking, owner, other_user, staff):
    url = f"/api/submissions/{talking.uuid}/nodes/talk/log/"
    assert client_for(None).get(url).status_code == 404
    assert client_for(other_user).get(url).status_code == 404
    for user in (owner, staff):
        response = client_for(user).get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "text/plain; charset=utf-8"
        assert body(response) == "out 2\n"


def test_a_client_that_accepts_only_text_gets_the_log_and_json_errors(talking, owner):
    url = f"/api/submissions/{talking.uuid}/nodes/talk/log/"
    response = client_for(owner).get(url, HTTP_ACCEPT="text/plain")
    assert (response.status_code, body(response)) == (200, "out 2\n")
    refused = client_for(owner).get(f"{url}?stream=both", HTTP_ACCEPT="text/plain")
    assert (refused.status_code, refused["Content-Type"]) == (400, "application/json")
    assert list(errors(refused)) == ["stream"]


@pytest.mark.parametrize(
    "query, text",
    [("", "out 2\n"), ("?stream=stdout&attempt=2", "out 2\n"), ("?attempt=1", "out 1\n"), ("?stream=stderr&attempt=1", "err 1\n"), ("?stream=stderr", "")],
)
def test_a_log_is_chosen_by_stream_and_attempt(talking, owner, query, text):
    response = client_for(owner).get(f"/api/submissions/{talking.uuid}/nodes/talk/log/{query}")
    assert response.status_code == 200
    assert body(response) == text


@pytest.mark.parametrize(
    "query, fields",
    [("?stream=stdin", ["stream"]), ("?attempt=0", ["attempt"]), ("?attempt=two", ["attempt"]), ("?attempt=-1", ["attempt"]), ("?attempt=1.5", ["attempt"]),
     ("?stream=err&attempt=first", ["stream", "attempt"])],
)
def test_a_bad_stream_or_attempt_is_a_json_400(talking, owner, query, fields):
    response = client_for(owner).get(f"/api/submissions/{talking.uuid}/nodes/talk/log/{query}")
    assert response.status_code == 400
    assert list(errors(response)) == fields


@pytest.mark.parametrize("path, detail", [("nodes/nope/log/", "has no node 'nope'"), ("nodes/talk/log/?attempt=3", "step 'talk' has no attempt 3; it has run 2 attempts")])
def test_an_unknown_node_or_attempt_is_a_json_404(talking, owner, path, detail):
    response = client_for(owner).get(f"/api/submissions/{talking.uuid}/{path}")
    assert response.status_code == 404
    assert errors(response) == {} and detail in response.json()["detail"]


def test_the_node_document_lists_each_attempts_log_sizes(talking, owner):
    document = client_for(owner).get(f"/api/submissions/{talking.uuid}/").json()
    base = f"/api/submissions/{talking.uuid}/nodes/talk/log/"
    assert document["nodes"][0]["logs"] == [
        {"attempt": 1, "stdout": 6, "stderr": 6, "url": f"{base}?attempt=1"},
        {"attempt": 2, "stdout": 6, "stderr": 0, "url": f"{base}?attempt=2"},
    ]
    assert sorted(NodeLog.objects.values_list("attempt", "stream", "original_size")) == [(1, "stderr", 6), (1, "stdout", 6), (2, "stdout", 6)]


# --- runjob --------------------------------------------------------------------------


def test_runjob_prints_the_end_of_a_failed_steps_stderr():
    make_job("noisy", steps=[make_task("noisy", "for i in $(seq 1 50); do echo problem $i >&2; done; exit 1")])
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("runjob", "noisy", stdout=out)
    lines = out.getvalue().splitlines()
    start = next(index for index, line in enumerate(lines) if "the end of its stderr (attempt 1" in line)
    assert lines[start + 1:start + 21] == [f"    | problem {i}" for i in range(31, 51)]
    assert NodeLog.objects.get(stream="stderr").original_size == sum(len(f"problem {i}\n") for i in range(1, 51))
