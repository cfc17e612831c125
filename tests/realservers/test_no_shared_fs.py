"""Hosts that share no file system: the web server and two worker hosts meet only in PostgreSQL, Redis and the bucket.

Each "host" is a process tree in its own mount and UTS namespace (``unshare --mount --uts``): its
own hostname, and its own directory bind-mounted over one common data path, so that every host
sees a different SLUICE_DATA_DIR (media root and working directories) at the same place. The
network namespace is shared, so all reach the servers on loopback. A diamond job whose branches
run on different hosts can then only complete if every file moves through the bucket.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request

import pytest

from execution import dispatch, engine
from execution.models import Node, Submission
from tests.conftest import searchable_dir
from tests.factories import make_backend, make_job, make_queue_type, make_task

from .conftest import ROOT
from .servers import free_port, wait_for_port
from .test_distributed import finished, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Mount the host's own directory over the common path, name the host, then run the command: all as
# arguments, nothing interpolated into the script.
ENTER = 'mount --bind "$1" "$2" && hostname "$3" && shift 3 && exec "$@"'


class Hosts:
    """Start commands on "hosts": namespaces that each see their own directory at ``self.mount``."""

    def __init__(self, processes, bucket, storage_env=None):
        if not shutil.which("unshare"):
            raise RuntimeError("unshare is not installed (Debian package util-linux)")
        self.processes, self.bucket = processes, bucket
        self.storage_env = bucket.env if storage_env is None else storage_env
        self.mount = searchable_dir("host-")  # empty here; inside a host, that host's own directory
        self.dirs = {}
        self.started = []

    def dir(self, host):
        """The directory that host ``host`` sees at ``self.mount``, as this process sees it."""
        if host not in self.dirs:
            self.dirs[host] = searchable_dir(f"{host}-")
            (self.dirs[host] / "scratch").mkdir()
            (self.dirs[host] / "scratch").chmod(0o1777)
        return self.dirs[host]

    def env(self):
        return {
            **self.storage_env,
            "SLUICE_DATA_DIR": str(self.mount),
            "SLUICE_WORK_DIR": str(self.mount / "work"),
            "SLUICE_SANDBOX_WRITE_PATHS": str(self.mount / "scratch"),
            "SLUICE_KEEP_WORK_DIRS": "1",  # so that the test can see afterwards what each host held
        }

    def start(self, host, *args):
        """Run ``manage.py *args`` on ``host``; with ``args[0] == "gunicorn"``, the web server instead."""
        # unshare ignores SIGTERM while its child runs; --kill-child stops the child if unshare is killed.
        prefix = ["unshare", "--mount", "--uts", "--fork", "--kill-child=SIGTERM", "--propagation", "private"]
        prefix += ["sh", "-c", ENTER, "sh", str(self.dir(host)), str(self.mount), host]
        if args[0] == "gunicorn":
            argv = [*prefix, sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", *args[1:]]
            process = self.processes.start_argv(argv, env={**self.env(), "SLUICE_GUNICORN_THREADS": "2"}, name=f"{host}-gunicorn")
        else:
            process = self.processes.start(*args, env=self.env(), prefix=prefix)
        self.started.append(process)
        return process

    def stop(self):
        """Stop each host's command with SIGTERM (sent to the command itself: unshare would ignore it)."""
        for process in self.started:
            if process.poll() is None:
                try:
                    os.kill(command_pid(process.pid), signal.SIGTERM)
                except (AssertionError, ProcessLookupError):
                    process.kill()

    def worker(self, host, queue):
        return self.start(host, "worker", "--processes", "1", "--threads", "1", "--queues", queue, f"low_{queue}", f"high_{queue}")


@pytest.fixture
def hosts(processes, bucket):
    made = Hosts(processes, bucket)
    yield made
    made.stop()


def files_under(path):
    return sorted(str(item.relative_to(path)) for item in path.rglob("*") if item.is_file())


def node_dirs(host_dir, submission):
    """The node ids whose working directories a host holds for ``submission``."""
    root = host_dir / "work" / str(submission.uuid)
    return {int(entry.name.split("-")[0]) for entry in root.iterdir()} if root.exists() else set()


def post(base, body):
    request = urllib.request.Request(f"{base}/api/submissions/", data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        return json.loads(response.read())


def test_a_diamond_across_hosts_that_share_only_the_servers(hosts, bucket):
    port = free_port()
    hosts.start("web-host", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1")
    hosts.start("web-host", "reconcile", "--every", "0.5")
    hosts.worker("host-a", "alpha")
    first_b = hosts.worker("host-b", "beta")
    on_a = make_backend("on-a", make_queue_type("alpha"))
    on_b = make_backend("on-b", make_queue_type("beta"))
    tried = hosts.mount / "scratch" / "tried"  # on host-b's own disk: the replacement worker sees it, host-a does not
    a = make_task("a", "cat $I1 > $O1; echo a >> $O1", in_glob=".input", out_glob=".a", backend=on_a)
    b = make_task("b", "cat $I1 > $O1; echo b >> $O1", in_glob=".a", out_glob=".b", backend=on_a)
    c = make_task("c", f"[ -e {tried} ] || {{ touch {tried}; sleep 60; }}; cat $I1 > $O1; echo c >> $O1", in_glob=".a", out_glob=".c", backend=on_b)
    d = make_task("d", "cat $I1 $I2 > $O1", in_glob=".b, .c", out_glob=".d", backend=on_b)
    make_job("diamond", steps=[("a", a, {"ordering": 0}), ("b", b, {"ordering": 1}), ("c", c, {"ordering": 1}), ("d", d, {"ordering": 2})])
    wait_for_port(port)
    base = f"http://127.0.0.1:{port}"
    submission = Submission.objects.get(uuid=post(base, {"job": "diamond", "input_data": "upload\n"})["uuid"])

    # kill -9 host-b's worker while it runs c, then start a replacement on host-b.
    running = wait_until(lambda: Node.objects.filter(submission=submission, key="c", status="running", handle__gt="").first(), message="c to start")
    host, pid = running.worker.rsplit(":", 1)
    assert host == "host-b" and int(pid) == command_pid(first_b.pid)
    hosts.worker("host-b", "beta")
    os.kill(int(pid), signal.SIGKILL)

    submission = finished(submission, timeout=120)
    assert submission.status == "complete", submission.last_message
    nodes = {node.key: node for node in submission.nodes.all()}
    assert {key: node.worker.split(":")[0] for key, node in nodes.items()} == {"a": "host-a", "b": "host-a", "c": "host-b", "d": "host-b"}
    assert nodes["c"].attempt == 2
    d_result = submission.results.get(node__key="d")
    with urllib.request.urlopen(f"{base}/api/submissions/{submission.uuid}/results/{d_result.pk}/") as download:
        assert download.read() == b"upload\na\nb\nupload\na\nc\n"  # through the web host, from the bucket

    # Every file went through the bucket: input and the four results are objects, ...
    prefix = f"results/{submission.uuid}/"
    assert {key.removeprefix(prefix).split("/")[0] for key in bucket.keys(prefix)} == {"_input", "a", "b", "c", "d"}
    # ... no host kept any in a media root, the web host ran no step ...
    for name, path in hosts.dirs.items():
        assert not (path / "media").exists() or files_under(path / "media") == [], name
    assert node_dirs(hosts.dir("web-host"), submission) == set()
    # ... and each worker host held working directories of its own steps only.
    assert node_dirs(hosts.dir("host-a"), submission) == {nodes["a"].pk, nodes["b"].pk}
    assert node_dirs(hosts.dir("host-b"), submission) == {nodes["c"].pk, nodes["d"].pk}
    assert files_under(hosts.mount) == [], "outside the hosts, the common path is an empty directory"


def command_pid(pid):
    """The pid of the command unshare forked (``sh`` execs it), under the unshare process ``pid``."""
    current = pid
    for _ in range(3):
        with open(f"/proc/{current}/cmdline", "rb") as handle:
            if b"python" in handle.read().split(b"\0")[0]:
                return current
        children = open(f"/proc/{current}/task/{current}/children").read().split()
        if not children:
            break
        current = int(children[0])
    raise AssertionError(f"no manage.py process under {pid}")


def test_the_hosts_really_share_no_files_without_the_bucket(processes, bucket):
    """The control: the same two hosts with SLUICE_STORAGE=filesystem cannot pass a's result to c."""
    hosts = Hosts(processes, bucket, storage_env={"SLUICE_STORAGE": "filesystem"})
    try:
        hosts.worker("host-a", "alpha")
        hosts.worker("host-b", "beta")
        a = make_task("a", "echo a > $O1", out_glob=".a", backend=make_backend("on-a", make_queue_type("alpha")))
        c = make_task("c", "cat $I1 > $O1", in_glob=".a", out_glob=".c", backend=make_backend("on-b", make_queue_type("beta")))
        submission = engine.submit(make_job("pair", steps=[("a", a, {"ordering": 0}), ("c", c, {"ordering": 1})]))
        dispatch.start(submission)
        submission = finished(submission, timeout=90)
    finally:
        hosts.stop()
    nodes = {node.key: node for node in submission.nodes.all()}
    assert nodes["a"].status == "succeeded" and nodes["a"].worker.startswith("host-a:")
    print(f"without the bucket: {submission.status}; c: {nodes['c'].status}: {nodes['c'].message}")
    assert submission.status != "complete" and nodes["c"].status != "succeeded", "host-b read a file only host-a holds"
    assert files_under(hosts.dir("host-a") / "media") and not (hosts.dir("host-b") / "media" / "results").exists()
