#!/usr/bin/env python
"""Benchmark Sluice's dispatch overhead against a shell loop, Celery and Dramatiq, on Redis and RabbitMQ.

    .venv/bin/python bench/dispatch.py [--steps 100] [--submissions 200] [--repeat 5] [--tp-repeat 3] [--only SYSTEM ...]

Measures, side by side in one run:

1. per-step time of a STEPS-step sequential job whose every step is `true`:
   the floor (the commands in one Python loop), Sluice embedded (SQLite, stub
   broker, in-process worker as `manage.py up` runs it), Sluice on PostgreSQL +
   Redis and on PostgreSQL + RabbitMQ (each with a real
   `manage.py worker --processes 2 --threads 2`), and four peers, each a chain
   of the same steps:
   - celery: a Celery chain on Redis, no result backend, two `--pool solo`
     workers (bench/celery_chain.py);
   - celery-aa: the same chain as Analytics Automated ran it, with a Redis
     result backend, `task_acks_late=True` and `worker_prefetch_multiplier=1`
     (why these, in bench/celery_chain.py);
   - dramatiq: a self-chaining Dramatiq actor on Redis,
     `dramatiq --processes 2 --threads 2` (bench/dramatiq_chain.py);
   - dramatiq-pg: the same actor committing one row per step to a table of
     its own on the PostgreSQL server Sluice's PostgreSQL modes use, before it
     sends the next step: the durable floor (bench/dramatiq_pg_chain.py);
2. throughput: SUBMISSIONS concurrent 3-step submissions, in steps per second
   from the first submit to the last completion, for the same systems.

Every chosen system is started first; then each of max(REPEAT, TP_REPEAT)
rounds runs one per-step repeat and one throughput repeat of every system in
turn, starting with a different system each round, so that a shared
machine's changing load falls on all of them alike. The report compares
Sluice (embedded, PostgreSQL + Redis) with every peer and says which targets
it met: per step PostgreSQL + Redis ≤ 1.0× and embedded ≤ 0.6× the bare
Celery chain's; throughput embedded ≥ 1.0× and PostgreSQL + Redis ≥ 0.8× its.

Django reads its settings from the environment at import, so each Sluice mode
runs in its own child process (`--mode embedded|setup|client`, internal) that
prints its figures as one JSON line. PostgreSQL, Redis and RabbitMQ are throwaway servers
on loopback (tests/realservers/servers.py). Everything this script starts is
stopped when it ends, also on Ctrl-C, SIGTERM or an error. Progress goes to
stderr, the Markdown report to stdout. See docs/performance.md.
"""
import argparse
import concurrent.futures
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

    The floor is sampled before each round as well as at the start, so that its
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

    progress("Sluice embedded: migrating its SQLite database (fresh in the first round)")
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
        submission = engine.submit(engine.job_by_name(job.name))  # looked up as the front door does (jobs/catalogue.py)
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
        """Stop every process at once: each takes its own grace period, and there are up to a dozen."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(self.started))) as pool:
            list(pool.map(self.stop, reversed(list(self.started))))


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


# --- the systems: each started once, then measured one round at a time ------------
#
# A start function brings a system up (its database, its workers) and returns a function
# that measures one round: ``measure(args)`` with ``args.repeat`` and ``args.tp_repeat`` of
# 0 or 1, returning that round's figures, which the rounds' figures are merged into.

SLUICE = ("embedded", "pg", "rabbit")
PEERS = ("celery", "celery-aa", "dramatiq", "dramatiq-pg")
SYSTEMS = SLUICE + PEERS
REDIS_DATABASE = {"pg": 0, "celery": 1, "dramatiq": 2, "celery-aa": 3, "dramatiq-pg": 4}


def start_embedded(args, work, processes, servers):
    env = sluice_env(work / "embedded", BROKER_URL="")
    return lambda one: run_child("embedded", one, env, processes)


def start_pg(args, work, processes, servers):
    env, _ = start_sluice_pg(args, work, processes, servers["postgres"], servers.redis_url("pg"), "Redis", "sluice")
    return lambda one: run_child("client", one, env, processes)


def start_rabbit(args, work, processes, servers):
    env, _ = start_sluice_pg(args, work, processes, servers["postgres"], servers["rabbitmq"].url, "RabbitMQ", "sluice_rabbitmq")
    return lambda one: run_child("client", one, env, processes)


def start_sluice_pg(args, work, processes, postgres, broker_url, broker_name, database):
    """Create and migrate ``database``, make the jobs, start a worker on ``broker_url``; return (env, worker)."""
    label = f"Sluice PostgreSQL+{broker_name}"
    progress(f"{label}: creating the database and migrating")
    database_url = createdb(postgres, database)
    env = sluice_env(work / database, DATABASE_URL=database_url, BROKER_URL=broker_url, DATABASE_CONN_MAX_AGE="60", BENCH_LABEL=label)
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True)
    # The jobs (and so their queue type) must exist before the worker starts: it consumes the
    # queues of the queue types it finds at start-up.
    run_child("setup", args, env, processes)
    worker = processes.start(f"sluice-worker-{database}", [PYTHON, "manage.py", "worker", "--processes", "2", "--threads", "2"], env)
    return env, worker


def createdb(postgres, database):
    """Create ``database`` on the throwaway PostgreSQL; return its URL."""
    from tests.realservers.servers import _as_postgres, _pg_bin

    argv = [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", postgres.user, database]
    subprocess.run(_as_postgres(argv), check=True, capture_output=True)
    return postgres.url.rsplit("/", 1)[0] + f"/{database}"


def start_celery(args, work, processes, servers, name="celery"):
    """Two `celery worker --pool solo` processes; with name "celery-aa", a Redis result backend and late acks."""
    try:
        import celery  # noqa: F401
    except ImportError:
        progress("Celery is not installed, skipping it: .venv/bin/pip install -r bench/requirements.txt")
        return None
    sys.path.insert(0, str(BENCH))
    import celery_chain

    url = servers.redis_url(name)
    # As Analytics Automated ran it: broker and result backend on the same Redis database.
    backend = url if name == "celery-aa" else None
    app = celery_chain.make_app(url, backend)
    env = {**os.environ, "BENCH_CELERY_URL": url, "BENCH_CELERY_BACKEND": backend or "", "PYTHONPATH": str(BENCH)}
    for number in (1, 2):
        argv = [PYTHON, "-m", "celery", "-A", "celery_chain", "worker", "--pool", "solo", "--concurrency", "1", "-Q", celery_chain.QUEUE]
        argv += ["-n", f"{name}{number}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"]
        processes.start(f"{name}-worker-{number}", argv, env, cwd=BENCH)
    label = LABELS[name]

    def check(token, total, sent):
        # Outside the timing: the backend holds the last step's result (it is stored just after the
        # step pushed its token).
        if backend and sent.get(timeout=30) != total - 1:
            raise RuntimeError(f"{label}: the result backend does not hold the last step's result")

    return lambda one: run_chains(label, one, url, lambda total, token: celery_chain.start_chain(app, total, token), check)


def start_celery_aa(args, work, processes, servers):
    return start_celery(args, work, processes, servers, "celery-aa")


def start_dramatiq(args, work, processes, servers):
    url = servers.redis_url("dramatiq")
    os.environ["BENCH_DRAMATIQ_URL"] = url
    sys.path.insert(0, str(BENCH))
    import dramatiq_chain

    env = {**os.environ, "BENCH_DRAMATIQ_URL": url}
    argv = [PYTHON, "-m", "dramatiq", "dramatiq_chain", "--path", str(BENCH), "--processes", "2", "--threads", "2"]
    processes.start("dramatiq-worker", argv, env, cwd=BENCH)
    return lambda one: run_chains(LABELS["dramatiq"], one, url, lambda total, token: dramatiq_chain.step.send(0, total, token))


def start_dramatiq_pg(args, work, processes, servers):
    """The durable floor: a Dramatiq chain that commits one row per step, on Sluice's PostgreSQL server and Redis."""
    url = servers.redis_url("dramatiq-pg")
    progress("Dramatiq + PostgreSQL: creating its database and table")
    dsn = createdb(servers["postgres"], "bench_dramatiq").replace("postgres://", "postgresql://", 1)
    os.environ.update({"BENCH_DRAMATIQ_PG_URL": url, "BENCH_DRAMATIQ_PG_DSN": dsn})
    sys.path.insert(0, str(BENCH))
    import dramatiq_pg_chain

    dramatiq_pg_chain.create_table(dsn)
    env = {**os.environ, "BENCH_DRAMATIQ_PG_URL": url, "BENCH_DRAMATIQ_PG_DSN": dsn}
    argv = [PYTHON, "-m", "dramatiq", "dramatiq_pg_chain", "--path", str(BENCH), "--processes", "2", "--threads", "2"]
    processes.start("dramatiq-pg-worker", argv, env, cwd=BENCH)
    label = LABELS["dramatiq-pg"]

    def check(token, total, sent):
        rows = dramatiq_pg_chain.count_rows(dsn, token)
        if rows != total:
            raise RuntimeError(f"{label}: {rows} rows for a chain of {total} steps")

    return lambda one: run_chains(label, one, url, lambda total, token: dramatiq_pg_chain.step.send(0, total, token), check)


STARTS = {
    "embedded": start_embedded,
    "pg": start_pg,
    "rabbit": start_rabbit,
    "celery": start_celery,
    "celery-aa": start_celery_aa,
    "dramatiq": start_dramatiq,
    "dramatiq-pg": start_dramatiq_pg,
}
LABELS = {
    "embedded": "Sluice embedded",
    "pg": "Sluice PostgreSQL+Redis",
    "rabbit": "Sluice PostgreSQL+RabbitMQ",
    "celery": "Celery chain",
    "celery-aa": "Celery chain, result backend + acks_late",
    "dramatiq": "Dramatiq chain",
    "dramatiq-pg": "Dramatiq chain + a PostgreSQL row per step",
}


def run_chains(label, args, redis_url, send, check=None):
    """Time chains sent with ``send(total, token)``, whose last step pushes to bench:done:<token>.

    ``check(token, total, sent)``, if given, runs after each timed long chain, outside the timing,
    with what ``send`` returned; it raises if the chain did not leave what it should have.
    """
    import redis

    # No socket timeout: redis-py's default of 5 s would end a BLPOP that waits longer than that.
    client = redis.Redis.from_url(redis_url, socket_timeout=None)

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
        sent = send(args.steps, token)
        wait(token, 1, RUN_TIMEOUT)
        per_step.append((time.perf_counter() - started) / args.steps)
        if check:
            check(token, args.steps, sent)
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


class Servers(dict):
    """The throwaway servers the chosen systems need, by name ("postgres", "redis", "rabbitmq")."""

    def redis_url(self, system):
        return self["redis"].url.rsplit("/", 1)[0] + f"/{REDIS_DATABASE[system]}"


def start_servers(chosen, stack):
    from tests.realservers.servers import Postgres, RabbitMQ, Redis

    servers = Servers()
    wanted = (
        ("postgres", Postgres, {"pg", "rabbit", "dramatiq-pg"}, "a throwaway PostgreSQL"),
        ("redis", Redis, {"pg", "celery", "celery-aa", "dramatiq", "dramatiq-pg"}, "a throwaway Redis"),
        ("rabbitmq", RabbitMQ, {"rabbit"}, "a throwaway RabbitMQ (about 5 s)"),
    )
    for name, server, users, text in wanted:
        if users & set(chosen):
            progress(f"starting {text} on loopback")
            servers[name] = server().start()
            stack.callback(servers[name].stop)
    return servers


def merge(into, figures):
    """Append a round's figures (nested dicts of lists) to those of the rounds before."""
    for key, value in figures.items():
        if isinstance(value, dict):
            merge(into.setdefault(key, {}), value)
        else:
            into.setdefault(key, []).extend(value)


def run_interleaved(args, measures, results, errors):
    """Round by round, one per-step repeat and one throughput repeat of every system in turn.

    Each round starts with a different system, so that a shared machine's changing load falls
    on all of them alike; a floor sample opens every round. A system that fails is dropped from
    the rounds after; the figures of its earlier rounds are kept, and the error says so.
    """
    rounds = max(args.repeat, args.tp_repeat)
    active = list(measures)
    for number in range(rounds):
        if not active:
            break
        measure_floor(results, args.steps, 1, f"before round {number + 1}")
        one = argparse.Namespace(**{**vars(args), "repeat": int(number < args.repeat), "tp_repeat": int(number < args.tp_repeat)})
        shift = number % len(active)
        for name in active[shift:] + active[:shift]:
            progress(f"round {number + 1}/{rounds}: {name}")
            try:
                merge(results.setdefault(name, {}), measures[name](one))
            except Exception as error:  # one system failing must not lose the others' figures
                kept = " (figures of the rounds before kept)" if number else ""
                errors[name] = f"round {number + 1}: {error}{kept}"
                progress(f"{name} failed: {error}")
                active.remove(name)


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

    results, errors = {}, {}
    chosen = [name for name in SYSTEMS if name in args.only]
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
        servers = start_servers(chosen, stack)
        # Every system is up before the first round (idle, a worker costs next to nothing).
        measures = {}
        for name in chosen:
            try:
                measure = STARTS[name](args, work, processes, servers)
            except Exception as error:
                errors[name] = f"start: {error}"
                progress(f"{name} failed to start: {error}")
                continue
            if measure is not None:
                measures[name] = measure
        run_interleaved(args, measures, results, errors)
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


def per_step_runs(figures):
    """A system's per-step samples (seconds), Sluice's or a peer's; [] if it has none."""
    figures = figures or {}
    return (figures.get("sluice") or {}).get("per_step") or figures.get("per_step") or []


def rate_runs(figures):
    """A system's throughput samples (steps/s), Sluice's or a peer's; [] if it has none."""
    figures = figures or {}
    return (figures.get("sluice_tp") or figures.get("tp") or {}).get("steps_per_second") or []


def render(args, results, errors, elapsed, load):
    """The Markdown report: per-step table, throughput table, Sluice against each peer, targets."""
    floor = median(results["floor_bash"]["per_step"])
    embedded, pg, rabbit = (results.get(name) or {} for name in SLUICE)
    rounds = max(args.repeat, args.tp_repeat)

    def row(label, runs, note=""):
        if not runs:
            return f"| {label} | failed or skipped | | | | {note} |"
        value = median(runs)
        return f"| {label} | {ms(value)} | {ms(min(runs))}–{ms(max(runs))} | {value / floor:.1f}× | {ms(value - floor)} | {note} |"

    def sluice_note(figures):
        if not figures.get("sluice"):
            return ""
        s = figures["sluice"]
        return f"in node {ms(median(s['in_node']))}, between nodes {ms(median(s['between_nodes']))}, submit {median(s['submit_seconds']) * 1000:.0f} ms"

    command = f"`.venv/bin/python bench/dispatch.py --steps {args.steps} --submissions {args.submissions} --repeat {args.repeat} --tp-repeat {args.tp_repeat}"
    if set(args.only) != set(SYSTEMS):
        command += " --only " + " ".join(name for name in SYSTEMS if name in args.only)
    lines = [
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}; {date.today().isoformat()}.",
        f"Command: {command}`",
        f"Full run took {elapsed:.0f} s; 1-minute load average {load[0]:.2f} at the start, {load[-1]:.2f} at the end.",
        f"{rounds} rounds; each runs one repeat of every system in turn, starting with a different one each round.",
        "",
        f"### Per step: a {args.steps}-step sequential job of `true` (median of {args.repeat})",
        "",
        "| system | ms per step | range (ms) | × floor | over floor (ms) | notes |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        row("floor: Python loop, `bash -c true`", results["floor_bash"]["per_step"], f"{len(results['floor_bash']['per_step'])} samples across the run"),
        row("floor: Python loop, `true`", results["floor_true"]["per_step"], f"{len(results['floor_true']['per_step'])} samples across the run"),
        row("Sluice executor alone (no database)", (embedded.get("executor_only") or {}).get("per_step")),
        row("Sluice embedded (SQLite, stub broker, 4 threads)", per_step_runs(embedded), sluice_note(embedded)),
        row("Sluice PostgreSQL + Redis (worker 2×2)", per_step_runs(pg), sluice_note(pg)),
        row("Sluice PostgreSQL + RabbitMQ (worker 2×2)", per_step_runs(rabbit), sluice_note(rabbit)),
        row("Celery 5 chain (Redis, 2 solo workers)", per_step_runs(results.get("celery"))),
        row("Celery 5 chain, Redis result backend, acks_late, prefetch 1 (2 solo workers)", per_step_runs(results.get("celery-aa"))),
        row("Dramatiq self-chaining actor (Redis, 2×2)", per_step_runs(results.get("dramatiq"))),
        row("Dramatiq self-chaining actor + one PostgreSQL row per step (Redis, 2×2)", per_step_runs(results.get("dramatiq-pg"))),
        "",
        f"### Throughput: {args.submissions} concurrent 3-step submissions (median of {args.tp_repeat})",
        "",
        "| system | steps/s | range | wall (s) | of which submitting (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in SYSTEMS:
        figures = (results.get(name) or {}).get("sluice_tp") or (results.get(name) or {}).get("tp")
        label = LABELS[name] + ("" if name in SLUICE else f" ({args.submissions} chains of 3)")
        if not figures or not figures.get("steps_per_second"):
            lines.append(f"| {label} | failed or skipped | | | |")
            continue
        rates = figures["steps_per_second"]
        lines.append(
            f"| {label} | {median(rates):.0f} | {min(rates):.0f}–{max(rates):.0f} | {median(figures['wall']):.2f} | {median(figures['submit_seconds']):.2f} |"
        )
    lines += ["", "### Sluice against each peer", ""]
    lines += against_peers(results)
    lines += ["", "### Ratios", ""]
    lines += ratios(floor, embedded, pg, rabbit, results)
    lines += ["", "### Targets", ""]
    lines += targets(results)
    lines += ["", "Information, no targets:", ""]
    lines += information(results)
    lines += ["", "Earlier targets, kept to compare with earlier runs:", ""]
    lines += earlier_targets(floor, embedded, pg)
    if errors:
        lines += ["", "### Errors", ""] + [f"- {name}: {text}" for name, text in errors.items()]
    return "\n".join(lines)


def ratio_cell(mine, theirs):
    """Ratio of the medians, and the range of the round-by-round ratios when the rounds pair up."""
    if not mine or not theirs:
        return "—"
    text = f"{median(mine) / median(theirs):.2f}×"
    if len(mine) == len(theirs) and len(mine) > 1:
        paired = [a / b for a, b in zip(mine, theirs)]
        text += f" ({min(paired):.2f}–{max(paired):.2f})"
    return text


def against_peers(results):
    """One table: each peer's figures beside Sluice embedded's and PostgreSQL + Redis's ratios to them."""
    embedded, pg = results.get("embedded"), results.get("pg")
    out = [
        (
            "Ratios of the medians; in brackets the range of the ratios round by round (a round runs the systems"
            " one after another, so round N of each saw about the same load). Per step, below 1× means Sluice is"
            " faster; throughput, above 1×."
        ),
        "",
        "| peer | peer ms per step (range) | embedded ÷ peer | PostgreSQL+Redis ÷ peer | peer steps/s (range) | embedded ÷ peer | PostgreSQL+Redis ÷ peer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in PEERS:
        steps, rates = per_step_runs(results.get(name)), rate_runs(results.get(name))
        step_text = f"{ms(median(steps))} ({ms(min(steps))}–{ms(max(steps))})" if steps else "failed or skipped"
        rate_text = f"{median(rates):.0f} ({min(rates):.0f}–{max(rates):.0f})" if rates else "failed or skipped"
        out.append(
            f"| {LABELS[name]} | {step_text} | {ratio_cell(per_step_runs(embedded), steps)} | {ratio_cell(per_step_runs(pg), steps)}"
            f" | {rate_text} | {ratio_cell(rate_runs(embedded), rates)} | {ratio_cell(rate_runs(pg), rates)} |"
        )
    return out


def ratios(floor, embedded, pg, rabbit, results):
    """Per-step and throughput ratios between the systems, where both figures exist."""
    out = []
    for name, figures in (("embedded", embedded), ("pg", pg), ("rabbit", rabbit)):
        value = median(per_step_runs(figures))
        if value is None:
            continue
        parts = [f"{value / floor:.1f}× the floor ({ms(value - floor)} ms over it)"]
        for peer in PEERS:
            theirs = median(per_step_runs(results.get(peer)))
            if theirs:
                parts.append(f"{value / theirs:.2f}× the {LABELS[peer]}")
        out.append(f"- {LABELS[name]} per step: " + "; ".join(parts))
    celery_rate = median(rate_runs(results.get("celery")))
    for name, figures in (("embedded", embedded), ("pg", pg), ("rabbit", rabbit)):
        if rate_runs(figures) and celery_rate:
            out.append(f"- {LABELS[name]} throughput: {median(rate_runs(figures)) / celery_rate:.2f}× the Celery chain's")
    on_redis, on_rabbit = median(per_step_runs(pg)), median(per_step_runs(rabbit))
    if on_redis and on_rabbit:
        line = f"- RabbitMQ vs Redis per step: {ms(on_rabbit)} ms vs {ms(on_redis)} ms, {on_rabbit / on_redis:.2f}×"
        if rate_runs(pg) and rate_runs(rabbit):
            line += f"; throughput {median(rate_runs(rabbit)) / median(rate_runs(pg)):.2f}× Redis's"
        out.append(line)
    return out or ["- not enough figures"]


def verdict(ok):
    return "**met**" if ok else "**not met**"


def targets(results):
    """Sluice against the bare Celery chain: per step at most a share of its time, throughput at least a share of its rate."""
    celery_steps, celery_rates = per_step_runs(results.get("celery")), rate_runs(results.get("celery"))
    out = []
    for name, at_most in (("pg", 1.0), ("embedded", 0.6)):
        mine = per_step_runs(results.get(name))
        text = f"- {LABELS[name]} per step ≤ {at_most:.1f}× the bare Celery chain's: "
        if not mine or not celery_steps:
            out.append(text + "not measured")
            continue
        value, reference = median(mine), median(celery_steps)
        figures = f"{ms(value)} ms vs {ms(reference)} ms × {at_most:.1f} = {ms(reference * at_most)} ms (ratio {value / reference:.2f})"
        out.append(text + f"{figures}: {verdict(value / reference <= at_most)}")
    for name, at_least in (("embedded", 1.0), ("pg", 0.8)):
        mine = rate_runs(results.get(name))
        text = f"- {LABELS[name]} throughput ≥ {at_least:.1f}× the bare Celery chain's: "
        if not mine or not celery_rates:
            out.append(text + "not measured")
            continue
        value, reference = median(mine), median(celery_rates)
        figures = f"{value:.0f} vs {reference:.0f} steps/s × {at_least:.1f} = {reference * at_least:.0f} steps/s (ratio {value / reference:.2f})"
        out.append(text + f"{figures}: {verdict(value / reference >= at_least)}")
    return out


def information(results):
    """Sluice against Celery as Analytics Automated ran it and against the durable Dramatiq floor."""
    out = []
    for peer in ("celery-aa", "dramatiq-pg"):
        theirs_steps, theirs_rates = median(per_step_runs(results.get(peer))), median(rate_runs(results.get(peer)))
        for name in ("embedded", "pg"):
            mine_steps, mine_rates = median(per_step_runs(results.get(name))), median(rate_runs(results.get(name)))
            parts = []
            if mine_steps and theirs_steps:
                parts.append(f"per step {ms(mine_steps)} vs {ms(theirs_steps)} ms ({mine_steps / theirs_steps:.2f}×)")
            if mine_rates and theirs_rates:
                parts.append(f"throughput {mine_rates:.0f} vs {theirs_rates:.0f} steps/s ({mine_rates / theirs_rates:.2f}×)")
            if parts:
                out.append(f"- {LABELS[name]} vs the {LABELS[peer]}: " + "; ".join(parts))
    return out or ["- not measured"]


def earlier_targets(floor, embedded, pg):
    out = []
    value = median(per_step_runs(embedded))
    if value is not None:
        out.append(f"- Embedded per step ≤ floor + 3 ms: {ms(value)} ms vs {ms(floor + 0.003)} ms (floor + {ms(value - floor)} ms): {verdict(value <= floor + 0.003)}")
    for label, figures in (("embedded", embedded), ("PostgreSQL+Redis", pg)):
        rates = rate_runs(figures)
        if rates:
            out.append(f"- Throughput ≥ 150 steps/s, {label}: {median(rates):.0f} steps/s: {verdict(median(rates) >= 150)}")
    return out or ["- no Sluice figures"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="steps in the sequential job (default 100)")
    parser.add_argument("--submissions", type=int, default=200, help="concurrent 3-step submissions for throughput (default 200)")
    parser.add_argument("--repeat", type=int, default=5, help="repeats of the per-step measurement (default 5)")
    parser.add_argument("--tp-repeat", type=int, default=3, help="repeats of the throughput measurement (default 3)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SYSTEMS,
        default=list(SYSTEMS),
        help=(
            "systems to run (default: all; the floor always runs): Sluice embedded, pg (PostgreSQL + Redis), rabbit"
            " (PostgreSQL + RabbitMQ); the peers celery (bare chain), celery-aa (result backend + acks_late), dramatiq"
            " (bare chain), dramatiq-pg (a PostgreSQL row per step)"
        ),
    )
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
