"""The Celery side of bench/dispatch.py: one task that runs a shell step like Sluice does.

A chain of N ``step`` signatures is the Celery equivalent of an N-step
sequential job. There is no result backend: the last step of a chain pushes
its token to a Redis list, which the benchmark waits on with BLPOP.

Worker (started by dispatch.py):
    celery -A celery_chain worker --pool solo --concurrency 1 -Q bench
with bench/ on PYTHONPATH and BENCH_CELERY_URL set.
"""
import os
import subprocess

import redis
from celery import Celery, chain

REDIS_URL = os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/1")
QUEUE = "bench"

app = Celery("celery_chain", broker=REDIS_URL)
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_serializer="json",
    accept_content=["json"],
)
_done = redis.Redis.from_url(REDIS_URL)


@app.task(name="bench.step")
def step(index, total, token):
    """Run `true` as Sluice runs a shell step; the last step of a chain reports completion."""
    subprocess.run(["/bin/bash", "-c", "true"], check=True)
    if index == total - 1:
        _done.lpush(f"bench:done:{token}", index)


def start_chain(total, token):
    """Send a chain of ``total`` steps; the last pushes to ``bench:done:<token>``."""
    return chain(step.si(index, total, token) for index in range(total)).apply_async()
