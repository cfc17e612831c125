"""Slow clients cannot take the web server down: `manage.py up`, and gunicorn as docs/operations.md runs it.

500 connections each send part of a request and then one more header line
every second, as a slow-loris attack does. Meanwhile /healthz must answer
within a second, and the server must drop the slow connections once they
have taken longer than its header timeout. Both servers run for real, on a
loopback port, on a SQLite file of their own.
"""
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import embedded_env
from tests.realservers.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

CLIENTS = 500
HEADER_TIMEOUT = 8  # seconds, for the servers under test: short, so that the drop is seen soon


class SlowClients:
    """``count`` connections that each send a request line, then a header line every ``every`` seconds, never the end."""

    def __init__(self, port, count=CLIENTS, every=1.0):
        self.port, self.count, self.every = port, count, every
        self.sockets, self.closed = [], set()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self):
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sock.setblocking(False)
            self.sockets.append(sock)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()

    def _trickle(self):
        line = 0
        while not self.stopping.wait(self.every):
            line += 1
            for index, sock in enumerate(self.sockets):
                if index not in self.closed:
                    self._send(index, sock, f"X-Slow-{line}: {'a' * 20}\r\n".encode())

    def _send(self, index, sock, data):
        try:
            if sock.recv(1024) == b"":  # the server closed it (anything it says first is read and dropped)
                self.closed.add(index)
                return
        except BlockingIOError:
            pass
        except OSError:
            self.closed.add(index)
            return
        try:
            sock.send(data)
        except BlockingIOError:
            pass
        except OSError:
            self.closed.add(index)

    def open_count(self):
        return self.count - len(self.closed)


def healthz_seconds(port):
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
        assert response.status == 200 and response.read() == b"ok"
    return time.monotonic() - started


def assert_it_survives(server, port):
    wait_for_port(port, timeout=90)
    assert healthz_seconds(port) < 5  # warm: the first request loads what it needs
    with SlowClients(port) as clients:
        time.sleep(3)  # every connection has been taken by the server and has sent a few more lines
        assert clients.open_count() == CLIENTS, "the server dropped slow connections before its header timeout"
        times = [healthz_seconds(port) for _ in range(3)]  # a few milliseconds each when all is well
        assert max(times) < 1.0, times
        deadline = time.monotonic() + HEADER_TIMEOUT + 30
        while clients.open_count() and time.monotonic() < deadline:
            assert server.poll() is None, "the server died"
            time.sleep(0.5)
        assert clients.open_count() == 0, f"{clients.open_count()} slow connections were still open {HEADER_TIMEOUT + 30} s after their header timeout"
    assert healthz_seconds(port) < 5


@pytest.fixture(autouse=True)
def enough_open_files():
    """The test holds 500 sockets; a soft limit of 1024 is enough, a lower one is raised for the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def low_open_files():
    """Start the server with a soft limit below what 1000 connections need, as many hosts have, so that `up` must raise it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, soft), hard))


def stop(server):
    server.terminate()
    try:
        return server.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        server.kill()
        return server.communicate()[0]


def migrated(tmp_path, **extra):
    env = embedded_env(tmp_path, **extra)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], env=env, check=True, capture_output=True)
    return env


def test_up_answers_healthz_while_500_slow_clients_hold_connections_and_drops_them(tmp_path):
    env = migrated(tmp_path, SLUICE_UP_HEADER_TIMEOUT=str(HEADER_TIMEOUT), SLUICE_UP_CLEANUP_INTERVAL="1")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "up", "--addr", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=low_open_files,
    )
    try:
        assert_it_survives(server, port)
    finally:
        output = stop(server)
    resource_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if resource_hard > 256:
        assert "Raised the open-file limit (ulimit -n) from 256 to" in output, output


def test_gunicorn_as_documented_answers_healthz_while_500_slow_clients_hold_connections(tmp_path):
    env = migrated(tmp_path, SLUICE_GUNICORN_HEADER_TIMEOUT=str(HEADER_TIMEOUT))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "config" / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert_it_survives(server, port)
    finally:
        output = stop(server)
    assert "Booting worker" in output, output
