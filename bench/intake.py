#!/usr/bin/env python
"""Measure what `POST /api/submissions/` costs `manage.py up`, checkout against checkout (run by hand).

    .venv/bin/python bench/intake.py [--root CHECKOUT ...] [--clients 1 4 16] [--requests 300] [--rounds 3]

Starts `manage.py up` of each checkout given (default: this one) as a real
process, each on its own port and a fresh SLUICE_DATA_DIR (migrate, then
loadjobs of a one-step job whose task runs `true`), all with this script's
interpreter. Then, for each number of client threads in ``--clients``, it
sends ``--requests`` submissions (`{"job": "bench_intake"}` as JSON, nothing
else, so that any checkout takes them) split over that many threads, each
with one keep-alive http.client connection. It times every request from
sending it to having read its answer, and reports requests per second (all
requests over the wall time from the first to the last), the p50, p90 and
p99 latency in ms and the number of answers other than 201.

The submissions are real: each server's worker runs their steps (sandboxed
as configured, so the throwaway directories are 0711 as SLUICE_STEP_USER
needs) while the requests come in, as in production. As every request comes
from one address, the servers run with QUEUE_HARD_LIMIT=0 (no 429 for too
many active submissions) unless the environment sets it. Before each measurement
the script waits until every server has finished the steps already
submitted (it reads their SQLite files), so that one checkout's backlog does
not load the machine while another is measured. Each server first gets
``--warmup`` submissions. For each number of clients the checkouts are
measured in turn for ``--rounds`` rounds, the order reversed every other
round, because a shared machine's load drifts; the figures are the medians
of the rounds, the non-201 answers their sum. The first checkout is the
reference of the ratios. Progress goes to stderr, the Markdown report to
stdout. Every server started is stopped at the end, also on Ctrl-C or SIGTERM.
"""
import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
JOB_NAME = "bench_intake"
JOB = f"""
queue_types: [{{name: localhost, execution_behaviour: localhost}}]
backends: [{{name: local, queue_type: localhost}}]
tasks: [{{name: {JOB_NAME}, backend: local, executable: "true"}}]
jobs: [{{name: {JOB_NAME}, steps: [{{id: noop, task: {JOB_NAME}}}]}}]
"""
BODY = json.dumps({"job": JOB_NAME}).encode()
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
TERMINAL = ("complete", "error", "crash", "cancelled")
START_TIMEOUT = 90  # seconds for `up` to listen
DRAIN_TIMEOUT = 600  # seconds for a server's worker to finish what was submitted


def progress(text):
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Server:
    """One checkout's `manage.py up` on its own data directory and port."""

    def __init__(self, root, work, index):
        self.root = root
        self.label = describe(root)
        self.data_dir = work / f"data-{index}"
        self.log_path = work / f"up-{index}.log"
        self.port = free_port()
        self.process = None

    def env(self):
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "BROKER_URL", "DJANGO_SETTINGS_MODULE")}
        env.update({"SLUICE_DATA_DIR": str(self.data_dir), "SLUICE_LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings"})
        # All the submissions come from one address: with the default limit of active submissions
        # per client (50) most of them would be cheap 429s once the worker falls behind.
        env.setdefault("QUEUE_HARD_LIMIT", "0")
        return env

    def start(self):
        manage = [PYTHON, str(self.root / "manage.py")]
        progress(f"{self.label}: migrate and loadjobs in {self.data_dir}")
        self.data_dir.mkdir(mode=0o711)
        job_file = self.data_dir.parent / f"{self.data_dir.name}.yaml"
        job_file.write_text(JOB)
        for argv in ([*manage, "migrate", "--noinput", "-v", "0"], [*manage, "loadjobs", str(job_file)]):
            done = subprocess.run(argv, env=self.env(), cwd=self.root, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{self.label}: {' '.join(argv[1:3])} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
        log = open(self.log_path, "w")
        argv = [*manage, "up", "--addr", f"127.0.0.1:{self.port}"]
        # Its own process group, so that a Ctrl-C reaches only this script, which then stops it.
        self.process = subprocess.Popen(argv, env=self.env(), cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for_port(self.port, self.process, self.log_path)
        progress(f"{self.label}: up on 127.0.0.1:{self.port} (pid {self.process.pid})")

    def stop(self, grace=30.0):
        if self.process is not None:
            stop_process(self.process, self.label, grace)
            self.process = None

    def counts(self):
        """(unfinished, finished other than complete) submissions, from the server's SQLite file."""
        database = sqlite3.connect(f"file:{self.data_dir / 'sluice.sqlite3'}?mode=ro", uri=True, timeout=30)
        try:
            marks = ",".join("?" * len(TERMINAL))
            query = f"SELECT count(*) FROM execution_submission WHERE status NOT IN ({marks})"
            unfinished = database.execute(query, TERMINAL).fetchone()[0]
            failed = database.execute("SELECT count(*) FROM execution_submission WHERE status IN (?, ?, ?)", TERMINAL[1:]).fetchone()[0]
        finally:
            database.close()
        return unfinished, failed

    def drain(self):
        """Wait until the worker has finished every submission; return the seconds waited."""
        started = time.monotonic()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label}: `up` exited with {self.process.returncode} (see {self.log_path})")
            unfinished, _ = self.counts()
            if not unfinished:
                return time.monotonic() - started
            if time.monotonic() - started > DRAIN_TIMEOUT:
                raise RuntimeError(f"{self.label}: {unfinished} submissions still unfinished after {DRAIN_TIMEOUT} s")
            time.sleep(0.2)


def stop_process(process, label, grace=30.0):
    """SIGTERM a process started in its own group, give it ``grace`` seconds, then SIGKILL the group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            progress(f"{label}: ignored SIGTERM for {grace:g} s; killing it")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def exit_on_signals():
    """SIGTERM and SIGHUP exit as Ctrl-C does, through every ``finally``, so the servers started are stopped."""

    def stop(signum, frame):
        progress(f"got {signal.Signals(signum).name}; stopping the servers")
        sys.exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)


def describe(root):
    """The checkout's short commit, with '+' when its tracked files differ from it."""
    git = ["git", "-C", str(root)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or root.name
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "."], capture_output=True).returncode == 1
    return commit + ("+" if dirty else "")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, process, log_path):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`up` exited with {process.returncode} before listening:\n{Path(log_path).read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {START_TIMEOUT} s (see {log_path})")


# --- the load ----------------------------------------------------------------------


def load(port, clients, requests, body=BODY):
    """Send ``requests`` submissions (``body``) over ``clients`` threads; return (wall seconds, latencies, statuses).

    Each thread has one keep-alive connection (http.client opens it again if
    the server closes it). A request that fails at the socket counts with the
    status None.
    """
    shares = [requests // clients + (1 if index < requests % clients else 0) for index in range(clients)]
    latencies, statuses = [[] for _ in range(clients)], [[] for _ in range(clients)]
    ready = threading.Barrier(clients + 1)
    first_error = []

    def client(index):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        connection.connect()
        ready.wait()
        for _ in range(shares[index]):
            started = time.perf_counter()
            try:
                connection.request("POST", "/api/submissions/", body=body, headers=HEADERS)
                response = connection.getresponse()
                answer = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                status, answer = None, repr(error).encode()
            latencies[index].append(time.perf_counter() - started)
            statuses[index].append(status)
            if status != 201 and not first_error:
                first_error.append(f"{status}: {answer[:300].decode(errors='replace')}")
        connection.close()

    threads = [threading.Thread(target=client, args=(index,), daemon=True) for index in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if first_error:
        progress(f"  first answer other than 201: {first_error[0]}")
    return wall, [value for part in latencies for value in part], [value for part in statuses for value in part]


def percentile(values, fraction):
    """Nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))]


def measure(server, clients, requests):
    wall, latencies, statuses = load(server.port, clients, requests)
    return {
        "rps": len(latencies) / wall,
        "p50": percentile(latencies, 0.50) * 1000,
        "p90": percentile(latencies, 0.90) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "non_201": sum(1 for status in statuses if status != 201),
        "wall": wall,
    }


def drain_all(servers):
    waited = {server.label: server.drain() for server in servers}
    return max(waited.values())


def run(args, servers):
    results = {server.label: {clients: [] for clients in args.clients} for server in servers}
    drains = []
    for server in servers:
        progress(f"{server.label}: warm-up, {args.warmup} submissions from 4 clients")
        if args.warmup:
            measure(server, min(4, args.warmup), args.warmup)
    drain_all(servers)
    for clients in args.clients:
        for number in range(args.rounds):
            order = servers if number % 2 == 0 else servers[::-1]
            for server in order:
                drains.append(drain_all(servers))
                figures = measure(server, clients, args.requests)
                results[server.label][clients].append(figures)
                progress(
                    f"{server.label}: {clients} clients, round {number + 1}/{args.rounds}: {figures['rps']:.1f} req/s, "
                    f"p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms, {figures['non_201']} not 201"
                )
    drains.append(drain_all(servers))
    return results, drains


# --- the report --------------------------------------------------------------------

METRICS = (("rps", "requests/s", "{:.1f}"), ("p50", "p50 (ms)", "{:.1f}"), ("p90", "p90 (ms)", "{:.1f}"), ("p99", "p99 (ms)", "{:.1f}"))


def render(args, servers, results, drains, elapsed, load_average):
    labels = [server.label for server in servers]
    reference = labels[0]
    header = "| clients | figure | " + " | ".join(f"`{label}`" for label in labels)
    header += "".join(f" | `{label}` / `{reference}`" for label in labels[1:]) + " |"
    lines = [
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}; {date.today().isoformat()}.",
        f"Command: `.venv/bin/python bench/intake.py {' '.join(f'--root {server.root.name}' for server in servers)} "
        f"--clients {' '.join(map(str, args.clients))} --requests {args.requests} --rounds {args.rounds} --warmup {args.warmup}`",
        f"Servers: `manage.py up` with its default threads, SQLite, QUEUE_HARD_LIMIT={servers[0].env()['QUEUE_HARD_LIMIT']}, "
        f"SLUICE_SANDBOX={os.environ.get('SLUICE_SANDBOX', 'auto')}.",
        f"Full run took {elapsed:.0f} s; 1-minute load average {load_average[0]:.2f} at the start, {load_average[-1]:.2f} at the end; "
        f"waits for the workers to finish before a measurement: median {statistics.median(drains):.1f} s, longest {max(drains):.1f} s.",
        "",
        f"### `POST /api/submissions/`, {args.requests} requests per measurement (medians of {args.rounds} interleaved rounds)",
        "",
        header,
        "| ---: | --- |" + " ---: |" * (len(labels) * 2 - 1),
    ]
    for clients in args.clients:
        for key, name, form in METRICS:
            values = [statistics.median(run[key] for run in results[label][clients]) for label in labels]
            cells = [form.format(value) for value in values] + [f"{value / values[0]:.2f}" for value in values[1:]]
            lines.append(f"| {clients} | {name} | " + " | ".join(cells) + " |")
        non_201 = [sum(run["non_201"] for run in results[label][clients]) for label in labels]
        lines.append(f"| {clients} | answers other than 201 (sum) | " + " | ".join(map(str, non_201)) + " |" + " |" * (len(labels) - 1))
    failed = [f"`{server.label}`: {server.counts()[1]}" for server in servers]
    lines += ["", "Submissions whose step did not complete (error, crash or cancelled): " + ", ".join(failed) + "."]
    return "\n".join(lines)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", action="append", type=Path,
        help="a checkout whose manage.py up to measure (repeatable; the first is the reference; default this one)",
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="numbers of concurrent client threads (default 1 4 16)")
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per number of clients (default 3)")
    parser.add_argument("--warmup", type=int, default=50, help="submissions each server gets before the first measurement (default 50)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    args = parser.parse_args()
    if any(clients < 1 for clients in args.clients) or args.requests < max(args.clients) or args.rounds < 1 or args.warmup < 0:
        parser.error("--clients and --rounds must be at least 1, --requests at least the largest --clients, --warmup at least 0")
    return args


def main():
    args = parse_args()
    roots = [root.resolve() for root in (args.root or [ROOT])]
    for root in roots:
        if not (root / "manage.py").is_file():
            raise SystemExit(f"{root} has no manage.py")

    exit_on_signals()
    began = time.perf_counter()
    load_average = [os.getloadavg()[0]]
    work = Path(tempfile.mkdtemp(prefix="sluice-intake-"))
    # mkdtemp makes it 0700; with the sandbox on, steps run as SLUICE_STEP_USER, which must be able
    # to pass through it to their working directories (it still cannot list it).
    os.chmod(work, 0o711)
    servers = [Server(root, work, index) for index, root in enumerate(roots)]
    if len({server.label for server in servers}) < len(servers):
        for index, server in enumerate(servers):
            server.label = f"{server.label} ({index + 1})"
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
            for server in servers:
                stack.callback(server.stop)
                server.start()
            try:
                results, drains = run(args, servers)
            except Exception:
                keep = Path(tempfile.mkdtemp(prefix="sluice-intake-logs-"))
                for server in servers:
                    shutil.copy(server.log_path, keep)
                progress(f"the servers' logs are kept in {keep}")
                raise
            report = render(args, servers, results, drains, time.perf_counter() - began, load_average + [os.getloadavg()[0]])
    except KeyboardInterrupt:
        progress("interrupted; the servers were stopped")
        return 130
    print(report)
    if args.json:
        figures = {label: {str(clients): runs for clients, runs in by_clients.items()} for label, by_clients in results.items()}
        Path(args.json).write_text(json.dumps({"results": figures, "drains": drains}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
