#!/usr/bin/env python
"""Benchmark steps on Slurm: submit-to-start latency, and steps per second with 50 in flight.

    .venv/bin/python bench/slurm.py [--latency 10] [--inflight 50]

Starts a throwaway single-node Slurm cluster, PostgreSQL and Redis on loopback
(tests/realservers/servers.py) and one `manage.py worker --threads 4` that
reaches the cluster through SLURM_CONF, then measures:

1. plain `sbatch`: LATENCY jobs one after another (each once the previous one
   has ended), from just before `sbatch` to the job's first line (its own
   clock; same host), the floor Slurm sets;
2. Sluice: LATENCY one-step submissions one after another, from `engine.submit`
   to the step's first line, and to the submission's end;
3. Sluice: INFLIGHT one-step submissions at once (every job in flight from the
   one worker process, followed by its one follower thread), in steps per
   second from the first submit to the last submission's end.

Django reads its settings at import, so the measuring runs in a child process
(`--mode client`, internal) that prints its figures as one JSON line. Progress
goes to stderr, a Markdown report to stdout. See docs/performance.md.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
RESULT_PREFIX = "BENCH-RESULT "
TERMINAL = ("complete", "error", "crash", "cancelled")


def progress(text):
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)} if values else None


# --- plain sbatch ------------------------------------------------------------------


def sbatch_latency(count, env, work):
    """Seconds from just before ``sbatch`` to the job's first line, for ``count`` jobs one after another."""
    latencies = []
    for number in range(count):
        stamp = work / f"sbatch-{number}"
        script = work / f"sbatch-{number}.sh"
        script.write_text(f"#!/bin/bash\ndate +%s.%N > {stamp}\n")
        before = time.time()
        job_id = subprocess.run(["sbatch", "--parsable", f"--output={work}/sbatch-{number}.out", str(script)], env=env, check=True, capture_output=True, text=True).stdout.strip()
        while not stamp.exists() or not stamp.read_text().strip():
            time.sleep(0.01)
        latencies.append(float(stamp.read_text()) - before)
        # The next job is submitted once this one has ended, as the Sluice submissions below are.
        while subprocess.run(["squeue", "-h", "-t", "all", "-o", "%T", "-j", job_id], env=env, capture_output=True, text=True).stdout.strip() != "COMPLETED":
            time.sleep(0.05)
    return latencies


# --- Sluice, in the child ----------------------------------------------------------------


def client(args):
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from execution import dispatch, engine
    from execution.models import Submission
    from jobs.models import Job

    def run(job):
        submission = engine.submit(job)
        dispatch.start(submission)
        return submission

    def wait(submissions, timeout=600):
        deadline = time.monotonic() + timeout
        pending = {submission.pk for submission in submissions}
        while pending and time.monotonic() < deadline:
            pending -= set(Submission.objects.filter(pk__in=pending, status__in=TERMINAL).values_list("pk", flat=True))
            time.sleep(0.02)
        if pending:
            raise RuntimeError(f"{len(pending)} submissions did not finish within {timeout} s")

    stamp = Job.objects.get(name="bench_stamp")
    to_start, to_end = [], []
    for _ in range(args.latency):
        before = time.time()
        submission = run(stamp)
        wait([submission])
        ended = time.time()
        submission.refresh_from_db()
        if submission.status != "complete":
            raise RuntimeError(f"a latency submission ended {submission.status}: {submission.last_message}")
        to_start.append(float(submission.results.get().file.read()) - before)
        to_end.append(ended - before)
    quick = Job.objects.get(name="bench_quick")
    first = time.time()
    submissions = [run(quick) for _ in range(args.inflight)]
    submitted = time.time() - first
    wait(submissions)
    span = time.time() - first
    statuses = set(Submission.objects.filter(pk__in=[s.pk for s in submissions]).values_list("status", flat=True))
    figures = {"to_start": to_start, "to_end": to_end, "inflight": args.inflight, "span": span, "submitted": submitted, "statuses": sorted(statuses)}
    print(RESULT_PREFIX + json.dumps(figures), flush=True)


def setup_catalogue(root_path):
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from jobs.models import Backend, Job, QueueType, Step, Task

    queue_type = QueueType.objects.create(name="slurm", execution_behaviour="slurm")
    backend = Backend.objects.create(name="cluster", queue_type=queue_type, root_path=root_path)
    for name, line in (("bench_stamp", "date +%s.%N > $O1"), ("bench_quick", "echo $SLURM_JOB_ID > $O1")):
        task = Task.objects.create(name=name, executable=line, backend=backend, out_glob=".out")
        Step.objects.create(job=Job.objects.create(name=name), key=name, task=task, ordering=0)


# --- orchestration -----------------------------------------------------------------------


def orchestrate(args):
    from tests.realservers.servers import Postgres, Redis, Slurm, _as_postgres, _pg_bin

    work = Path(tempfile.mkdtemp(prefix="sluice-bench-slurm-"))
    work.chmod(0o755)
    servers, processes = [], []
    try:
        progress("starting Slurm, PostgreSQL and Redis on loopback")
        slurm = Slurm().start()
        servers.append(slurm)
        postgres = Postgres().start()
        servers.append(postgres)
        redis = Redis().start()
        servers.append(redis)
        subprocess.run(_as_postgres([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", postgres.user, "sluice"]), check=True, capture_output=True)
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "BROKER_URL")}
        env.update(slurm.env)
        env.update({
            "DATABASE_URL": postgres.url, "BROKER_URL": redis.url, "SLUICE_DATA_DIR": str(work / "data"), "SLUICE_LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "config.settings", "SLUICE_FOLLOW_SECONDS": str(args.follow), "DATABASE_CONN_MAX_AGE": "60",
        })
        progress(f"plain sbatch: {args.latency} jobs one after another")
        floor = sbatch_latency(args.latency, env, work)
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True)
        (work / "cluster").mkdir()
        subprocess.run([PYTHON, __file__, "--mode", "setup", "--root", str(work / "cluster")], env=env, cwd=ROOT, check=True)
        log = open(work / "worker.log", "w")
        processes.append(subprocess.Popen([PYTHON, "manage.py", "worker", "--threads", "4"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        progress(f"Sluice: {args.latency} submissions one after another, then {args.inflight} at once")
        out = subprocess.run(
            [PYTHON, __file__, "--mode", "client", "--latency", str(args.latency), "--inflight", str(args.inflight)],
            env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True,
        ).stdout
        figures = json.loads(next(line for line in out.splitlines() if line.startswith(RESULT_PREFIX))[len(RESULT_PREFIX):])
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    render(args, floor, figures)


def render(args, floor, figures):
    def row(label, values):
        s = summary(values)
        return f"| {label} | {s['median']:.2f} s | {s['min']:.2f}–{s['max']:.2f} s | {s['n']} |"

    print(f"## Slurm ({time.strftime('%Y-%m-%d')}, single-node Slurm on loopback, SLUICE_FOLLOW_SECONDS={args.follow:g})\n")
    print("| what | median | range | runs |")
    print("|---|---|---|---|")
    print(row("plain sbatch: submit to the job's first line", floor))
    print(row("Sluice: submit to the step's first line", figures["to_start"]))
    print(row("Sluice: submit to the submission's end", figures["to_end"]))
    rate = figures["inflight"] / figures["span"]
    print(f"\n{figures['inflight']} one-step submissions at once, one worker process: {figures['span']:.1f} s from the first submit "
          f"to the last end ({figures['submitted']:.1f} s to submit them), {rate:.1f} steps/s; statuses {', '.join(figures['statuses'])}.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--latency", type=int, default=10, help="submissions measured one after another")
    parser.add_argument("--inflight", type=int, default=50, help="submissions in flight at once")
    parser.add_argument("--follow", type=float, default=1.0, help="SLUICE_FOLLOW_SECONDS of the worker")
    parser.add_argument("--mode", choices=["orchestrate", "setup", "client"], default="orchestrate", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "setup":
        setup_catalogue(args.root)
    elif args.mode == "client":
        client(args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
