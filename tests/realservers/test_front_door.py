"""The web tier on real servers: gunicorn, PostgreSQL and Redis, with Redis killed and
PostgreSQL's connections cut under it. Every committed submission is answered 201 and runs once."""
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection

from execution.models import Submission
from tests.factories import make_job, make_task

from .conftest import ROOT
from .servers import free_port, wait_for_port
from .test_distributed import finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def web(server_env, tmp_path):
    """gunicorn with config/gunicorn.conf.py, as docs/operations.md has it, but small and keeping its database connections."""
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")
    argv = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    env = {**server_env, "DATABASE_CONN_MAX_AGE": "600", "SLUICE_GUNICORN_THREADS": "4"}
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(15)


def post(base, body, headers=None):
    request = urllib.request.Request(
        f"{base}/api/submissions/", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_submissions_made_while_redis_is_down_are_201s_and_all_run(processes, redis_server, web):
    processes.start("worker", "--threads", "2")
    processes.start("reconcile", "--every", "0.5")
    make_job("quick", steps=[make_task("a", "true"), make_task("b", "true")])
    answers = [post(web, {"job": "quick"}) for _ in range(5)]
    redis_server.stop()
    answers += [post(web, {"job": "quick"}) for _ in range(10)]
    redis_server.start()
    answers += [post(web, {"job": "quick"}) for _ in range(5)]
    assert [status for status, _ in answers] == [201] * 20, [body for status, body in answers if status != 201][:3]
    assert Submission.objects.count() == 20
    for _, body in answers:
        submission = finished(Submission.objects.get(uuid=body["uuid"]), timeout=120)
        assert submission.status == "complete", submission.last_message
        assert submission.nodes.filter(status="succeeded").count() == 2


def test_a_retry_after_a_lost_answer_runs_nothing_twice(processes, web):
    processes.start("worker", "--threads", "2")
    make_job("quick", steps=[make_task("a", "true")])
    first = post(web, {"job": "quick"}, {"Idempotency-Key": "retry-me"})
    again = post(web, {"job": "quick"}, {"Idempotency-Key": "retry-me"})
    assert first[0] == again[0] == 201 and first[1]["uuid"] == again[1]["uuid"]
    assert Submission.objects.count() == 1
    assert finished(Submission.objects.get()).status == "complete"


def test_connections_cut_by_a_database_restart_cost_no_request(web):
    make_job("quick", steps=[make_task("a", "true")])
    # Give each of the web server's threads a kept connection, then cut them all, as a restart does.
    assert [post(web, {"job": "quick"})[0] for _ in range(8)] == [201] * 8
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
    time.sleep(0.5)
    answers = [post(web, {"job": "quick"}) for _ in range(12)]
    assert [status for status, _ in answers] == [201] * 12, [body for status, body in answers if status != 201][:2]


def test_a_pooled_web_server_shares_a_few_connections_among_many_threads(server_env, tmp_path):
    """DATABASE_POOL_SIZE as docs/operations.md has it: 2 workers of 64 threads, 16 clients at once
    on fresh connections, and never more than 2 x 3 database connections from the web server."""
    import threading

    make_job("quick", steps=[make_task("a", "true")])
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")
    argv = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    env = {**server_env, "DATABASE_POOL_SIZE": "3", "SLUICE_GUNICORN_THREADS": "64", "QUEUE_HARD_LIMIT": "0"}
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        base, answers, most = f"http://127.0.0.1:{port}", [], []
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            ours = {row[0] for row in cursor.fetchall()}  # this test's own, and any other already there

        def client():
            for _ in range(10):
                answers.append(post(base, {"job": "quick"})[0])

        def watch():
            while any(thread.is_alive() for thread in clients):
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
                    most.append(len({row[0] for row in cursor.fetchall()} - ours))
                time.sleep(0.02)

        clients = [threading.Thread(target=client) for _ in range(16)]
        for thread in clients:
            thread.start()
        watch()
        for thread in clients:
            thread.join()
    finally:
        process.terminate()
        process.wait(15)
    assert answers == [201] * 160
    assert Submission.objects.count() == 160
    assert 1 <= max(most) <= 6, most
