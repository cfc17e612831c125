#!/usr/bin/env python
"""Whether a big database slows the front door, the submission page and the lists, and what retention costs (run by hand).

    .venv/bin/python bench/bigdb.py [--databases sqlite pg] [--small 100] [--big 100000] [--repeat 15]
                                    [--batch 500] [--no-files] [--explain] [--json FILE]

For each database (SQLite in a file, as `manage.py up` uses it; PostgreSQL
started on loopback by tests/realservers/servers.py) two child processes
each hold a database of their own: both migrate, `loadjobs` three example
jobs and load ``--small`` finished submissions (finished in the last 20
days); the second loads ``--big`` more (finished 35-180 days ago). Loading
is bulk SQL (executemany; COPY on PostgreSQL), not the engine. Each
submission has a node per step of its job (2-4), an edge between
consecutive nodes, 3 messages and 1 result (a real file unless
``--no-files``); they are spread over three users and four anonymous
addresses, three jobs and three end statuses. Then each request below is
timed through Django's test client in the child's process (server time, no
network), once per round, counting its SQL statements, the two children
taking turns round by round for ``--repeat`` rounds:

- ``POST /api/submissions/`` (JSON, a logged-in user), polling it and a
  finished submission (``GET /api/submissions/{uuid}/``), the web page of
  each;
- ``GET /api/submissions/`` as the user (plain, filtered by status and by
  job, a search, sorted by ``-finished_at``, a later page) and as staff;
- the web list ``/submissions/`` (plain, filtered, searched, page 2).

Last, in the big child, retention (``retention.purge(days=30)``) deletes
the big set in batches of ``--batch`` while a thread keeps submitting: the
report gives each batch's time and the writer's longest wait. With
``--explain`` the big child's statements on growing tables whose plans sort
or read a whole table (SQLite: SCAN or a temporary B-tree; PostgreSQL: Seq
Scan or Sort) are listed.

Targets (issue "Speed at scale", deliverable 5): with ``--big`` loaded each
request issues as many statements as with ``--small`` and takes at most
1.2x its median time; retention's writer never waits a second. The report
says which were met. Progress goes to stderr, the Markdown report to stdout.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
RESULT_PREFIX = "BIGDB-RESULT "
JOBS = ("tmp_count", "grep_head", "diamond")
RETENTION_DAYS = 30
RATIO_TARGET = 1.2
STALL_TARGET = 1.0  # seconds
# Tables that grow with the number of submissions: only their plans are listed.
GROWING = ('"execution_submission"', '"execution_node"', '"execution_message"', '"execution_result"', '"execution_edge"')
# A single-column index on who made a submission or to which job: it reads their whole history.
HISTORY_ONLY = "INDEX execution_submission_user_id_"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", nargs="+", choices=("sqlite", "pg"), default=["sqlite", "pg"])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15, help="times each request is timed in each phase (default 15)")
    parser.add_argument("--batch", type=int, default=500, help="retention's batch size (SLUICE_RETENTION_BATCH; default 500)")
    parser.add_argument("--no-files", action="store_true", help="load result rows without files")
    parser.add_argument("--explain", action="store_true", help="list the big phase's statements whose plans scan or sort")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--child", choices=("sqlite", "pg"), help=argparse.SUPPRESS)
    parser.add_argument("--role", choices=("small", "big"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    results = {}
    for database in args.databases:
        results[database] = run_database(database, args)
    report(args, results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


def run_database(database, args):
    """Start a child with the small set and one with the big set of ``database``, and time them round by round, alternating."""
    work = Path(tempfile.mkdtemp(prefix=f"sluice-bigdb-{database}-"))
    work.chmod(0o711)
    postgres, children = None, {}
    try:
        if database == "pg":
            sys.path.insert(0, str(ROOT))
            from tests.realservers.servers import Postgres

            progress("pg: starting PostgreSQL")
            postgres = Postgres().start()
        for role in ("small", "big"):
            children[role] = start_child(database, role, work, postgres, args)
        figures = {"database": database, "small": args.small, "big": args.big}
        for role, process in children.items():
            figures[f"{role}_load"] = ask(process, "load")
            ask(process, "round")  # warms caches and sessions up; not counted
        rounds = {"small": [], "big": []}
        for number in range(args.repeat):
            for role in ("small", "big") if number % 2 == 0 else ("big", "small"):
                rounds[role].append(ask(children[role], "round"))
        figures["rounds"] = rounds
        progress(f"{database}: " + ", ".join(f"{name}: {median_ms(rounds['small'], name):.1f} → {median_ms(rounds['big'], name):.1f} ms" for name in rounds["small"][0]))
        figures["plans"] = ask(children["big"], "explain")["plans"] if args.explain else {}
        figures["retention"] = ask(children["big"], "purge")
        return figures
    finally:
        for process in children.values():
            if process.poll() is None:
                process.stdin.close()
                process.wait(timeout=60)
        if postgres is not None:
            postgres.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)


def start_child(database, role, work, postgres, args):
    """A child process holding one database with the ``role`` set of submissions, answering commands on stdin."""
    data = work / role
    data.mkdir(mode=0o711)
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "BROKER_URL", "DJANGO_SETTINGS_MODULE")}
    env.update({"SLUICE_DATA_DIR": str(data), "SLUICE_LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings", "BROKER_URL": ""})
    env["SLUICE_RETENTION_BATCH"] = str(args.batch)
    if postgres is not None:
        from tests.realservers.servers import _as_postgres, _pg_bin

        name = f"sluice_{role}"
        subprocess.run(_as_postgres([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", postgres.user, name]), check=True, capture_output=True)
        env["DATABASE_URL"] = postgres.url.rsplit("/", 1)[0] + f"/{name}"
    argv = [PYTHON, __file__, "--child", database, "--role", role, "--small", str(args.small), "--big", str(args.big)]
    argv += ["--no-files"] * args.no_files
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)


def ask(process, command):
    """Send ``command`` to a child and return its JSON answer."""
    process.stdin.write(command + "\n")
    process.stdin.flush()
    for line in process.stdout:
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise SystemExit(f"a child exited with {process.wait()} before answering {command!r} (see its stderr above)")


def median_ms(rounds, name):
    return statistics.median(answer[name]["ms"] for answer in rounds)


# ---------------------------------------------------------------- the child: one database


def child(args):
    """Hold one database and answer the parent's commands: load, round, explain, purge."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    state = {}
    for line in sys.stdin:
        command = line.strip()
        if command == "load":
            answer = load(args, state)
        elif command in ("round", "explain"):
            answer = measure(state["clients"], state["loader"], explain=command == "explain")
        elif command == "purge":
            answer = purge_under_load(args.big)
        else:
            raise SystemExit(f"unknown command {command!r}")
        print(RESULT_PREFIX + json.dumps(answer, default=str), flush=True)


def load(args, state):
    """Migrate, load the jobs, make the users and load this child's submissions; return how long the loading took."""
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", verbosity=0)
    call_command("loadjobs", *(str(ROOT / "examples" / f"{name}.yaml") for name in JOBS), verbosity=0)
    people = {
        "owner": User.objects.create_user("bench-owner", password="x"),
        "other": User.objects.create_user("bench-other", password="x"),
        "third": User.objects.create_user("bench-third", password="x"),
        "staff": User.objects.create_user("bench-staff", password="x", is_staff=True),
    }
    loader = Loader(people, files=not args.no_files)
    loader.load(args.small, days=(0.5, 20))
    started = time.perf_counter()
    if args.role == "big":
        loader.load(args.big, days=(RETENTION_DAYS + 5, 180))
    seconds = time.perf_counter() - started
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # what autovacuum does after a bulk load; without it the planner guesses
    clients = {}
    for who in ("owner", "staff"):
        clients[who] = Client()
        clients[who].force_login(people[who])
    state.update(loader=loader, clients=clients)
    progress(f"{args.child} ({args.role}): {loader.loaded:,} submissions loaded")
    return {"seconds": seconds, "submissions": loader.loaded}


class Loader:
    """Insert finished submissions with their nodes, edges, messages and results in bulk, as rows."""

    def __init__(self, people, files):
        from execution.models import Edge, Message, Node, Result, Submission
        from jobs.models import Job

        self.people, self.files, self.loaded = people, files, 0
        self.jobs = [Job.objects.get(name=name) for name in JOBS]
        self.steps = {job.pk: list(job.steps.select_related("task").order_by("ordering", "id")) for job in self.jobs}
        self.models = (Submission, Node, Edge, Message, Result)
        self.finished_uuid = None

    def load(self, count, days, chunk=10_000):
        """Load ``count`` submissions finished ``days`` (from, to) ago, newest first, ``chunk`` per transaction."""
        from django.utils import timezone

        now = timezone.now()
        for start in range(0, count, chunk):
            self._load(range(start, min(count, start + chunk)), count, days, now)
        self.loaded += count

    def _load(self, indexes, count, days, now):
        from django.conf import settings
        from django.db import connection, transaction

        Submission, Node, Edge, Message, Result = self.models
        ids = {model: self._next_id(model) for model in self.models}
        rows = {model: [] for model in self.models}
        span = (days[1] - days[0]) * 86400
        media = Path(settings.MEDIA_ROOT)
        for offset, index in enumerate(indexes):
            number = self.loaded + index
            job = self.jobs[number % len(self.jobs)]
            user, ip = self._who(number)
            status = "error" if number % 20 == 0 else "cancelled" if number % 20 == 1 else "complete"
            finished = now - timedelta(days=days[0], seconds=span * index / max(count, 1))
            created = finished - timedelta(seconds=30 + number % 90)
            uuid = uuidlib.uuid4()
            submission = ids[Submission] + offset
            name = f"{'liver' if number % 2 else 'kidney'} sample {number}"
            rows[Submission].append({
                "id": submission, "uuid": uuid, "job_id": job.pk, "submission_name": name, "upload_name": f"reads_{number}.txt" if number % 3 == 0 else "",
                "user_id": user, "ip": ip, "priority": "normal", "params": {}, "promises": [], "status": status,
                "last_message": "Complete." if status == "complete" else f"Ended {status}.", "created_at": created, "started_at": created + timedelta(seconds=1),
                "finished_at": finished,
            })
            nodes = []
            for position, step in enumerate(self.steps[job.pk]):
                node = ids[Node] + len(rows[Node])
                failed = status == "error" and position == len(self.steps[job.pk]) - 1
                rows[Node].append({
                    "id": node, "submission_id": submission, "key": step.key, "task_id": step.task_id, "step_id": step.pk,
                    "status": "failed" if failed else "succeeded", "attempt": 1, "fence": 1, "exit_code": 1 if failed else 0,
                    "command": step.task.executable[:200], "started_at": created + timedelta(seconds=1 + position), "finished_at": created + timedelta(seconds=2 + position),
                    "queued_at": created, "worker": "bench:1",
                })
                if nodes:
                    rows[Edge].append({"id": ids[Edge] + len(rows[Edge]), "submission_id": submission, "source_id": nodes[-1], "target_id": node})
                nodes.append(node)
            for text, node in (("Submitted.", None), (f"{self.steps[job.pk][0].key} succeeded.", nodes[0]), (rows[Submission][-1]["last_message"], None)):
                rows[Message].append({"id": ids[Message] + len(rows[Message]), "submission_id": submission, "node_id": node, "level": "info", "text": text, "created_at": finished})
            key = self.steps[job.pk][-1].key
            file_name = f"results/{uuid}/{key}/{uuid}.out"
            rows[Result].append({
                "id": ids[Result] + len(rows[Result]), "submission_id": submission, "node_id": nodes[-1], "name": f"{uuid}.out", "ending": ".out",
                "file": file_name, "size": 6, "created_at": finished,
            })
            if self.files:
                path = media / file_name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"result")
            if self.finished_uuid is None and user == self.people["owner"].pk:
                self.finished_uuid = str(uuid)
        with transaction.atomic():
            for model in self.models:
                insert(model, rows[model])
            if connection.vendor == "postgresql":
                from django.core.management.color import no_style

                with connection.cursor() as cursor:
                    for statement in connection.ops.sequence_reset_sql(no_style(), list(self.models)):
                        cursor.execute(statement)

    def _who(self, number):
        """Six in ten the owner's, one each the two others', one in ten anonymous from one of four addresses."""
        slot = number % 10
        if slot < 6:
            return self.people["owner"].pk, "192.0.2.10"
        if slot < 8:
            return self.people["other"].pk, "192.0.2.11"
        if slot < 9:
            return self.people["third"].pk, "192.0.2.12"
        return None, f"198.51.100.{number % 4 + 1}"

    @staticmethod
    def _next_id(model):
        from django.db.models import Max

        return (model.objects.aggregate(top=Max("id"))["top"] or 0) + 1


def insert(model, rows):
    """Insert ``rows`` (dicts by column) into ``model``'s table: COPY on PostgreSQL, executemany elsewhere.

    Every concrete field gets a value: the row's, else the field's default, prepared as the ORM would.
    """
    from django.db import connections

    if not rows:
        return
    connection = connections["default"]
    fields = list(model._meta.concrete_fields)
    prepared = []
    for field in fields:
        if field.attname in rows[0]:
            prepared.append((field.attname, converter(field, connection), None))
        else:
            value = field.get_default() if field.has_default() else (None if field.null else "")
            prepared.append((None, None, field.get_db_prep_save(value, connection)))

    def values(row):
        return [constant if name is None else convert(row[name]) if convert else row[name] for name, convert, constant in prepared]

    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(values(row))
        else:
            marks = ", ".join(["%s"] * len(fields))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", [values(row) for row in rows])


def converter(field, connection):
    """How a value of ``field`` goes to the database, or None when it goes as it is (the ORM's way, made cheap)."""
    kind = field.get_internal_type()
    if kind == "DateTimeField":
        return connection.ops.adapt_datetimefield_value
    if kind == "UUIDField":
        return (lambda value: value) if connection.vendor == "postgresql" else (lambda value: value.hex)
    if kind == "JSONField":
        return lambda value: field.get_db_prep_save(value, connection)
    return None


# ---------------------------------------------------------------- timing requests


def requests_to_time(posted, finished):
    """``[(name, who, method, url)]``: ``posted`` is filled in as the POST of each round answers."""
    return [
        ("POST /api/submissions/ (JSON)", "owner", "post", "/api/submissions/"),
        ("poll the new one", "owner", "get", lambda: f"/api/submissions/{posted[-1]}/"),
        ("poll a finished one", "owner", "get", f"/api/submissions/{finished}/"),
        ("web page, the new one", "owner", "get", lambda: f"/submissions/{posted[-1]}/"),
        ("web page, a finished one", "owner", "get", f"/submissions/{finished}/"),
        ("API list", "owner", "get", "/api/submissions/?limit=20"),
        ("API list, status filter", "owner", "get", "/api/submissions/?limit=20&status=complete,error"),
        ("API list, job filter", "owner", "get", "/api/submissions/?limit=10&job=diamond"),
        ("API list, search", "owner", "get", "/api/submissions/?limit=20&search=liver"),
        ("API list, ordering=-finished_at", "owner", "get", "/api/submissions/?limit=20&ordering=-finished_at"),
        ("API list, offset=20", "owner", "get", "/api/submissions/?limit=20&offset=20"),
        ("API list, staff (everyone's)", "staff", "get", "/api/submissions/?limit=20"),
        ("web list", "owner", "get", "/submissions/"),
        ("web list, status filter", "owner", "get", "/submissions/?status=complete"),
        ("web list, search", "owner", "get", "/submissions/?q=liver"),
        ("web list, page 2", "owner", "get", "/submissions/?page=2"),
    ]


def measure(clients, loader, explain):
    """Time every request once: ``{name: {ms, queries}}``, with ``plans`` when ``explain``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from execution.models import Submission

    posted = []
    figures, plans = {}, {}
    for name, who, method, url in requests_to_time(posted, loader.finished_uuid):
        url = url() if callable(url) else url
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            if method == "post":
                response = clients[who].post(url, {"job": "tmp_count", "submission_name": "bench post"}, content_type="application/json")
            else:
                response = clients[who].get(url)
            elapsed = 1000 * (time.perf_counter() - started)
        if response.status_code not in (200, 201):
            raise SystemExit(f"{method.upper()} {url} answered {response.status_code}: {response.content[:300]!r}")
        if method == "post":
            posted.append(response.json()["uuid"])
        figures[name] = {"ms": elapsed, "queries": len(queries)}
        if explain:
            plans[name] = scanning_plans(queries.captured_queries)
    Submission.objects.filter(uuid__in=posted).delete()  # every round starts with the same active ones: none
    return {"plans": plans} if explain else figures


def scanning_plans(captured):
    """The statements among ``captured`` whose plans scan a table or sort: ``[(sql, [plan lines])]``."""
    from django.db import DatabaseError, connection

    found = []
    for query in captured:
        sql = query["sql"]
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        try:
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute("EXPLAIN " + sql)
                    lines = [row[0] for row in cursor.fetchall()]
                    bad = [line for line in lines if "Seq Scan" in line or "Sort" in line]
                else:
                    cursor.execute("EXPLAIN QUERY PLAN " + sql)
                    lines = [row[-1] for row in cursor.fetchall()]
                    # A scan or a walk of one user's history is bounded when the statement has a LIMIT and no sort.
                    bounded = " LIMIT " in sql and "TEMP B-TREE" not in " ".join(lines)
                    bad = [line for line in lines if "TEMP B-TREE" in line or (not bounded and (line.startswith("SCAN execution") or HISTORY_ONLY in line))]
        except DatabaseError as error:  # a statement whose logged form cannot be run again as it is
            found.append((sql[:300], [f"(not explained: {type(error).__name__})"]))
            continue
        if bad and any(table in sql for table in GROWING):
            found.append((sql[:300], lines))
    return found


# ---------------------------------------------------------------- retention under a writer


def purge_under_load(expected):
    """Run ``retention.purge`` while a thread submits; return the batches' times and the writer's waits."""
    from django.db import connection

    from execution import intake, retention

    batches = []
    real = retention._delete_batch

    def timed(ids):
        started = time.perf_counter()
        try:
            return real(ids)
        finally:
            batches.append(time.perf_counter() - started)

    waits, stop = [], threading.Event()

    def write():
        try:
            number = 0
            while not stop.is_set():
                started = time.perf_counter()
                intake.accept("tmp_count", submission_name="writer", ip=f"10.{number // 250 % 250}.{number % 250}.1")
                waits.append(time.perf_counter() - started)
                number += 1
                time.sleep(0.005)
        finally:
            connection.close()

    retention._delete_batch = timed
    writer = threading.Thread(target=write, name="writer")
    writer.start()
    time.sleep(0.5)  # the writer's pace before the purge starts
    before = len(waits)
    started = time.perf_counter()
    try:
        deleted = retention.purge(days=RETENTION_DAYS)
    finally:
        seconds = time.perf_counter() - started
        during = len(waits) - before
        stop.set()
        writer.join()
        retention._delete_batch = real
    if deleted != expected:
        raise SystemExit(f"retention deleted {deleted} submissions, expected {expected}")
    from execution.models import Submission

    Submission.objects.filter(submission_name="writer").delete()
    quiet, loaded = waits[:before], waits[before:before + during]
    progress(f"  retention: {deleted} in {seconds:.1f} s, {len(batches)} batches; writer: {during} submissions, longest wait {1000 * max(loaded or [0]):.0f} ms")
    return {
        "deleted": deleted, "seconds": seconds, "batches": len(batches), "batch_ms": [1000 * value for value in batches],
        "writer_quiet_ms": [1000 * value for value in quiet], "writer_ms": [1000 * value for value in loaded],
    }


# ---------------------------------------------------------------- the report


def report(args, results):
    names = {"sqlite": "SQLite (file, WAL)", "pg": "PostgreSQL (loopback)"}
    print(f"# bench/bigdb.py, {date.today().isoformat()}, {platform.node()} ({os.cpu_count()} cores)")
    print()
    command = f".venv/bin/python bench/bigdb.py --databases {' '.join(args.databases)} --small {args.small} --big {args.big} --repeat {args.repeat} --batch {args.batch}"
    print(f"Command: `{command}{' --no-files' * args.no_files}`")
    print()
    targets = []
    for database, figures in results.items():
        small, big = figures["small"], figures["big"]
        rounds = figures["rounds"]
        print(f"## {names[database]}")
        print()
        print(f"{big:,} finished submissions loaded in {figures['big_load']['seconds']:.1f} s. Milliseconds, median (range) of {args.repeat} rounds, "
              f"the two databases taking turns round by round; SQL statements per request.")
        print()
        print(f"| request | {small:,} loaded | {small + big:,} loaded | ratio | statements |")
        print("| --- | ---: | ---: | ---: | ---: |")
        worst, unequal = 0, []
        for name in rounds["small"][0]:
            cells, medians, counts = [], {}, {}
            for role in ("small", "big"):
                samples = [answer[name]["ms"] for answer in rounds[role]]
                medians[role] = statistics.median(samples)
                counts[role] = sorted({answer[name]["queries"] for answer in rounds[role]})
                cells.append(f"{medians[role]:.1f} ({min(samples):.1f}–{max(samples):.1f})")
            ratio = medians["big"] / medians["small"]
            worst = max(worst, ratio)
            same = counts["small"] == counts["big"]
            if not same:
                unequal.append(name)
            statements = "/".join(map(str, counts["small"])) + ("" if same else " → " + "/".join(map(str, counts["big"])))
            print(f"| {name} | {cells[0]} | {cells[1]} | {ratio:.2f} | {statements} |")
        print()
        retention = figures["retention"]
        batch, loaded, quiet = retention["batch_ms"], retention["writer_ms"], retention["writer_quiet_ms"]
        print(f"Retention: {retention['deleted']:,} submissions deleted in {retention['seconds']:.1f} s, {retention['batches']} batches of at most {args.batch}; "
              f"a batch took {statistics.median(batch):.0f} ms median ({min(batch):.0f}–{max(batch):.0f}). "
              f"The writer submitted {len(loaded)} times meanwhile: median {statistics.median(loaded or [0]):.1f} ms, longest {max(loaded or [0]):.0f} ms "
              f"(before the purge: median {statistics.median(quiet or [0]):.1f} ms, longest {max(quiet or [0]):.0f} ms).")
        print()
        for name, plans in figures.get("plans", {}).items():
            for sql, lines in plans:
                print(f"- plan of *{name}* scans or sorts: `{sql[:200]}` → {'; '.join(lines)}")
        targets += [
            (f"{names[database]}: the same statements per request", not unequal, "all equal" if not unequal else "differ: " + ", ".join(unequal)),
            (f"{names[database]}: every request ≤ {RATIO_TARGET}× with {small + big:,} loaded", worst <= RATIO_TARGET, f"worst {worst:.2f}×"),
            (f"{names[database]}: retention's writer never waits {STALL_TARGET:.0f} s", max(loaded or [0]) < 1000 * STALL_TARGET, f"longest {max(loaded or [0]):.0f} ms"),
        ]
    print("## Targets")
    print()
    print("| target | met | measured |")
    print("| --- | --- | --- |")
    for name, met, measured in targets:
        print(f"| {name} | {'yes' if met else 'no'} | {measured} |")


def progress(text):
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
