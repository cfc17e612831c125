#!/usr/bin/env python
"""A burst of submissions over HTTP, end to end: how many steps per second reach a terminal state (run by hand).

    .venv/bin/python bench/burst.py [--only embedded pg] [--submissions 1000] [--clients 4] [--steps 3] [--rounds 1]

For each mode it starts Sluice as a deployment runs it, on loopback and
throwaway data:

- ``embedded``: `manage.py up` on SQLite (its web server and its in-process worker);
- ``pg``: a throwaway PostgreSQL and Redis, gunicorn with 2 workers
  (`config/gunicorn.conf.py`, DATABASE_POOL_SIZE=8) and `manage.py worker --processes 2`.

It loads a job of ``--steps`` steps in a chain, each running `true`, sends a
few warm-up submissions, waits for them, and then sends ``--submissions``
submissions (`POST /api/submissions/`, JSON) from ``--clients`` threads as
fast as they are answered. It waits until every accepted one is terminal,
reading the database, and reports: steps per second from the first request
to the last submission's end, the intake rate and latency percentiles, how
many were accepted, terminal, complete, and lost (accepted but missing or
not terminal after the drain timeout). Every server started is stopped at
the end, also on Ctrl-C.

Targets (issue "Speed at scale"): embedded at least 100 steps/s, PostgreSQL
+ Redis with 2 worker processes at least 150 steps/s; every submission
terminal, none lost.
"""
import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(ROOT))

import intake  # noqa: E402  (this folder's bench/intake.py: its HTTP load and port helpers)

PYTHON = sys.executable
JOB_NAME = "bench_burst"
BODY = json.dumps({"job": JOB_NAME}).encode()
TERMINAL = ("complete", "error", "crash", "cancelled")
DRAIN_TIMEOUT = 900
TARGETS = {"embedded": 100, "pg": 150}


def job_yaml(steps):
    tasks = ", ".join(f'{{name: {JOB_NAME}_{index}, backend: local, executable: "true"}}' for index in range(steps))
    chain = ", ".join(f"{{id: s{index}, task: {JOB_NAME}_{index}, ordering: {index}}}" for index in range(steps))
    return (
        "queue_types: [{name: localhost, execution_behaviour: localhost}]\n"
        "backends: [{name: local, queue_type: localhost}]\n"
        f"tasks: [{tasks}]\n"
        f"jobs: [{{name: {JOB_NAME}, steps: [{chain}]}}]\n"
    )


class Deployment:
    """Processes started in their own process groups, and how to read the submissions' states."""

    def __init__(self, name, work):
        self.name, self.work = name, work
        self.processes = []
        self.port = intake.free_port()
        self.data_dir = work / name
        self.data_dir.mkdir(mode=0o711)

    def env(self, **extra):
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "BROKER_URL", "DJANGO_SETTINGS_MODULE")}
        env.update({"SLUICE_DATA_DIR": str(self.data_dir), "SLUICE_LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings"})
        env.setdefault("QUEUE_HARD_LIMIT", "0")  # every request comes from one address
        env.update(extra)
        return env

    def prepare(self, env, steps):
        job_file = self.work / f"{self.name}.yaml"
        job_file.write_text(job_yaml(steps))
        for argv in ([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], [PYTHON, "manage.py", "loadjobs", str(job_file)]):
            done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{self.name}: {' '.join(argv[1:3])} exited with {done.returncode}:\n{done.stdout}{done.stderr}")

    def start(self, label, argv, env):
        log = open(self.work / f"{self.name}-{label}.log", "w")
        process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        process.label = label
        self.processes.append(process)
        return process

    def stop(self):
        for process in reversed(self.processes):
            intake.stop_process(process, f"{self.name} {process.label}")
        self.processes.clear()

    def states(self, after_id):
        """{status: count}, first created_at, last finished_at of the submissions with id > ``after_id``."""
        raise NotImplementedError

    def last_id(self):
        raise NotImplementedError


class Embedded(Deployment):
    def __init__(self, work, steps):
        super().__init__("embedded", work)
        env = self.env()
        self.prepare(env, steps)
        process = self.start("up", [PYTHON, "manage.py", "up", "--addr", f"127.0.0.1:{self.port}"], env)
        intake.wait_for_port(self.port, process, self.work / "embedded-up.log")

    def _query(self, sql, params=()):
        database = sqlite3.connect(f"file:{self.data_dir / 'sluice.sqlite3'}?mode=ro", uri=True, timeout=30)
        try:
            return database.execute(sql, params).fetchall()
        finally:
            database.close()

    def states(self, after_id):
        counts = dict(self._query("SELECT status, count(*) FROM execution_submission WHERE id > ? GROUP BY status", (after_id,)))
        first, last = self._query("SELECT min(created_at), max(finished_at) FROM execution_submission WHERE id > ?", (after_id,))[0]
        return counts, _when(first), _when(last)

    def last_id(self):
        return self._query("SELECT coalesce(max(id), 0) FROM execution_submission")[0][0]


class OnPostgres(Deployment):
    def __init__(self, work, steps, stack):
        from tests.realservers.servers import Postgres, Redis, _as_postgres, _pg_bin

        super().__init__("pg", work)
        intake.progress("pg: starting a throwaway PostgreSQL and Redis on loopback")
        postgres = Postgres().start()
        stack.callback(postgres.stop)
        redis = Redis().start()
        stack.callback(redis.stop)
        createdb = [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", postgres.user, "sluice"]
        subprocess.run(_as_postgres(createdb), check=True, capture_output=True)
        self.database_url = postgres.url
        env = self.env(DATABASE_URL=postgres.url, BROKER_URL=redis.url, DATABASE_CONN_MAX_AGE="60", WEB_CONCURRENCY="2")
        self.prepare(env, steps)
        self.start("worker", [PYTHON, "manage.py", "worker", "--processes", "2"], env)
        gunicorn = [PYTHON, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}"]
        web = self.start("gunicorn", gunicorn, {**env, "DATABASE_POOL_SIZE": "8"})  # as docs/operations.md runs it
        intake.wait_for_port(self.port, web, self.work / "pg-gunicorn.log")

    def _query(self, sql, params=()):
        import psycopg

        with psycopg.connect(self.database_url.replace("postgres://", "postgresql://", 1)) as connection:
            return connection.execute(sql, params).fetchall()

    def states(self, after_id):
        counts = dict(self._query("SELECT status, count(*) FROM execution_submission WHERE id > %s GROUP BY status", (after_id,)))
        first, last = self._query("SELECT min(created_at), max(finished_at) FROM execution_submission WHERE id > %s", (after_id,))[0]
        return counts, first, last

    def last_id(self):
        return self._query("SELECT coalesce(max(id), 0) FROM execution_submission")[0][0]


def _when(text):
    """A time as SQLite holds it (UTC, no offset), made aware."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc) if text else None


def drain(deployment, after_id, expected):
    """Wait until ``expected`` submissions after ``after_id`` are all terminal; return their states."""
    started = time.monotonic()
    while True:
        for process in deployment.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{deployment.name}: {process.label} exited with {process.returncode} (see its log in {deployment.work})")
        counts, first, last = deployment.states(after_id)
        done = sum(counts.get(status, 0) for status in TERMINAL)
        if done >= expected:
            return counts, first, last, False
        if time.monotonic() - started > DRAIN_TIMEOUT:
            return counts, first, last, True
        time.sleep(0.25)


def burst(deployment, args):
    intake.progress(f"{deployment.name}: warm-up, 20 submissions")
    before = deployment.last_id()
    _, _, statuses = intake.load(deployment.port, 4, 20, BODY)
    if statuses.count(201) != 20:
        raise RuntimeError(f"{deployment.name}: the warm-up submissions were not all accepted: {statuses}")
    drain(deployment, before, 20)
    rounds = []
    for number in range(args.rounds):
        before = deployment.last_id()
        intake.progress(f"{deployment.name}: round {number + 1}, {args.submissions} submissions from {args.clients} clients")
        began = datetime.now().astimezone()
        wall, latencies, statuses = intake.load(deployment.port, args.clients, args.submissions, BODY)
        accepted = sum(1 for status in statuses if status == 201)
        counts, first, last, timed_out = drain(deployment, before, accepted)
        terminal = sum(counts.get(status, 0) for status in TERMINAL)
        span = (last - began).total_seconds() if last else float("nan")
        rounds.append({
            "steps_per_s": terminal * args.steps / span, "span_s": span, "intake_rps": len(statuses) / wall,
            "p50_ms": intake.percentile(latencies, 0.5) * 1000, "p99_ms": intake.percentile(latencies, 0.99) * 1000,
            "accepted": accepted, "refused": len(statuses) - accepted, "made": sum(counts.values()), "terminal": terminal,
            "complete": counts.get("complete", 0), "lost": accepted - terminal, "timed_out": timed_out,
        })
        intake.progress(f"{deployment.name}: {rounds[-1]['steps_per_s']:.0f} steps/s, intake {rounds[-1]['intake_rps']:.0f} req/s")
    return rounds


def report(args, results, errors):
    print(f"# bench/burst.py, {date.today().isoformat()}, {platform.node()} ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end)")
    print()
    print(f"Command: `.venv/bin/python bench/burst.py --only {' '.join(args.only)} --submissions {args.submissions} --clients {args.clients} --steps {args.steps} --rounds {args.rounds}`")
    print()
    print(f"{args.submissions} submissions of a {args.steps}-step chain of `true` over HTTP from {args.clients} clients; steps/s from the first request to the last submission's end; medians of {args.rounds} round(s), range in brackets.")
    print()
    print("| mode | steps/s | intake req/s | POST p50 ms | POST p99 ms | accepted | terminal | complete | lost | target | met |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for mode, rounds in results.items():
        def figure(key, digits=0):
            values = [entry[key] for entry in rounds]
            middle = statistics.median(values)
            return f"{middle:.{digits}f}" + (f" ({min(values):.{digits}f}–{max(values):.{digits}f})" if len(values) > 1 else "")
        totals = {key: sum(entry[key] for entry in rounds) for key in ("accepted", "terminal", "complete", "lost")}
        rate = statistics.median(entry["steps_per_s"] for entry in rounds)
        met = rate >= TARGETS[mode] and totals["lost"] == 0 and totals["terminal"] == totals["accepted"]
        print(f"| {mode} | {figure('steps_per_s')} | {figure('intake_rps')} | {figure('p50_ms', 1)} | {figure('p99_ms', 1)} | "
              f"{totals['accepted']} | {totals['terminal']} | {totals['complete']} | {totals['lost']} | ≥ {TARGETS[mode]} steps/s | {'yes' if met else 'no'} |")
    for mode, error in errors.items():
        print(f"\n{mode} failed: {error}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=["embedded", "pg"], default=["embedded", "pg"])
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    intake.exit_on_signals()
    work = Path(tempfile.mkdtemp(prefix="sluice-burst-"))
    work.chmod(0o711)
    results, errors = {}, {}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        for mode in args.only:
            deployment = None
            try:
                deployment = Embedded(work, args.steps) if mode == "embedded" else OnPostgres(work, args.steps, stack)
                results[mode] = burst(deployment, args)
            except Exception as error:  # one mode failing must not lose the other's figures
                errors[mode] = str(error)
                intake.progress(f"{mode} failed: {error}")
            finally:
                if deployment is not None:
                    deployment.stop()
    report(args, results, errors)


if __name__ == "__main__":
    main()
