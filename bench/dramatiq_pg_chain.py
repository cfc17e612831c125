"""The durable floor of bench/dispatch.py: a self-chaining Dramatiq actor that writes one row per step.

``step(i, n, token)`` runs `true` as Sluice runs a shell step, inserts one row
(an id, ``token``, ``i``, the time) into a table of its own on PostgreSQL and commits
it, then sends ``step(i + 1, n, token)``; the last one pushes its token to a
Redis list, which the benchmark waits on with BLPOP. This is the least a
broker-driven system can do and still have each step's completion on disk
before the next step starts: one committed write per step, no claim, no lease,
no graph. It runs on the PostgreSQL server and Redis that Sluice's
PostgreSQL + Redis mode uses, in a database of its own (``create_table`` makes
the table with plain psycopg); Sluice's schema is not touched.

Each worker thread keeps one connection (as Sluice's worker does with
``DATABASE_CONN_MAX_AGE``), in autocommit, so the INSERT is its own
transaction; psycopg prepares it after its fifth use, as Sluice's statements
are prepared.

Worker (started by dispatch.py):
    dramatiq dramatiq_pg_chain --path bench --processes 2 --threads 2
with BENCH_DRAMATIQ_PG_URL (Redis) and BENCH_DRAMATIQ_PG_DSN (PostgreSQL) set.
"""
import os
import subprocess
import threading

import dramatiq
import psycopg
import redis
from dramatiq.brokers.redis import RedisBroker

REDIS_URL = os.environ.get("BENCH_DRAMATIQ_PG_URL", "redis://127.0.0.1:6379/4")
DSN = os.environ.get("BENCH_DRAMATIQ_PG_DSN", "postgresql://127.0.0.1:5432/bench_dramatiq")
TABLE = "bench_step"

dramatiq.set_broker(RedisBroker(url=REDIS_URL))
_done = redis.Redis.from_url(REDIS_URL)
_local = threading.local()


def create_table(dsn):
    """Create the steps table (once), empty."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        columns = "id bigserial PRIMARY KEY, token text NOT NULL, step integer NOT NULL, finished_at timestamptz NOT NULL DEFAULT now()"
        connection.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns})")
        connection.execute(f"TRUNCATE {TABLE}")


def count_rows(dsn, token):
    """How many steps of the chain ``token`` have their row."""
    with psycopg.connect(dsn) as connection:
        return connection.execute(f"SELECT count(*) FROM {TABLE} WHERE token = %s", (token,)).fetchone()[0]


def _connection():
    connection = getattr(_local, "connection", None)
    if connection is None or connection.closed:
        connection = _local.connection = psycopg.connect(DSN, autocommit=True)
    return connection


@dramatiq.actor(actor_name="bench.pg_step", queue_name="bench_pg", max_retries=0)
def step(index, total, token):
    """Run `true`, commit this step's row, then send the next step of the chain (or report completion)."""
    subprocess.run(["/bin/bash", "-c", "true"], check=True)
    _connection().execute(f"INSERT INTO {TABLE} (token, step) VALUES (%s, %s)", (token, index))
    if index + 1 < total:
        step.send(index + 1, total, token)
    else:
        _done.lpush(f"bench:done:{token}", index)
