"""`manage.py up`: the embedded mode as a real process on a SQLite file."""
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import embedded_env
from tests.realservers.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

# Leaves a submission as a killed `up` would: one node running, its process long gone.
INTERRUPTED = """
from execution import engine, lifecycle
from execution.models import Node
from jobs.models import Job
submission = engine.submit(Job.objects.get(name="diamond"), params={"numbers_count": 4})
node_id = submission.ready[0]
lifecycle.claim(Node.objects.get(pk=node_id), "old-host:1")
print(submission.uuid)
"""

STATUS = """
from execution.models import Submission
print(Submission.objects.get(uuid="{uuid}").status)
"""


def manage(env, *args):
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True, capture_output=True, text=True).stdout


def test_up_serves_the_web_app_and_finishes_what_a_previous_process_left(tmp_path):
    env = embedded_env(tmp_path, SLUICE_RECONCILE_SECONDS="0.5")
    manage(env, "migrate", "--noinput")
    manage(env, "loadjobs", str(ROOT / "examples" / "diamond.yaml"))
    uuid = manage(env, "shell", "-v", "0", "-c", INTERRUPTED).strip()
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "up", "--addr", f"127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, timeout=90)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/") as response:
            assert response.status == 200
            assert b"csrfmiddlewaretoken" in response.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/admin/css/base.css") as response:
            assert response.status == 200
        deadline = time.monotonic() + 90
        while manage(env, "shell", "-v", "0", "-c", STATUS.format(uuid=uuid)).strip() != "complete":
            assert time.monotonic() < deadline, "the interrupted submission did not complete"
            time.sleep(0.5)
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert "Recovered: re-ran 1 interrupted steps" in output
