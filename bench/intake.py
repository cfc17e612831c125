#!/usr/bin/env python
"""Measure what `POST /api/submissions/` costs, checkout against checkout and against a framework floor (run by hand).

    .venv/bin/python bench/intake.py [--root CHECKOUT ...] [--modes up pg] [--clients 1 4 16] [--requests 300] [--rounds 3]

Two ways of serving, each side by side in one run (``--modes``):

- ``up``: `manage.py up` on SQLite (waitress and the in-process worker), as
  the embedded mode runs;
- ``pg``: gunicorn with 2 workers (`config/gunicorn.conf.py`, a pool of 8
  database connections each: DATABASE_POOL_SIZE) on PostgreSQL, with
  `manage.py worker --processes 2` on Redis, as a deployment runs. One
  throwaway PostgreSQL and Redis on loopback serve every checkout, each with
  its own database and Redis database number.

For each way it starts one server per checkout given (``--root``, default
this one) and one more of this checkout serving the *framework floor*
(bench/floor_urls.py: a minimal DRF view that validates the same JSON body
and inserts one row, under the same settings, middleware and server), each
on its own port and fresh data (migrate, then loadjobs of a one-step job
whose task runs `true`), all with this script's interpreter. Then, for each
number of client threads in ``--clients``, it sends ``--requests``
submissions (`{"job": "bench_intake"}` as JSON, nothing else, so that any
checkout takes them) split over that many threads, each with one keep-alive
http.client connection (opened again when the server closes it, as
gunicorn's configuration does after each answer). It times every request
from sending it to having read its answer, and reports requests per second
(all requests over the wall time from the first to the last), the p50, p90
and p99 latency in ms, the number of answers other than 201, and each
server's p50 over the floor's.

The submissions are real: each server's worker runs their steps (sandboxed
as configured, so the throwaway directories are 0711 as SLUICE_STEP_USER
needs) while the requests come in, as in production. As every request comes
from one address, the servers run with QUEUE_HARD_LIMIT=0 (no 429 for too
many active submissions) unless the environment sets it. Before each measurement
the script waits until every server has finished the steps already
submitted (it reads their databases), so that one server's backlog does
not load the machine while another is measured. Each server first gets
``--warmup`` submissions. For each number of clients the servers of a way
are measured in turn for ``--rounds`` rounds, the order reversed every other
round, because a shared machine's load drifts; the figures are the medians
of the rounds, the non-201 answers their sum. The first checkout is the
reference of the ratios. Progress goes to stderr, the Markdown report to
stdout, ending with the targets met and missed. Every server started is
stopped at the end, also on Ctrl-C or SIGTERM.

``pg-intake`` is ``pg`` with the workers stopped (SIGSTOP) while the
requests of a measurement come in and let go (SIGCONT) before the drain:
the front door alone, without the steps it starts competing for the two
cores (no targets; it says what the steps cost the front door).

Targets (issue "Speed at scale"), at 4 clients: `up` at least 200 requests/s
and gunicorn on PostgreSQL at least 300, p99 under 100 ms, and a p50 within
2.5x the floor's.
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
SUBMIT_PATH, FLOOR_PATH = "/api/submissions/", "/bench-floor/"
MODES = {
    "up": "`manage.py up` (SQLite)",
    "pg": "gunicorn, 2 workers, on PostgreSQL + Redis",
    "pg-intake": "gunicorn, 2 workers, on PostgreSQL + Redis, the workers stopped while the requests come in",
}
TARGET_RPS = {"up": 200, "pg": 300}  # at 4 clients
TARGET_P99_MS = 100
TARGET_FLOOR_RATIO = 2.5
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
TERMINAL = ("complete", "error", "crash", "cancelled")
START_TIMEOUT = 90  # seconds for `up` to listen
DRAIN_TIMEOUT = 600  # seconds for a server's worker to finish what was submitted


def progress(text):
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Cluster:
    """One throwaway PostgreSQL and Redis on loopback for every ``pg`` server, started on first use."""

    def __init__(self, stack):
        self.stack = stack
        self.postgres = self.redis = None
        self.made = 0

    def database(self):
        """(DATABASE_URL, BROKER_URL) of a new database and Redis database number."""
        sys.path.insert(0, str(ROOT))
        from tests.realservers.servers import Postgres, Redis, _as_postgres, _pg_bin

        if self.postgres is None:
            progress("pg: starting a throwaway PostgreSQL and Redis on loopback")
            # Six servers can share it, and a checkout without DATABASE_POOL_SIZE keeps a connection
            # per gunicorn thread: more than PostgreSQL's default 100.
            self.postgres = Postgres(max_connections=1000).start()
            self.stack.callback(self.postgres.stop)
            self.redis = Redis().start()
            self.stack.callback(self.redis.stop)
        name = f"sluice{self.made}"
        createdb = [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.postgres.port), "-U", self.postgres.user, name]
        subprocess.run(_as_postgres(createdb), check=True, capture_output=True)
        self.made += 1
        return self.postgres.url.rsplit("/", 1)[0] + f"/{name}", self.redis.url.rsplit("/", 1)[0] + f"/{self.made - 1}"


class Server:
    """One checkout's server (``mode`` up or pg) on its own data and port; with ``floor``, this checkout serving the floor."""

    def __init__(self, root, work, index, mode, floor=False, cluster=None):
        self.root, self.mode, self.floor, self.cluster = root, mode, floor, cluster
        self.label = "floor" if floor else describe(root)
        self.path = FLOOR_PATH if floor else SUBMIT_PATH
        self.name = f"{mode}-{index}"
        self.data_dir = work / f"data-{self.name}"
        self.port = free_port()
        self.processes = []
        self.database_url = self.broker_url = None

    def env(self):
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "BROKER_URL", "DJANGO_SETTINGS_MODULE")}
        settings = "bench.floor_settings" if self.floor else "config.settings"
        env.update({"SLUICE_DATA_DIR": str(self.data_dir), "SLUICE_LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": settings})
        if self.mode != "up":
            env.update({"DATABASE_URL": self.database_url, "BROKER_URL": self.broker_url, "DATABASE_CONN_MAX_AGE": "60", "WEB_CONCURRENCY": "2"})
        # All the submissions come from one address: with the default limit of active submissions
        # per client (50) most of them would be cheap 429s once the worker falls behind.
        env.setdefault("QUEUE_HARD_LIMIT", "0")
        return env

    def start(self):
        manage = [PYTHON, str(self.root / "manage.py")]
        if self.mode != "up":
            self.database_url, self.broker_url = self.cluster.database()
        progress(f"{self.mode} {self.label}: migrate and loadjobs in {self.data_dir}")
        self.data_dir.mkdir(mode=0o711)
        job_file = self.data_dir.parent / f"{self.data_dir.name}.yaml"
        job_file.write_text(JOB)
        for argv in ([*manage, "migrate", "--noinput", "-v", "0"], [*manage, "loadjobs", str(job_file)]):
            done = subprocess.run(argv, env=self.env(), cwd=self.root, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{self.label}: {' '.join(argv[1:3])} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
        if self.mode == "up":
            web = self._spawn("up", [*manage, "up", "--addr", f"127.0.0.1:{self.port}"])
        else:
            if not self.floor:  # the floor makes no steps to run
                self._spawn("worker", [*manage, "worker", "--processes", "2"])
            # As docs/operations.md runs it: a pool of connections per worker (a checkout without
            # DATABASE_POOL_SIZE keeps one per thread for DATABASE_CONN_MAX_AGE).
            gunicorn = [PYTHON, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}"]
            web = self._spawn("gunicorn", gunicorn, DATABASE_POOL_SIZE="8")
        wait_for_port(self.port, web, web.log_path)
        progress(f"{self.mode} {self.label}: listening on 127.0.0.1:{self.port} (pid {web.pid})")

    def _spawn(self, what, argv, **extra):
        log_path = self.data_dir.parent / f"{self.name}-{what}.log"
        log = open(log_path, "w")
        # Its own process group, so that a Ctrl-C reaches only this script, which then stops it.
        process = subprocess.Popen(argv, env={**self.env(), **extra}, cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        process.what, process.log_path = what, log_path
        self.processes.append(process)
        return process

    def stop(self, grace=30.0):
        for process in reversed(self.processes):
            stop_process(process, f"{self.mode} {self.label} {process.what}", grace)
        self.processes.clear()

    def logs(self):
        return [process.log_path for process in self.processes]

    def _query(self, sql, params):
        if self.mode == "up":
            database = sqlite3.connect(f"file:{self.data_dir / 'sluice.sqlite3'}?mode=ro", uri=True, timeout=30)
            try:
                return database.execute(sql, params).fetchone()[0]
            finally:
                database.close()
        import psycopg

        with psycopg.connect(self.database_url.replace("postgres://", "postgresql://", 1)) as connection:
            return connection.execute(sql.replace("?", "%s"), params).fetchone()[0]

    def counts(self):
        """(unfinished, finished other than complete) submissions, from the server's database."""
        marks = ",".join("?" * len(TERMINAL))
        unfinished = self._query(f"SELECT count(*) FROM execution_submission WHERE status NOT IN ({marks})", TERMINAL)
        failed = self._query("SELECT count(*) FROM execution_submission WHERE status IN (?, ?, ?)", TERMINAL[1:])
        return unfinished, failed

    def drain(self):
        """Wait until the worker has finished every submission; return the seconds waited."""
        started = time.monotonic()
        while True:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{self.label}: {process.what} exited with {process.returncode} (see {process.log_path})")
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


def load(port, clients, requests, body=BODY, path=SUBMIT_PATH):
    """Send ``requests`` submissions (``body`` to ``path``) over ``clients`` threads; return (wall seconds, latencies, statuses).

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
                connection.request("POST", path, body=body, headers=HEADERS)
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
    paused = [process for process in server.processes if process.what == "worker"] if server.mode == "pg-intake" else []
    for process in paused:  # the front door alone: the steps wait (queued) until the measurement is over
        os.killpg(process.pid, signal.SIGSTOP)
    try:
        wall, latencies, statuses = load(server.port, clients, requests, path=server.path)
    finally:
        for process in paused:
            os.killpg(process.pid, signal.SIGCONT)
    return {
        "rps": len(latencies) / wall,
        "p50": percentile(latencies, 0.50) * 1000,
        "p90": percentile(latencies, 0.90) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "non_201": sum(1 for status in statuses if status != 201),
        "wall": wall,
    }


def drain_all(servers):
    waited = {server.name: server.drain() for server in servers}
    return max(waited.values())


def run(args, servers):
    results = {server.name: {clients: [] for clients in args.clients} for server in servers}
    drains = []
    for server in servers:
        progress(f"{server.mode} {server.label}: warm-up, {args.warmup} submissions from 4 clients")
        if args.warmup:
            measure(server, min(4, args.warmup), args.warmup)
    drain_all(servers)
    for mode in args.modes:
        group = [server for server in servers if server.mode == mode]
        for clients in args.clients:
            for number in range(args.rounds):
                for server in group if number % 2 == 0 else group[::-1]:
                    drains.append(drain_all(servers))
                    figures = measure(server, clients, args.requests)
                    results[server.name][clients].append(figures)
                    progress(
                        f"{mode} {server.label}: {clients} clients, round {number + 1}/{args.rounds}: {figures['rps']:.1f} req/s, "
                        f"p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms, {figures['non_201']} not 201"
                    )
    drains.append(drain_all(servers))
    return results, drains


# --- the report --------------------------------------------------------------------

METRICS = (("rps", "requests/s", "{:.1f}"), ("p50", "p50 (ms)", "{:.1f}"), ("p90", "p90 (ms)", "{:.1f}"), ("p99", "p99 (ms)", "{:.1f}"))


def median_of(results, server, clients, key):
    return statistics.median(run[key] for run in results[server.name][clients])


def spread(results, server, clients, key):
    values = [run[key] for run in results[server.name][clients]]
    return f"{min(values):.1f}–{max(values):.1f}"


def render(args, servers, results, drains, elapsed, load_average):
    lines = [
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}; {date.today().isoformat()}.",
        f"Command: `.venv/bin/python bench/intake.py {' '.join(f'--root {root.name}' for root in dict.fromkeys(server.root for server in servers if not server.floor))} "
        f"--modes {' '.join(args.modes)} --clients {' '.join(map(str, args.clients))} --requests {args.requests} --rounds {args.rounds} --warmup {args.warmup}`",
        f"QUEUE_HARD_LIMIT={servers[0].env()['QUEUE_HARD_LIMIT']}, SLUICE_SANDBOX={os.environ.get('SLUICE_SANDBOX', 'auto')}. "
        f"Full run took {elapsed:.0f} s; 1-minute load average {load_average[0]:.2f} at the start, {load_average[-1]:.2f} at the end; "
        f"waits for the workers to finish before a measurement: median {statistics.median(drains):.1f} s, longest {max(drains):.1f} s.",
    ]
    verdicts = []
    for mode in args.modes:
        group = [server for server in servers if server.mode == mode]
        sluice = [server for server in group if not server.floor]
        floor = next(server for server in group if server.floor)
        reference = sluice[0]
        header = "| clients | figure | " + " | ".join(f"`{server.label}`" for server in group)
        header += "".join(f" | `{server.label}` / `{reference.label}`" for server in sluice[1:])
        header += "".join(f" | `{server.label}` / floor" for server in sluice) + " |"
        columns = len(group) + len(sluice) - 1 + len(sluice)
        lines += [
            "",
            f"### {MODES[mode]}: `POST {SUBMIT_PATH}` and the floor's `POST {FLOOR_PATH}`, {args.requests} requests per measurement "
            f"(medians of {args.rounds} interleaved rounds; ranges below)",
            "",
            header,
            "| ---: | --- |" + " ---: |" * columns,
        ]
        for clients in args.clients:
            for key, name, form in METRICS:
                values = [median_of(results, server, clients, key) for server in group]
                cells = [form.format(value) for value in values]
                cells += [f"{median_of(results, server, clients, key) / median_of(results, reference, clients, key):.2f}" for server in sluice[1:]]
                cells += [f"{median_of(results, server, clients, key) / median_of(results, floor, clients, key):.2f}" for server in sluice]
                lines.append(f"| {clients} | {name} | " + " | ".join(cells) + " |")
            non_201 = [sum(run["non_201"] for run in results[server.name][clients]) for server in group]
            lines.append(f"| {clients} | answers other than 201 (sum) | " + " | ".join(map(str, non_201)) + " |" + " |" * (columns - len(group)))
        lines += ["", "Ranges over the rounds (requests/s; p99 ms):", ""]
        for clients in args.clients:
            lines.append(f"- {clients} clients: " + "; ".join(
                f"`{server.label}` {spread(results, server, clients, 'rps')} req/s, p99 {spread(results, server, clients, 'p99')}" for server in group
            ))
        failed = [f"`{server.label}`: {server.counts()[1]}" for server in sluice]
        lines += ["", "Submissions whose step did not complete (error, crash or cancelled): " + ", ".join(failed) + "."]
        if 4 in args.clients and mode in TARGET_RPS:  # pg-intake explains, it has no targets
            last = sluice[-1]
            rps, p99, p50 = (median_of(results, last, 4, key) for key in ("rps", "p99", "p50"))
            ratio = p50 / median_of(results, floor, 4, "p50")
            floor_rps = median_of(results, floor, 4, "rps")
            verdicts += [
                f"- {MODES[mode]}, `{last.label}`, 4 clients: {rps:.0f} requests/s (target ≥ {TARGET_RPS[mode]}; the floor: {floor_rps:.0f}): "
                + ("met" if rps >= TARGET_RPS[mode] else "not met"),
                f"- {MODES[mode]}, `{last.label}`, 4 clients: p99 {p99:.1f} ms (target < {TARGET_P99_MS}): " + ("met" if p99 < TARGET_P99_MS else "not met"),
                f"- {MODES[mode]}, `{last.label}`, 4 clients: p50 {ratio:.2f}× the floor's (target ≤ {TARGET_FLOOR_RATIO}): "
                + ("met" if ratio <= TARGET_FLOOR_RATIO else "not met"),
            ]
    if verdicts:
        lines += ["", "### Targets (the last checkout given)", "", *verdicts]
    return "\n".join(lines)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", action="append", type=Path,
        help="a checkout whose manage.py up to measure (repeatable; the first is the reference; default this one)",
    )
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["up", "pg"], help="ways of serving to measure (default: up pg)")
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
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
            cluster = Cluster(stack)
            servers = []
            for mode in args.modes:
                servers += [Server(root, work, index, mode, cluster=cluster) for index, root in enumerate(roots)]
                servers.append(Server(ROOT, work, len(roots), mode, floor=True, cluster=cluster))
            labels = [server.label for server in servers if not server.floor]
            for index, server in enumerate(server for server in servers if not server.floor):
                if labels.count(server.label) > len(args.modes):
                    server.label = f"{server.label} ({index % len(roots) + 1})"
            for server in servers:
                stack.callback(server.stop)
                server.start()
            try:
                results, drains = run(args, servers)
            except Exception:
                keep = Path(tempfile.mkdtemp(prefix="sluice-intake-logs-"))
                for server in servers:
                    for log_path in server.logs():
                        shutil.copy(log_path, keep)
                progress(f"the servers' logs are kept in {keep}")
                raise
            report = render(args, servers, results, drains, time.perf_counter() - began, load_average + [os.getloadavg()[0]])
            figures = {server.name: {"label": server.label, **{str(clients): runs for clients, runs in results[server.name].items()}} for server in servers}
    except KeyboardInterrupt:
        progress("interrupted; the servers were stopped")
        return 130
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": figures, "drains": drains}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
