"""Every attack of the hardening pass, made as an attacker makes it: over HTTP, against a real
`manage.py up`, checking both the answer and what the server stored.

One server serves the whole module (starting one costs seconds); each test uses its own client
address (`X-Real-IP`, read because the server is told to trust it) so that quotas, the cache and
idempotency keys of one test do not meet another's.
"""
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid as uuids
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import embedded_env, searchable_dir
from tests.realservers.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

JOBS = """
queue_types:
  - {name: localhost, execution_behaviour: localhost}
  - {name: python, execution_behaviour: python}
  - {name: r, execution_behaviour: r}
backends:
  - {name: local, queue_type: localhost}
  - {name: local_python, queue_type: python}
  - {name: local_r, queue_type: r}
tasks:
  - name: say
    backend: local
    stdout_glob: .said
    executable: printf '%s\\n' $P1
    parameters: [{switchless: true, rest_alias: text, default: hello}]
  - name: sorter
    backend: local
    in_glob: .input
    stdout_glob: .sorted
    executable: sort $P1 $I1
    parameters: [{switchless: true, rest_alias: how}]
  - name: square
    backend: local
    cache: true
    stdout_glob: .square
    executable: echo $(( $P1 * $P1 ))
    parameters: [{switchless: true, rest_alias: n, type: int, default: "3"}]
  - name: pysay
    backend: local_python
    stdout_glob: .said
    executable: |
      v = $P1
      print(v)
    parameters: [{switchless: true, rest_alias: text, default: hello}]
  - name: rsay
    backend: local_r
    stdout_glob: .said
    executable: |
      v <- $P1
      cat(v, "\\n")
    parameters: [{switchless: true, rest_alias: text, default: hello}]
  - name: ask
    backend: local
    input_prompt: Go on? (yes/no)
    executable: "true"
  - name: painter
    backend: local_python
    executable: |
      import json, os
      labels = [
          '<<TABLE><TR><TD HREF="javascript:alert(document.domain)">x</TD></TR></TABLE>>',
          '<script>alert(1)</script>',
      ]
      with open(os.environ["SLUICE_CONTROL"], "a") as control:
          control.write(json.dumps({"op": "style", "node": "paint", "label": labels[0]}) + "\\n")
          control.write(json.dumps({"op": "style", "node": "after", "label": labels[1]}) + "\\n")
  - {name: after, backend: local, executable: "true"}
jobs:
  - {name: say, runnable: true, steps: [{id: say, task: say}]}
  - {name: sorter, runnable: true, steps: [{id: sorter, task: sorter}]}
  - {name: square, runnable: true, steps: [{id: square, task: square}]}
  - {name: pysay, runnable: true, steps: [{id: pysay, task: pysay}]}
  - {name: rsay, runnable: true, steps: [{id: rsay, task: rsay}]}
  - {name: ask, runnable: true, steps: [{id: ask, task: ask}]}
  - {name: paint, runnable: true, steps: [{id: paint, task: painter}, {id: after, task: after}]}
"""

IDLE_EXPIRY = 8  # seconds: long enough for the quota test's waiting submissions, short enough to watch one expire
QUOTA = 3


class Server:
    def __init__(self, base, env, data):
        self.base, self.env, self.data = base, env, data

    def request(self, path, body=None, *, method=None, address="192.0.2.1", headers=None, raw=None, content_type="application/json"):
        """(status, headers, body text) of one request from client ``address``."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {"X-Real-IP": address, **({"Content-Type": content_type} if data is not None else {}), **(headers or {})}
        request = urllib.request.Request(self.base + path, data=data, method=method or ("POST" if data is not None else "GET"), headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.headers, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode("utf-8", "replace")

    def submit(self, body, **options):
        status, headers, text = self.request("/api/submissions/", body, **options)
        return status, headers, json.loads(text)

    def finished(self, uuid, address, statuses=("complete", "error", "crash", "cancelled"), timeout=90):
        deadline = time.monotonic() + timeout
        while True:
            status, _, text = self.request(f"/api/submissions/{uuid}/", address=address)
            assert status == 200, text
            document = json.loads(text)
            if document["status"] in statuses:
                return document
            assert time.monotonic() < deadline, f"submission {uuid} stayed {document['status']}"
            time.sleep(0.2)

    def run(self, body, address):
        status, _, document = self.submit(body, address=address)
        assert status == 201, document
        return self.finished(document["uuid"], address)

    def result(self, document, ending, address):
        [item] = [r for r in document["results"] if r["name"].endswith(ending)]
        return self.request(item["url"], address=address)[2]

    def count(self, sql, *args):
        """Read the server's own database (SQLite, read-only) to see what it stored."""
        with sqlite3.connect(f"file:{self.data / 'sluice.sqlite3'}?mode=ro", uri=True) as database:
            return database.execute(sql, args).fetchone()[0]

    def submissions(self):
        return self.count("SELECT COUNT(*) FROM execution_submission")

    def manage(self, *args, check=True):
        return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=self.env, check=check, capture_output=True, text=True)


@pytest.fixture(scope="module")
def server():
    data = searchable_dir("attacks-")
    env = embedded_env(
        data, SLUICE_WORK_DIR=str(data / "work"), SLUICE_CLIENT_IP_HEADER="HTTP_X_REAL_IP", QUEUE_HARD_LIMIT=str(QUOTA),
        QUEUE_HOG_SIZE="0", SLUICE_IDLE_EXPIRY=str(IDLE_EXPIRY), SLUICE_RECONCILE_SECONDS="0.5",
    )
    jobs = data / "jobs.yaml"
    jobs.write_text(JOBS)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "loadjobs", str(jobs)], env=env, check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "up", "--addr", f"127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for_port(port, timeout=90)
        yield Server(f"http://127.0.0.1:{port}", env, data)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert "Traceback" not in output, output[-4000:]


def address():
    """A client address of its own for one test."""
    return f"198.51.100.{next(_addresses)}"


_addresses = iter(range(1, 255))


# --- accepted means 201, and a retry runs nothing twice ------------------------------------------


def test_concurrent_retries_with_one_idempotency_key_make_one_submission(server):
    me, key, answers = address(), str(uuids.uuid4()), []
    before = server.submissions()
    start = threading.Barrier(8)

    def post():
        start.wait()
        answers.append(server.submit({"job": "say"}, address=me, headers={"Idempotency-Key": key}))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [status for status, _, _ in answers] == [201] * 8
    assert len({document["uuid"] for _, _, document in answers}) == 1
    assert server.submissions() == before + 1
    other = server.submit({"job": "say", "text": "other"}, address=me, headers={"Idempotency-Key": key})
    assert other[0] == 422 and "Idempotency-Key" in other[2]["errors"]
    assert server.submissions() == before + 1


# --- bad input: a 400 naming the field, nothing stored --------------------------------------------

BAD_BODIES = {
    "nested 100,000 deep": (b'{"job": "say", "text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),
    "NaN": (b'{"job": "square", "n": NaN}', "n"),
    "Infinity": (b'{"job": "square", "n": Infinity}', "n"),
    "1e999": (b'{"job": "square", "n": 1e999}', "n"),
    "NUL in the name": (b'{"job": "say", "submission_name": "a\\u0000b"}', "submission_name"),
    "NUL in a parameter": (b'{"job": "say", "text": "a\\u0000b"}', "text"),
    "NUL in the job": (b'{"job": "say\\u0000"}', "job"),
    "NUL in a key": (b'{"job": "say", "te\\u0000xt": "a"}', None),
    "a lone surrogate": (b'{"job": "say", "text": "\\ud800"}', None),
}


@pytest.mark.parametrize("name", BAD_BODIES)
def test_a_hostile_json_body_is_a_400_that_names_the_field_and_stores_nothing(server, name):
    body, field = BAD_BODIES[name]
    before = server.submissions()
    status, headers, text = server.request("/api/submissions/", raw=body, address=address())
    assert status == 400, text
    document = json.loads(text)
    assert set(document) == {"detail", "errors"}
    if field is not None:
        assert field in document["errors"], document
    assert server.submissions() == before


def test_nul_in_a_form_is_a_400(server):
    before = server.submissions()
    status, _, text = server.request(
        "/api/submissions/", raw=b"job=say&text=a%00b", content_type="application/x-www-form-urlencoded", address=address(),
    )
    assert status == 400 and "text" in json.loads(text)["errors"], text
    assert server.submissions() == before


def test_a_value_that_looks_like_an_option_is_refused(server):
    me = address()
    before = server.submissions()
    status, _, document = server.submit({"job": "sorter", "input_data": "b\na\n", "sorter_how": f"--output={server.data}/owned"}, address=me)
    assert status == 400 and "sorter_how" in document["errors"], document
    assert server.submissions() == before and not (server.data / "owned").exists()


def test_submitted_values_never_run_as_code_and_keep_their_characters(server):
    me = address()
    payload = "'; __import__('os').system('touch owned'); '🦆 𠀋"
    for job in ("pysay", "rsay"):
        document = server.run({"job": job, f"{job}_text": payload}, me)
        assert document["status"] == "complete", document["last_message"]
        assert server.result(document, ".said", me).strip() == payload
    assert not list(server.data.rglob("owned"))


def test_a_value_never_reaches_a_shell_and_an_upload_name_never_chooses_a_path(server):
    me = address()
    payload = "$(touch owned); `touch owned`; a\nb"
    document = server.run({"job": "say", "say_text": payload}, me)
    assert document["status"] == "complete", document["last_message"]
    assert server.result(document, ".said", me) == payload + "\n"  # one argument, as sent
    boundary = "attack-boundary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"job\"\r\n\r\nsorter\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"input_data\"; filename=\"../../../owned\"\r\n"
        f"Content-Type: text/plain\r\n\r\nb\na\n\r\n--{boundary}--\r\n"
    ).encode()
    status, _, text = server.request("/api/submissions/", raw=body, content_type=f"multipart/form-data; boundary={boundary}", address=me)
    assert status == 201, text
    sorted_ = server.finished(json.loads(text)["uuid"], me)
    assert sorted_["status"] == "complete" and server.result(sorted_, ".sorted", me) == "a\nb\n"
    assert not list(server.data.rglob("owned")) and not (server.data.parent / "owned").exists()


def test_a_code_task_that_quotes_a_placeholder_is_refused_at_load(server, tmp_path):
    quoted = JOBS.replace("v = $P1", "v = '$P1'")
    jobs = tmp_path / "quoted.yaml"
    jobs.write_text(quoted)
    loaded = server.manage("loadjobs", str(jobs), check=False)
    assert loaded.returncode != 0 and "$P1" in (loaded.stderr + loaded.stdout)


# --- diagrams: no stored markup reaches a page --------------------------------------------------


class Markup(HTMLParser):
    """What a browser would act on in a page: script elements, event handlers, link targets."""

    def __init__(self):
        super().__init__()
        self.scripts, self.handlers, self.links = [], [], []

    @classmethod
    def of(cls, text):
        markup = cls()
        markup.feed(text)
        return markup

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append(dict(attrs).get("src"))
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(name)
            if name in ("href", "xlink:href", "src", "action", "formaction") and value is not None and tag != "script":
                self.links.append(value.strip())


def test_stored_markup_in_labels_never_reaches_a_served_picture(server):
    me = address()
    document = server.run({"job": "paint"}, me)
    assert document["status"] == "complete", document["last_message"]
    uuid = document["uuid"]
    for path in (f"/submissions/{uuid}/", f"/api/submissions/{uuid}/graph/?format=svg"):
        status, headers, text = server.request(path, address=me)
        assert status == 200, (path, text[:500])
        markup = Markup.of(text)
        assert all(src and src.startswith("/static/") for src in markup.scripts), (path, markup.scripts)  # only the site's own files run...
        assert markup.handlers == [], path
        assert [url for url in markup.links if not url.startswith(("/", "#"))] == [], path  # ...and no link leaves the site
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the label is still shown, as text
    status, headers, _ = server.request(f"/submissions/{uuid}/", address=me)
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]


# --- the cache tells nobody what others ran -------------------------------------------------------


def test_the_cache_does_not_cross_submitters(server):
    first, second = address(), address()
    mine = server.run({"job": "square", "square_n": 7}, first)
    theirs = server.run({"job": "square", "square_n": 7}, second)
    again = server.run({"job": "square", "square_n": 7}, first)
    assert [node["status"] for node in theirs["nodes"]] == ["succeeded"]
    assert [node["status"] for node in again["nodes"]] == ["cached"]
    assert mine["uuid"] not in json.dumps(again) and mine["uuid"] not in json.dumps(theirs)


# --- quotas -----------------------------------------------------------------------------------------


def test_restarting_finished_submissions_cannot_get_round_the_quota(server):
    me = address()
    done = server.run({"job": "say"}, me)
    for _ in range(QUOTA):
        assert server.submit({"job": "ask"}, address=me)[0] == 201
    status, _, text = server.request(f"/api/submissions/{done['uuid']}/nodes/say/restart/", method="POST", address=me)
    assert status == 429, text
    assert server.finished(done["uuid"], me)["status"] == "complete"


def test_a_submission_left_waiting_expires_and_frees_the_quota(server):
    me = address()
    waiting = [server.submit({"job": "ask"}, address=me)[2]["uuid"] for _ in range(QUOTA)]
    assert server.submit({"job": "say"}, address=me)[0] == 429
    for uuid in waiting:
        document = server.finished(uuid, me, timeout=IDLE_EXPIRY + 30)
        assert document["status"] == "cancelled" and "expired: it waited for input" in document["last_message"]
    assert server.submit({"job": "say"}, address=me)[0] == 201


# --- leaks and catalogue traps ------------------------------------------------------------------------


def test_a_finished_submission_leaves_no_working_directory(server):
    document = server.run({"job": "say"}, address())
    assert not (server.data / "work" / document["uuid"]).exists()


def test_a_job_with_no_steps_is_refused_with_its_name(server, tmp_path):
    jobs = tmp_path / "empty.yaml"
    jobs.write_text("jobs:\n  - {name: hollow, runnable: true, steps: []}\n")
    server.manage("loadjobs", str(jobs), check=False)
    status, _, document = server.submit({"job": "hollow"}, address=address())
    assert status == 400 and "hollow" in json.dumps(document["errors"]), document


def test_rest_aliases_that_collide_are_refused_at_load(server, tmp_path):
    jobs = tmp_path / "collide.yaml"
    jobs.write_text(
        "queue_types: [{name: localhost, execution_behaviour: localhost}]\n"
        "backends: [{name: local, queue_type: localhost}]\n"
        "tasks:\n"
        "  - {name: a_b, backend: local, executable: echo $P1, parameters: [{switchless: true, rest_alias: c}]}\n"
        "  - {name: a, backend: local, executable: echo $P1, parameters: [{switchless: true, rest_alias: b_c}]}\n"
        "jobs:\n  - {name: collide, runnable: true, steps: [{id: one, task: a_b}, {id: two, task: a}]}\n"
    )
    loaded = server.manage("loadjobs", str(jobs), check=False)
    assert loaded.returncode != 0 and "a_b_c" in (loaded.stderr + loaded.stdout)
    assert server.request("/api/jobs/collide/")[0] == 404


def test_endpoint_defaults_have_their_types(server):
    status, _, text = server.request("/api/endpoints/")
    [square] = [endpoint for endpoint in json.loads(text) if endpoint["job"] == "square"]
    assert square["parameters"][0]["default"] == 3


# --- slow clients ---------------------------------------------------------------------------------------


def test_the_server_answers_while_500_slow_clients_hold_connections(server):
    port = int(server.base.rsplit(":", 1)[1])
    held = []
    try:
        for _ in range(500):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            held.append(connection)
        started = time.monotonic()
        status, _, text = server.request("/healthz")
        took = time.monotonic() - started
        assert status == 200 and text == "ok"
        assert took < 1.0, f"/healthz took {took:.2f} s with 500 slow clients"
    finally:
        for connection in held:
            connection.close()
