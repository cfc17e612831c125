#!/usr/bin/env python
"""Profile Sluice's per-step path: where a sequential job of `true` spends its time.

    .venv/bin/python bench/profile_step.py [--database sqlite|pg] [--steps 100] [--top 25]

Runs one STEPS-step chain the way a worker runs it (``processing.process`` on
the first node, which carries on down the chain by the fast path), in the
main thread, three times: plain (the per-step wall time), with timers on the
engine's functions (exclusive time per function: where the time goes), and
under cProfile with every SQL statement recorded by call site. Then times
submit + start of a 3-step job, as the throughput benchmark's client does.
With ``--database pg`` a throwaway PostgreSQL is started on loopback
(tests/realservers/servers.py); the broker is the stub either way (the chain
needs no message after the first). Changes nothing outside this process.
"""
import argparse
import cProfile
import io
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--top", type=int, default=25, help="rows of the cProfile listing")
    parser.add_argument("--callers", metavar="REGEX", help="also list the callers of functions matching REGEX (e.g. 'posix.stat')")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        return profile(args)
    sys.path.insert(0, str(ROOT))
    from tests.realservers.servers import Postgres, _as_postgres, _pg_bin

    work = Path(tempfile.mkdtemp(prefix="sluice-profile-"))
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "BROKER_URL")}
    env.update({"SLUICE_DATA_DIR": str(work), "SLUICE_LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings"})
    postgres = None
    try:
        if args.database == "pg":
            postgres = Postgres().start()
            createdb = [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", postgres.user, "sluice"]
            subprocess.run(_as_postgres(createdb), check=True, capture_output=True)
            env.update({"DATABASE_URL": postgres.url, "DATABASE_CONN_MAX_AGE": "60"})
        argv = [sys.executable, __file__, "--inner", "--database", args.database, "--steps", str(args.steps), "--top", str(args.top)]
        argv += ["--callers", args.callers] if args.callers else []
        return subprocess.call(argv, env=env, cwd=ROOT)
    finally:
        if postgres:
            postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


class Statements:
    """Record each SQL statement's time under (call site, verb and table)."""

    SITE = re.compile(r"/(execution|jobs)/")
    TABLE = re.compile(r'(?:FROM|UPDATE|INTO)\s+"?(\w+)"?', re.I)

    def __init__(self):
        self.by_key = defaultdict(lambda: [0, 0.0])
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            site = self._site(sys._getframe(1))
            table = self.TABLE.search(sql)
            key = (site, f"{sql.split()[0].upper()} {table.group(1) if table else ''}".strip())
            self.by_key[key][0] += 1
            self.by_key[key][1] += elapsed
            self.count += 1
            self.seconds += elapsed


    def _site(self, frame):
        """The innermost Sluice frame (execution/ or jobs/) that led to this statement."""
        while frame is not None:
            code = frame.f_code
            if self.SITE.search(code.co_filename):
                return f"{Path(code.co_filename).stem}.{code.co_name}:{frame.f_lineno}"
            frame = frame.f_back
        return "?"


class Timers:
    """Time chosen functions, inclusive and exclusive of the timed functions they call.

    Patches module or class attributes for the duration of a ``with`` block;
    exclusive times add up to the whole, so they say where the time goes.
    """

    def __init__(self, targets):
        self.targets = targets  # [(owner, attribute, label)]
        self.totals = defaultdict(lambda: [0, 0.0, 0.0])  # label -> [calls, inclusive, exclusive]
        self.stack = []
        self.saved = []

    def wrap(self, function, label):
        timers = self

        def timed(*args, **kwargs):
            callees = [0.0]  # time spent in timed functions this one calls
            timers.stack.append((label, callees))
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                total = time.perf_counter() - started
                timers.stack.pop()
                if timers.stack:
                    timers.stack[-1][1][0] += total
                entry = timers.totals[label]
                entry[0] += 1
                if all(outer != label for outer, _ in timers.stack):  # count a recursive label once
                    entry[1] += total
                entry[2] += total - callees[0]

        return timed

    def database(self, execute, sql, params, many, context):
        return self.wrap(execute, "database driver + server (cursor.execute)")(sql, params, many, context)

    def __enter__(self):
        for owner, attribute, label in self.targets:
            original = owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)
            self.saved.append((owner, attribute, original))
            setattr(owner, attribute, self.wrap(original, label))
        return self

    def __exit__(self, *exc):
        for owner, attribute, original in reversed(self.saved):
            setattr(owner, attribute, original)
        self.saved.clear()

    def report(self, steps):
        lines = [f"{'calls/step':>10} {'excl ms':>8} {'incl ms':>8}  (per step) function"]
        for label, (calls, inclusive, exclusive) in sorted(self.totals.items(), key=lambda item: -item[1][2]):
            lines.append(f"{calls / steps:10.2f} {exclusive / steps * 1000:8.3f} {inclusive / steps * 1000:8.3f}  {label}")
        total = sum(entry[2] for entry in self.totals.values())
        lines.append(f"{'':10} {total / steps * 1000:8.3f} {'':8}  (sum of exclusive times)")
        return "\n".join(lines)


def timer_targets():
    import shutil as shutil_module

    from django.db.models.sql import compiler

    from execution import dispatch, engine, lifecycle, logs, processes, processing, sandbox

    local = processes.LocalExecutor
    return [
        (engine, "run_node", "engine.run_node (rest: load node, Python)"),
        (processing, "_inline", "processing._inline (rest: find the next node)"),
        (dispatch, "send", "dispatch.send"),
        (lifecycle, "_node", "lifecycle: node transitions"),
        (lifecycle, "_submission", "lifecycle: submission transitions"),
        (engine, "record", "engine.record (message + last_message)"),
        (engine, "_attempt", "engine._attempt (rest: caching key)"),
        (engine, "_conclude", "engine._conclude (rest: judge, plan)"),
        (engine, "_prepare", "engine._prepare (parameters, environment, upload)"),
        (engine, "delete_results", "engine.delete_results"),
        (engine, "_replace_results", "engine._replace_results"),
        (engine, "advance", "engine.advance (rest: plan)"),
        (engine, "_advance_after", "engine._advance_after (successors)"),
        (engine, "_finish", "engine._finish"),
        (engine, "edge_keys", "engine.edge_keys"),
        (logs, "keep", "logs.keep (stdout/stderr)"),
        (local, "start", "LocalExecutor.start (rest: stage, render, env)"),
        (sandbox, "prepare_workdir", "sandbox.prepare_workdir"),
        (sandbox, "popen", "sandbox.popen (rest: rules, spawn thread)"),
        (processes.subprocess, "Popen", "subprocess.Popen (fork/exec)"),
        (local, "wait", "LocalExecutor.wait (the step itself)"),
        (local, "collect", "LocalExecutor.collect (rest: tail, control)"),
        (sandbox, "reclaim_workdir", "sandbox.reclaim_workdir"),
        (processes, "gather", "executors.gather"),
        (engine.watchdog, "add", "watchdog.add"),
        (engine.watchdog, "remove", "watchdog.remove"),
        (engine.watchdog, "started", "watchdog.started (handle noted)"),
        (shutil_module, "rmtree", "shutil.rmtree (work dir)"),
        (compiler.SQLCompiler, "execute_sql", "ORM: compile SQL, fetch rows"),
        (compiler.SQLInsertCompiler, "execute_sql", "ORM: compile SQL, fetch rows"),
        (compiler.SQLUpdateCompiler, "execute_sql", "ORM: compile SQL, fetch rows"),
    ]


def profile(args):
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from execution import dispatch, engine
    from execution.models import Submission
    from jobs.models import Job
    from tests.factories import make_job, make_task

    call_command("migrate", verbosity=0)
    task = make_task("bench_true", "true")
    job = make_job("bench_chain", steps=[(f"s{index:03d}", task, {"ordering": index}) for index in range(args.steps)])
    warm = make_job("bench_warm", steps=[(f"s{index}", task, {"ordering": index}) for index in range(3)])
    dispatch.serve(None)
    run_chain(engine, dispatch, warm)  # warm caches and the connection
    job = Job.objects.get(pk=job.pk)

    started = time.perf_counter()
    run_chain(engine, dispatch, job)
    plain = time.perf_counter() - started
    timers = Timers(timer_targets())
    with timers, connection.execute_wrapper(timers.database):
        started = time.perf_counter()
        run_chain(engine, dispatch, job)
        timed = time.perf_counter() - started
    statements = Statements()
    profiler = cProfile.Profile()
    with connection.execute_wrapper(statements):
        started = time.perf_counter()
        profiler.enable()
        submission_id = run_chain(engine, dispatch, job)
        profiler.disable()
        wall = time.perf_counter() - started
    status = Submission.objects.get(pk=submission_id).status
    short = Job.objects.get(name="bench_warm")
    submit_statements = Statements()
    with connection.execute_wrapper(submit_statements):
        started = time.perf_counter()
        for _ in range(20):
            dispatch.start(engine.submit(short))
        submit_wall = (time.perf_counter() - started) / 20
    vendor = connection.vendor
    steps = args.steps
    print(f"# {steps}-step chain on {vendor}, run in one thread: {plain / steps * 1000:.2f} ms per step without instrumentation")
    print(f"# the same with timers: {timed / steps * 1000:.2f} ms per step; exclusive time per function:\n")
    print(timers.report(steps) + "\n")
    print(f"# the same under cProfile: {status}; {wall / steps * 1000:.2f} ms per step (wall)")
    print(f"# {statements.count / steps:.1f} SQL statements per step, {statements.seconds / steps * 1000:.2f} ms per step in them\n")
    print(f"{'per step':>9} {'ms/step':>8}  call site / statement")
    for (site, what), (count, seconds) in sorted(statements.by_key.items(), key=lambda item: -item[1][1]):
        print(f"{count / steps:9.2f} {seconds / steps * 1000:8.3f}  {site}  {what}")
    print(f"\n# submit + start of a 3-step job (as the benchmark client does): {submit_wall * 1000:.2f} ms, "
          f"{submit_statements.count / 20:.1f} statements, {submit_statements.seconds / 20 * 1000:.2f} ms in them\n")
    for (site, what), (count, seconds) in sorted(submit_statements.by_key.items(), key=lambda item: -item[1][1]):
        print(f"{count / 20:9.2f} {seconds / 20 * 1000:8.3f}  {site}  {what}")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"/(execution|jobs)/", args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    if args.callers:
        stats.print_callers(args.callers)
    print(out.getvalue())


def run_chain(engine, dispatch, job):
    """Submit ``job`` and run it to the end in this thread, as a worker runs one message."""
    from execution import processing

    submission = engine.submit(job)
    first = submission.ready
    for node_id in first:
        processing.process(node_id)
    return submission.pk


if __name__ == "__main__":
    sys.exit(main())
