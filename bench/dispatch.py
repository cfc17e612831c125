#!/usr/bin/env python
"""Benchmark Sluice's dispatch overhead against a shell loop, Celery and plain Dramatiq, on Redis and RabbitMQ.

    .venv/bin/python bench/dispatch.py [--steps 100] [--submissions 200] [--repeat 5] [--tp-repeat 3]

Measures, side by side in one run:

1. per-step time of a STEPS-step sequential job whose every step is `true`:
   the floor (the commands in one Python loop), Sluice embedded (SQLite, stub
   broker, in-process worker as `manage.py up` runs it), Sluice on PostgreSQL +
   Redis and on PostgreSQL + RabbitMQ (each with a real
   `manage.py worker --processes 2 --threads 2`; with both, one repeat on
   each in turn, so that a shared machine's load falls on both), a Celery chain
   (Redis, two `--pool solo` workers) and a self-chaining Dramatiq actor (Redis,
   `dramatiq --processes 2 --threads 2`);
2. throughput: SUBMISSIONS concurrent 3-step submissions, in steps per second
   from the first submit to the last completion, for the same systems.

Django reads its settings from the environment at import, so each Sluice mode
runs in its own child process (`--mode embedded|setup|client`, internal) that
prints its figures as one JSON line. PostgreSQL, Redis and RabbitMQ are throwaway servers
on loopback (tests/realservers/servers.py). Everything this script starts is
stopped when it ends, also on Ctrl-C, SIGTERM or an error. Progress goes to
stderr, the Markdown report to stdout. See docs/performance.md.
"""
import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PYTHON = sys.executable
RESULT_PREFIX = "BENCH-RESULT "
TERMINAL = ("complete", "error", "crash", "cancelled")
SHELL_STEP = ["/bin/bash", "-c", "true"]  # how Sluice runs a shell step (executors.SHELL -c LINE)
WORKER_START_TIMEOUT = 90  # seconds for a worker process to take its first message
RUN_TIMEOUT = 300  # seconds for one measured run


def progress(text):
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def median(values):
    return statistics.median(values) if values else None


# --- the floor ----------------------------------------------------------------


def measure_floor(figures, steps, repeat, when):
    """Add ``repeat`` samples of the per-step seconds of running the commands in one Python loop.

    The floor is sampled before each system as well as at the start, so that its
    median spans the whole run, as the load on a shared machine does.
    """
    for label, argv in (("floor_bash", SHELL_STEP), ("floor_true", ["true"])):
        runs = figures.setdefault(label, {"per_step": []})["per_step"]
        for number in range(1, repeat + 1):
            progress(f"floor {' '.join(argv)!r} ({when}): repeat {number}/{repeat}")
            started = time.perf_counter()
            for _ in range(steps):
                subprocess.run(argv, check=True)
            runs.append((time.perf_counter() - started) / steps)
    return figures


# --- Sluice, inside a child process with its own Django settings ---------------


def child(args):
    """Run one Sluice mode in this process and print its figures as a JSON line."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    if args.mode == "setup":
        make_jobs(args.steps)
        result = {}
    elif args.mode == "embedded":
        result = run_embedded(args)
    elif args.mode == "client":
        result = run_rounds(args, os.environ.get("BENCH_LABEL", "Sluice PostgreSQL"))
    else:
        raise SystemExit(f"unknown --mode {args.mode!r}")
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def make_jobs(steps):
    """Create the STEPS-step chain and the 3-step chain of `true` (once)."""
    from jobs.models import Job
    from tests.factories import make_job, make_task

    if Job.objects.filter(name=f"bench_chain_{steps}").exists():
        return
    task = make_task("bench_true", "true")
    for length in sorted({steps, 3}):
        make_job(f"bench_chain_{length}", steps=[(f"s{index:03d}", task, {"ordering": index}) for index in range(length)])


def run_embedded(args):
    """As `manage.py up` does: SQLite, the stub broker and an in-process worker with 4 threads."""
    from django.core.management import call_command

    from execution import workers

    progress("Sluice embedded: migrating a fresh SQLite database")
    call_command("migrate", verbosity=0)
    make_jobs(args.steps)
    result = {"executor_only": measure_executor(args.steps, args.repeat)}
    worker = workers.start_worker(None, threads=4)
    loop = workers.ReconcileLoop()
    loop.start()
    try:
        result.update(run_rounds(args, "Sluice embedded"))
    finally:
        loop.stop()
        workers.stop_worker(worker)
    return result


def measure_executor(steps, repeat):
    """Per-step seconds of Sluice's executor alone (work dir, files, spawn, gather), no database."""
    from django.conf import settings

    from execution import executors

    runs = []
    for number in range(1, repeat + 1):
        progress(f"Sluice executor alone: repeat {number}/{repeat}")
        started = time.perf_counter()
        for index in range(steps):
            workdir = Path(settings.SLUICE_WORK_DIR) / "executor-only" / str(index)
            run = executors.NodeRun(behaviour="localhost", executable="true", workdir=workdir, file_id="x", in_endings=[], out_endings=[])
            executors.execute(run)
            shutil.rmtree(workdir, ignore_errors=True)
        runs.append((time.perf_counter() - started) / steps)
    return {"per_step": runs}


def run_rounds(args, label):
    """Warm up, then the per-step repeats and the throughput repeats; return their figures."""
    from jobs.models import Job

    chain = Job.objects.get(name=f"bench_chain_{args.steps}")
    short = Job.objects.get(name="bench_chain_3")
    progress(f"{label}: warm-up (a 3-step submission; waits for the worker)")
    submit_and_wait([short], poll=0.01, timeout=WORKER_START_TIMEOUT)
    per_step, submit_times, spans, breakdowns = [], [], [], []
    for number in range(1, args.repeat + 1):
        progress(f"{label}: {args.steps}-step chain, repeat {number}/{args.repeat}")
        wall, submit_time, ids = submit_and_wait([chain], poll=0.01)
        per_step.append(wall / args.steps)
        submit_times.append(submit_time)
        spans.append(db_span(ids[0]) / args.steps)
        breakdowns.append(node_breakdown(ids[0]))
    throughput, tp_walls, tp_submit = [], [], []
    for number in range(1, args.tp_repeat + 1):
        progress(f"{label}: {args.submissions} submissions of 3 steps, repeat {number}/{args.tp_repeat}")
        wall, submit_time, _ = submit_and_wait([short] * args.submissions, poll=0.02)
        throughput.append(3 * args.submissions / wall)
        tp_walls.append(wall)
        tp_submit.append(submit_time)
    return {
        "sluice": {
            "per_step": per_step,
            "submit_seconds": submit_times,
            "db_per_step": spans,
            "in_node": [b["in_node"] for b in breakdowns],
            "between_nodes": [b["between"] for b in breakdowns],
        },
        "sluice_tp": {"steps_per_second": throughput, "wall": tp_walls, "submit_seconds": tp_submit},
    }


def submit_and_wait(jobs, poll, timeout=RUN_TIMEOUT):
    """Submit each job and start it; wait until all are terminal. Return (wall, submit time, ids).

    Raises:
        RuntimeError: a submission did not complete, or the runs took longer than ``timeout``.
    """
    from execution import dispatch, engine
    from execution.models import Submission

    started = time.perf_counter()
    ids = []
    for job in jobs:
        submission = engine.submit(job)
        dispatch.start(submission)
        ids.append(submission.pk)
    submitted = time.perf_counter()
    pending = Submission.objects.filter(pk__in=ids).exclude(status__in=TERMINAL)
    while pending.exists():
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{pending.count()} of {len(ids)} submissions still unfinished after {timeout} s")
        time.sleep(poll)
    finished = time.perf_counter()
    failed = Submission.objects.filter(pk__in=ids).exclude(status="complete")
    if failed.exists():
        first = failed.first()
        raise RuntimeError(f"submission {first.pk} ended {first.status}: {first.last_message}")
    return finished - started, submitted - started, ids


def db_span(submission_id):
    """Seconds from the submission's row being created to its finish, as the database saw it."""
    from execution.models import Submission

    submission = Submission.objects.get(pk=submission_id)
    return (submission.finished_at - submission.created_at).total_seconds()


def node_breakdown(submission_id):
    """Mean seconds a node spends claimed (start to finish) and between one node's finish and the next's start."""
    from execution.models import Node

    nodes = list(Node.objects.filter(submission_id=submission_id).order_by("key").values("started_at", "finished_at"))
    in_node = [(n["finished_at"] - n["started_at"]).total_seconds() for n in nodes]
    between = [(b["started_at"] - a["finished_at"]).total_seconds() for a, b in zip(nodes, nodes[1:])]
    return {"in_node": statistics.mean(in_node), "between": statistics.mean(between) if between else 0.0}


# --- processes this script starts ----------------------------------------------


class Processes:
    """Start long-lived processes in their own process groups; stop them all at the end."""

    def __init__(self, logs):
        self.logs = logs
        self.started = []

    def start(self, name, argv, env, cwd=ROOT):
        log = open(self.logs / f"{name}.log", "w")
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        process.name, process.log_path = name, log.name
        self.started.append(process)
        return process

    def stop(self, process, grace=20.0):
        """SIGTERM the group leader (each CLI stops its own children), then SIGKILL what is left."""
        sys.path.insert(0, str(BENCH))
        from intake import stop_process

        stop_process(process, f"{process.name} (pid {process.pid})", grace)
        if process in self.started:
            self.started.remove(process)

    def stop_all(self):
        for process in reversed(list(self.started)):
            self.stop(process)


def run_child(mode, args, env, processes):
    """Run `dispatch.py --mode MODE` with ``env``; return its JSON figures."""
    argv = [PYTHON, str(Path(__file__).resolve()), "--mode", mode, "--steps", str(args.steps), "--submissions", str(args.submissions)]
    argv += ["--repeat", str(args.repeat), "--tp-repeat", str(args.tp_repeat)]
    # Its own session, so a Ctrl-C reaches only this script, which then stops it.
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    process.name = f"child {mode}"
    processes.started.append(process)
    try:
        out, _ = process.communicate(timeout=RUN_TIMEOUT * (args.repeat + args.tp_repeat + 2))
    finally:
        processes.stop(process, grace=5)
    lines = [line for line in out.splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"the {mode} child exited with {process.returncode} and no result (see its stderr above)")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def sluice_env(data_dir, **extra):
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "BROKER_URL", "DJANGO_SETTINGS_MODULE")}
    env.update({"SLUICE_DATA_DIR": str(data_dir), "SLUICE_LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings"})
    env.update(extra)
    return env


def bench_embedded(args, work, processes):
    return run_child("embedded", args, sluice_env(work / "embedded", BROKER_URL=""), processes)


def bench_sluice_pg(args, work, processes, postgres, broker_url, broker_name="Redis", database="sluice"):
    """Sluice on PostgreSQL and the broker at ``broker_url``, in a database of its own (``database``)."""
    env, worker = start_sluice_pg(args, work, processes, postgres, broker_url, broker_name, database)
    try:
        return run_child("client", args, env, processes)
    finally:
        processes.stop(worker)


def bench_brokers(args, work, processes, postgres, redis_url, stack):
    """Sluice on PostgreSQL + Redis and on PostgreSQL + RabbitMQ, round by round in turn.

    Both stacks are up at once (idle, a worker costs next to nothing) and each
    round measures one repeat on each, the first broker alternating, so that
    a shared machine's changing load falls on both alike.
    """
    from tests.realservers.servers import RabbitMQ

    progress("starting a throwaway RabbitMQ on loopback (about 5 s)")
    server = RabbitMQ().start()
    stack.callback(server.stop)
    stacks = {
        "pg": start_sluice_pg(args, work, processes, postgres, redis_url, "Redis", "sluice"),
        "rabbit": start_sluice_pg(args, work, processes, postgres, server.url, "RabbitMQ", "sluice_rabbitmq"),
    }
    merged = {"pg": {}, "rabbit": {}}
    try:
        for number in range(max(args.repeat, args.tp_repeat)):
            one = argparse.Namespace(**{**vars(args), "repeat": int(number < args.repeat), "tp_repeat": int(number < args.tp_repeat)})
            for name in (("pg", "rabbit") if number % 2 == 0 else ("rabbit", "pg")):
                progress(f"round {number + 1}: {name}")
                figures = run_child("client", one, stacks[name][0], processes)
                for part, values in figures.items():
                    for key, runs in values.items():
                        merged[name].setdefault(part, {}).setdefault(key, []).extend(runs)
    finally:
        for _, worker in stacks.values():
            processes.stop(worker)
    return merged


def start_sluice_pg(args, work, processes, postgres, broker_url, broker_name, database):
    """Create and migrate ``database``, make the jobs, start a worker on ``broker_url``; return (env, worker)."""
    from tests.realservers.servers import _as_postgres, _pg_bin

    label = f"Sluice PostgreSQL+{broker_name}"
    progress(f"{label}: creating the database and migrating")
    createdb = [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", postgres.user, database]
    subprocess.run(_as_postgres(createdb), check=True, capture_output=True)
    database_url = postgres.url.rsplit("/", 1)[0] + f"/{database}"
    env = sluice_env(work / database, DATABASE_URL=database_url, BROKER_URL=broker_url, DATABASE_CONN_MAX_AGE="60", BENCH_LABEL=label)
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True)
    # The jobs (and so their queue type) must exist before the worker starts: it consumes the
    # queues of the queue types it finds at start-up.
    run_child("setup", args, env, processes)
    worker = processes.start(f"sluice-worker-{database}", [PYTHON, "manage.py", "worker", "--processes", "2", "--threads", "2"], env)
    return env, worker


def bench_rabbit(args, work, processes, postgres, stack):
    """Sluice on PostgreSQL + a throwaway RabbitMQ node, as bench_sluice_pg does it on Redis."""
    from tests.realservers.servers import RabbitMQ

    progress("starting a throwaway RabbitMQ on loopback (about 5 s)")
    server = RabbitMQ().start()
    stack.callback(server.stop)
    return bench_sluice_pg(args, work, processes, postgres, server.url, "RabbitMQ", "sluice_rabbitmq")


# --- Celery and plain Dramatiq, driven from this process -----------------------


def bench_celery(args, processes, redis_url):
    try:
        import celery  # noqa: F401
    except ImportError:
        progress("Celery is not installed, skipping it: .venv/bin/pip install -r bench/requirements.txt")
        return None
    os.environ["BENCH_CELERY_URL"] = redis_url
    sys.path.insert(0, str(BENCH))
    import celery_chain

    env = {**os.environ, "BENCH_CELERY_URL": redis_url, "PYTHONPATH": str(BENCH)}
    workers = []
    for number in (1, 2):
        argv = [PYTHON, "-m", "celery", "-A", "celery_chain", "worker", "--pool", "solo", "--concurrency", "1", "-Q", celery_chain.QUEUE]
        argv += ["-n", f"bench{number}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"]
        workers.append(processes.start(f"celery-worker-{number}", argv, env, cwd=BENCH))
    try:
        return run_chains("Celery chain", args, redis_url, lambda total, token: celery_chain.start_chain(total, token))
    finally:
        for worker in workers:
            processes.stop(worker)


def bench_dramatiq(args, processes, redis_url):
    os.environ["BENCH_DRAMATIQ_URL"] = redis_url
    sys.path.insert(0, str(BENCH))
    import dramatiq_chain

    env = {**os.environ, "BENCH_DRAMATIQ_URL": redis_url}
    argv = [PYTHON, "-m", "dramatiq", "dramatiq_chain", "--path", str(BENCH), "--processes", "2", "--threads", "2"]
    worker = processes.start("dramatiq-worker", argv, env, cwd=BENCH)
    try:
        return run_chains("Dramatiq chain", args, redis_url, lambda total, token: dramatiq_chain.step.send(0, total, token))
    finally:
        processes.stop(worker)


def run_chains(label, args, redis_url, send):
    """Time chains sent with ``send(total, token)``, whose last step pushes to bench:done:<token>."""
    import redis

    client = redis.Redis.from_url(redis_url)

    def wait(token, count, timeout):
        for _ in range(count):
            if client.blpop(f"bench:done:{token}", timeout=timeout) is None:
                raise RuntimeError(f"{label}: a chain did not finish within {timeout} s (see the worker's log)")

    progress(f"{label}: warm-up (a 3-step chain; waits for the workers)")
    token = uuid.uuid4().hex
    send(3, token)
    wait(token, 1, WORKER_START_TIMEOUT)
    per_step = []
    for number in range(1, args.repeat + 1):
        progress(f"{label}: {args.steps}-step chain, repeat {number}/{args.repeat}")
        token = uuid.uuid4().hex
        started = time.perf_counter()
        send(args.steps, token)
        wait(token, 1, RUN_TIMEOUT)
        per_step.append((time.perf_counter() - started) / args.steps)
    throughput, walls, submits = [], [], []
    for number in range(1, args.tp_repeat + 1):
        progress(f"{label}: {args.submissions} chains of 3 steps, repeat {number}/{args.tp_repeat}")
        token = uuid.uuid4().hex
        started = time.perf_counter()
        for _ in range(args.submissions):
            send(3, token)
        submits.append(time.perf_counter() - started)
        wait(token, args.submissions, RUN_TIMEOUT)
        walls.append(time.perf_counter() - started)
        throughput.append(3 * args.submissions / walls[-1])
    return {"per_step": per_step, "tp": {"steps_per_second": throughput, "wall": walls, "submit_seconds": submits}}


# --- the run and its report ------------------------------------------------------


def orchestrate(args):
    began = time.perf_counter()
    load = [os.getloadavg()[0]]
    # SIGTERM (and SIGHUP) end the run like Ctrl-C does, through the clean-up below.
    def stop(signum, frame):
        progress(f"got {signal.Signals(signum).name}; stopping everything started")
        sys.exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    sys.path.insert(0, str(ROOT))
    from tests.realservers.servers import Postgres, Redis

    results, errors = {}, {}
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    # mkdtemp makes it 0700; with the sandbox on, steps run as SLUICE_STEP_USER, which must be able
    # to pass through it to their working directories (it still cannot list it).
    os.chmod(work, 0o711)
    logs = work / "logs"
    logs.mkdir()
    processes = Processes(logs)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        stack.callback(processes.stop_all)
        measure_floor(results, args.steps, args.repeat, "at the start")

        def attempt(name, function, *extra):
            measure_floor(results, args.steps, 1, f"before {name}")
            try:
                results[name] = function(args, *extra)
            except Exception as error:  # one system failing must not lose the others' figures
                errors[name] = str(error)
                progress(f"{name} failed: {error}")

        if "embedded" in args.only:
            attempt("embedded", bench_embedded, work, processes)
        postgres = None
        if {"pg", "rabbit"} & set(args.only):
            progress("starting a throwaway PostgreSQL on loopback")
            postgres = Postgres().start()
            stack.callback(postgres.stop)
        if {"pg", "celery", "dramatiq"} & set(args.only):
            progress("starting a throwaway Redis on loopback")
            redis_server = Redis().start()
            stack.callback(redis_server.stop)
            base = redis_server.url.rsplit("/", 1)[0]
            if {"pg", "rabbit"} <= set(args.only):  # round by round in turn, so that both see the same load
                measure_floor(results, args.steps, 1, "before pg and rabbit")
                try:
                    results.update(bench_brokers(args, work, processes, postgres, f"{base}/0", stack))
                except Exception as error:
                    errors["pg and rabbit"] = str(error)
                    progress(f"pg and rabbit failed: {error}")
            elif "pg" in args.only:
                attempt("pg", bench_sluice_pg, work, processes, postgres, f"{base}/0")
            elif "rabbit" in args.only:
                attempt("rabbit", bench_rabbit, work, processes, postgres, stack)
            if "celery" in args.only:
                attempt("celery", bench_celery, processes, f"{base}/1")
            if "dramatiq" in args.only:
                attempt("dramatiq", bench_dramatiq, processes, f"{base}/2")
        elif "rabbit" in args.only:
            attempt("rabbit", bench_rabbit, work, processes, postgres, stack)
        if errors and logs.exists():
            keep = Path(tempfile.mkdtemp(prefix="sluice-bench-logs-"))
            shutil.copytree(logs, keep, dirs_exist_ok=True)
            progress(f"worker logs kept in {keep}")
    elapsed = time.perf_counter() - began
    progress(f"done in {elapsed:.0f} s")
    load.append(os.getloadavg()[0])
    report = render(args, results, errors, elapsed, load)
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "errors": errors, "elapsed": elapsed, "load": load}, indent=2))
    return 1 if errors else 0


def ms(seconds):
    return "—" if seconds is None else f"{seconds * 1000:.2f}"


def render(args, results, errors, elapsed, load):
    """The Markdown report: per-step table, throughput table, targets."""
    floor = median(results["floor_bash"]["per_step"])
    embedded, pg, rabbit = results.get("embedded") or {}, results.get("pg") or {}, results.get("rabbit") or {}
    celery, dramatiq = results.get("celery") or {}, results.get("dramatiq") or {}

    def row(label, runs, note=""):
        if not runs:
            return f"| {label} | failed or skipped | | | | {note} |"
        value = median(runs)
        return f"| {label} | {ms(value)} | {ms(min(runs))}–{ms(max(runs))} | {value / floor:.1f}× | {ms(value - floor)} | {note} |"

    def sluice_note(figures):
        if not figures:
            return ""
        s = figures["sluice"]
        return f"in node {ms(median(s['in_node']))}, between nodes {ms(median(s['between_nodes']))}, submit {median(s['submit_seconds']) * 1000:.0f} ms"

    lines = [
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}; {date.today().isoformat()}.",
        f"Command: `.venv/bin/python bench/dispatch.py --steps {args.steps} --submissions {args.submissions} --repeat {args.repeat} --tp-repeat {args.tp_repeat}`",
        f"Full run took {elapsed:.0f} s; 1-minute load average {load[0]:.2f} at the start, {load[-1]:.2f} at the end.",
        "",
        f"### Per step: a {args.steps}-step sequential job of `true` (median of {args.repeat})",
        "",
        "| system | ms per step | range (ms) | × floor | over floor (ms) | notes |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        row("floor: Python loop, `bash -c true`", results["floor_bash"]["per_step"], f"{len(results['floor_bash']['per_step'])} samples across the run"),
        row("floor: Python loop, `true`", results["floor_true"]["per_step"], f"{len(results['floor_true']['per_step'])} samples across the run"),
        row("Sluice executor alone (no database)", (embedded.get("executor_only") or {}).get("per_step")),
        row("Sluice embedded (SQLite, stub broker, 4 threads)", (embedded.get("sluice") or {}).get("per_step"), sluice_note(embedded)),
        row("Sluice PostgreSQL + Redis (worker 2×2)", (pg.get("sluice") or {}).get("per_step"), sluice_note(pg)),
        row("Sluice PostgreSQL + RabbitMQ (worker 2×2)", (rabbit.get("sluice") or {}).get("per_step"), sluice_note(rabbit)),
        row("Celery 5 chain (Redis, 2 solo workers)", celery.get("per_step")),
        row("Dramatiq self-chaining actor (Redis, 2×2)", dramatiq.get("per_step")),
        "",
        f"### Throughput: {args.submissions} concurrent 3-step submissions (median of {args.tp_repeat})",
        "",
        "| system | steps/s | range | wall (s) | of which submitting (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, figures in (
        ("Sluice embedded", embedded.get("sluice_tp")),
        ("Sluice PostgreSQL + Redis", pg.get("sluice_tp")),
        ("Sluice PostgreSQL + RabbitMQ", rabbit.get("sluice_tp")),
        (f"Celery ({args.submissions} chains of 3)", celery.get("tp")),
        (f"Dramatiq ({args.submissions} chains of 3)", dramatiq.get("tp")),
    ):
        if not figures:
            lines.append(f"| {label} | failed or skipped | | | |")
            continue
        rates = figures["steps_per_second"]
        lines.append(
            f"| {label} | {median(rates):.0f} | {min(rates):.0f}–{max(rates):.0f} | {median(figures['wall']):.2f} | {median(figures['submit_seconds']):.2f} |"
        )
    lines += ["", "### Ratios", ""]
    lines += ratios(floor, embedded, pg, celery, dramatiq, rabbit)
    lines += ["", "### Targets", ""]
    lines += targets(floor, embedded, pg, celery)
    if errors:
        lines += ["", "### Errors", ""] + [f"- {name}: {text}" for name, text in errors.items()]
    return "\n".join(lines)


def ratios(floor, embedded, pg, celery, dramatiq, rabbit):
    """Per-step and throughput ratios between the systems, where both figures exist."""
    step = {
        "Sluice embedded": median((embedded.get("sluice") or {}).get("per_step", [])),
        "Sluice PostgreSQL+Redis": median((pg.get("sluice") or {}).get("per_step", [])),
        "Sluice PostgreSQL+RabbitMQ": median((rabbit.get("sluice") or {}).get("per_step", [])),
    }
    others = {"Celery chain": median(celery.get("per_step", [])), "Dramatiq chain": median(dramatiq.get("per_step", []))}
    out = []
    for name, value in step.items():
        if value is None:
            continue
        parts = [f"{value / floor:.1f}× the floor ({ms(value - floor)} ms over it)"]
        parts += [f"{value / other:.2f}× {other_name}" for other_name, other in others.items() if other]
        out.append(f"- {name} per step: " + ", ".join(parts))
    rates = {
        "Sluice embedded": (embedded.get("sluice_tp") or {}).get("steps_per_second"),
        "Sluice PostgreSQL+Redis": (pg.get("sluice_tp") or {}).get("steps_per_second"),
        "Sluice PostgreSQL+RabbitMQ": (rabbit.get("sluice_tp") or {}).get("steps_per_second"),
    }
    celery_rate = median((celery.get("tp") or {}).get("steps_per_second", []))
    for name, values in rates.items():
        if values and celery_rate:
            out.append(f"- {name} throughput: {median(values) / celery_rate:.2f}× Celery's")
    on_redis, on_rabbit = step["Sluice PostgreSQL+Redis"], step["Sluice PostgreSQL+RabbitMQ"]
    if on_redis and on_rabbit:
        line = f"- RabbitMQ vs Redis per step: {ms(on_rabbit)} ms vs {ms(on_redis)} ms, {on_rabbit / on_redis:.2f}×"
        if rates["Sluice PostgreSQL+Redis"] and rates["Sluice PostgreSQL+RabbitMQ"]:
            line += f"; throughput {median(rates['Sluice PostgreSQL+RabbitMQ']) / median(rates['Sluice PostgreSQL+Redis']):.2f}× Redis's"
        out.append(line)
    return out or ["- not enough figures"]


def targets(floor, embedded, pg, celery):
    def verdict(ok):
        return "**met**" if ok else "**not met**"

    out = []
    value = median((embedded.get("sluice") or {}).get("per_step", []))
    if value is not None:
        out.append(f"- Embedded per step ≤ floor + 3 ms: {ms(value)} ms vs {ms(floor + 0.003)} ms (floor + {ms(value - floor)} ms): {verdict(value <= floor + 0.003)}")
    value, reference = median((pg.get("sluice") or {}).get("per_step", [])), median(celery.get("per_step", []))
    if value is not None and reference is not None:
        out.append(f"- PostgreSQL+Redis per step ≤ ½ Celery chain's: {ms(value)} ms vs {ms(reference / 2)} ms (ratio {value / reference:.2f}): {verdict(value <= reference / 2)}")
    for label, figures in (("embedded", embedded), ("PostgreSQL+Redis", pg)):
        rates = (figures.get("sluice_tp") or {}).get("steps_per_second")
        if rates:
            out.append(f"- Throughput ≥ 150 steps/s, {label}: {median(rates):.0f} steps/s: {verdict(median(rates) >= 150)}")
    return out or ["- no Sluice figures"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="steps in the sequential job (default 100)")
    parser.add_argument("--submissions", type=int, default=200, help="concurrent 3-step submissions for throughput (default 200)")
    parser.add_argument("--repeat", type=int, default=5, help="repeats of the per-step measurement (default 5)")
    parser.add_argument("--tp-repeat", type=int, default=3, help="repeats of the throughput measurement (default 3)")
    systems = ("embedded", "pg", "rabbit", "celery", "dramatiq")
    parser.add_argument("--only", nargs="+", choices=systems, default=list(systems), help="systems to run (default: all; the floor always runs)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    parser.add_argument("--mode", choices=("embedded", "setup", "client"), help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = parse_args()
    if args.mode:
        return child(args)
    try:
        return orchestrate(args)
    except KeyboardInterrupt:
        progress("interrupted; everything started was stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
