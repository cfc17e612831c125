"""A hostile step, run by a real `manage.py up`, learns none of the server's or other submitters' secrets."""
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import embedded_env, searchable_dir
from tests.realservers.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

JOBS = """
queue_types: [{{name: localhost, execution_behaviour: localhost}}]
backends: [{{name: local, queue_type: localhost}}]
tasks:
  - {{name: victim, backend: local, stdout_glob: .out, out_glob: .out, executable: "echo {victim_text}"}}
  - name: hostile
    backend: local
    stdout_glob: .out
    out_glob: .out
    executable: |
      {attack}
jobs:
  - {{name: victim, runnable: true, steps: [{{id: victim, task: victim}}]}}
  - {{name: hostile, runnable: true, steps: [{{id: hostile, task: hostile}}]}}
"""

# Each attempt prints what it got, then "LEAK <what>" when it succeeded; the step itself always succeeds.
ATTACK = """\
for f in /proc/$PPID/environ /proc/*/environ; do tr '\\\\0' '\\\\n' < "$f" 2>/dev/null && echo "LEAK environ $f"; done;
ls -a ../.. && echo "LEAK listed the submissions";
ls -a {work} && echo "LEAK listed the work root";
ls -a {data} && echo "LEAK listed the data directory";
cat {database} && echo "LEAK read the database";
cat {victim_file} && echo "LEAK read another submission's result";
echo owned > {media}/owned && echo "LEAK wrote into the media root";
echo owned > {data}/owned && echo "LEAK wrote into the data directory";
echo owned > {work}/owned && echo "LEAK wrote into the work root";
kill -0 $PPID && echo "LEAK may signal the worker";
echo done"""

WHERE = """
from execution.models import Result
print(Result.objects.get(submission__uuid="{uuid}", ending=".out").file.path)
"""


def manage(env, *args):
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True, capture_output=True, text=True).stdout


def call(url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request) as response:
        return response.read()


def run_job(base, name):
    uuid = json.loads(call(f"{base}/api/submissions/", {"job": name}))["uuid"]
    deadline = time.monotonic() + 90
    while True:
        document = json.loads(call(f"{base}/api/submissions/{uuid}/"))
        if document["status"] not in ("submitted", "running"):
            return uuid, document
        assert time.monotonic() < deadline, f"submission {uuid} stayed {document['status']}"
        time.sleep(0.2)


@pytest.fixture
def server():
    """`manage.py up` on a data directory laid out as by default (work/ and media/ inside it)."""
    data = searchable_dir("data-")
    secret_key = "secret-" + secrets.token_hex(16)
    env = embedded_env(data, DJANGO_SECRET_KEY=secret_key, SLUICE_WORK_DIR=str(data / "work"), SLUICE_SANDBOX="auto")
    manage(env, "migrate", "--noinput")
    victim_text = "victim-" + secrets.token_hex(16)
    placeholders = {"work": data / "work", "data": data, "database": data / "sluice.sqlite3", "media": data / "media", "victim_file": "VICTIM_FILE"}
    attack = ATTACK.format(**placeholders).replace("\n", "\n      ")
    jobs = data.parent / f"{data.name}-jobs.yaml"
    jobs.write_text(JOBS.format(victim_text=victim_text, attack=attack))
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "up", "--addr", f"127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, timeout=90)
        yield {"base": f"http://127.0.0.1:{port}", "env": env, "data": data, "secret": secret_key, "victim_text": victim_text, "jobs": jobs}
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


def test_a_hostile_step_learns_nothing_and_changes_nothing_outside_its_directory(server):
    base, env, data = server["base"], server["env"], server["data"]
    victim_uuid, victim = run_job_after_loading(server, "victim")
    assert victim["status"] == "complete"
    victim_file = manage(env, "shell", "-v", "0", "-c", WHERE.format(uuid=victim_uuid)).strip()
    assert Path(victim_file).read_text().strip() == server["victim_text"]  # the path the attack aims at is right
    server["jobs"].write_text(server["jobs"].read_text().replace("VICTIM_FILE", victim_file))
    manage(env, "loadjobs", str(server["jobs"]))

    uuid, hostile = run_job(base, "hostile")
    assert hostile["status"] == "complete", hostile["last_message"]
    [result] = [r for r in hostile["results"] if r["name"].endswith(".out")]
    output = call(base + result["url"] if result["url"].startswith("/") else result["url"]).decode(errors="replace")

    assert output.rstrip().endswith("done")  # the step ran to its end
    assert [line for line in output.splitlines() if line.startswith("LEAK")] == []
    assert server["secret"] not in output
    assert "DATABASE_URL" not in output and "DJANGO_SECRET_KEY" not in output
    assert victim_uuid not in output and server["victim_text"] not in output
    assert "SQLite format 3" not in output
    assert not any((path / "owned").exists() for path in (data, data / "media", data / "work"))


def run_job_after_loading(server, name):
    manage(server["env"], "loadjobs", str(server["jobs"]))
    return run_job(server["base"], name)


def test_the_data_directory_database_and_results_are_private_to_the_server(server):
    data = server["data"]
    uuid, _ = run_job_after_loading(server, "victim")
    victim_file = Path(manage(server["env"], "shell", "-v", "0", "-c", WHERE.format(uuid=uuid)).strip())
    mode = lambda path: stat.S_IMODE(path.stat().st_mode)  # noqa: E731
    assert mode(data) == 0o711  # steps pass through to work/, nobody lists it
    assert mode(data / "sluice.sqlite3") == 0o600
    assert mode(data / "media") == 0o700
    assert mode(victim_file) == 0o600
    assert mode(victim_file.parent) == 0o700


def test_a_worker_warns_when_steps_are_not_isolated(tmp_path):
    env = embedded_env(tmp_path, SLUICE_SANDBOX="off")
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "worker"], env=env, capture_output=True, text=True)
    assert "Steps are not isolated (SLUICE_SANDBOX=off)" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server switches users; CI runs as root")
def test_a_worker_refuses_to_start_when_isolation_is_required_and_missing(tmp_path):
    env = embedded_env(tmp_path, SLUICE_SANDBOX="require", SLUICE_STEP_USER="no-such-step-user", BROKER_URL="redis://127.0.0.1:1/0")
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "worker"], env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert "SLUICE_SANDBOX=require, but steps cannot be isolated on this host" in done.stderr
    assert "the step user 'no-such-step-user' (SLUICE_STEP_USER) does not exist" in done.stderr
