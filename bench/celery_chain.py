"""The Celery side of bench/dispatch.py: one task that runs a shell step like Sluice does.

A chain of N ``step`` signatures is the Celery equivalent of an N-step
sequential job. The last step of a chain pushes its token to a Redis list,
which the benchmark waits on with BLPOP, so every Celery peer is timed the
same way.

Two set-ups (``make_app``; the worker's app comes from the environment at
import, and the sender must make the same one):

- bare (``BENCH_CELERY_BACKEND`` unset): no result backend, early
  acknowledgement (Celery's defaults), the cheapest a Celery chain gets;
- as Analytics Automated ran it (``BENCH_CELERY_BACKEND`` = a Redis URL): a
  Redis result backend, so every step's state and return value are written
  to Redis (Analytics Automated's settings put broker and backend on the same
  Redis database, ``redis://localhost:6379/0``), ``task_acks_late=True``, so
  a message is acknowledged only after its task has run, and
  ``worker_prefetch_multiplier=1``. The last is what late-acknowledgement
  set-ups use: Celery's guide on optimizing recommends it for long tasks,
  because otherwise a busy worker holds further unacknowledged messages that
  an idle one could have taken (with a solo worker the default of 4 reserves
  four), and Analytics Automated's own settings set it
  (``CELERYD_PREFETCH_MULTIPLIER = 1``). Its per-task ``rate_limit=40`` and
  its tasks' database writes are not reproduced: the first caps a worker at
  40 tasks a second, and the second is what the durable Dramatiq peer
  (bench/dramatiq_pg_chain.py) measures.

Worker (started by dispatch.py):
    celery -A celery_chain worker --pool solo --concurrency 1 -Q bench
with bench/ on PYTHONPATH and BENCH_CELERY_URL (and for the second set-up
BENCH_CELERY_BACKEND) set.
"""
import os
import subprocess

import redis
from celery import Celery, chain

QUEUE = "bench"


def make_app(broker_url, backend_url=None):
    """A Celery app on ``broker_url`` with the ``bench.step`` task; with ``backend_url``, as Analytics Automated ran it."""
    app = Celery("celery_chain", broker=broker_url, backend=backend_url)
    app.conf.update(
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
    )
    if backend_url:
        app.conf.update(task_ignore_result=False, task_acks_late=True, worker_prefetch_multiplier=1)
    else:
        app.conf.update(task_ignore_result=True)
    done = redis.Redis.from_url(broker_url)

    @app.task(name="bench.step")
    def step(index, total, token):
        """Run `true` as Sluice runs a shell step; the last step of a chain reports completion."""
        subprocess.run(["/bin/bash", "-c", "true"], check=True)
        if index == total - 1:
            done.lpush(f"bench:done:{token}", index)
        return index

    app.bench_step = step
    return app


def start_chain(app, total, token):
    """Send a chain of ``total`` steps on ``app``; the last pushes to ``bench:done:<token>``. Return the chain's result."""
    return chain(app.bench_step.si(index, total, token) for index in range(total)).apply_async()


# The worker's app (`celery -A celery_chain`), from the environment.
app = make_app(os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/1"), os.environ.get("BENCH_CELERY_BACKEND") or None)
