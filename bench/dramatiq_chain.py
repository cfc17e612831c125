"""The plain-Dramatiq side of bench/dispatch.py: a self-chaining actor on Redis.

``step(i, n, token)`` runs `true` as Sluice runs a shell step, then sends
``step(i + 1, n, token)``; the last one pushes its token to a Redis list,
which the benchmark waits on with BLPOP. No database is involved.

Worker (started by dispatch.py):
    dramatiq dramatiq_chain --path bench --processes 2 --threads 2
with BENCH_DRAMATIQ_URL set.
"""
import os
import subprocess

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

REDIS_URL = os.environ.get("BENCH_DRAMATIQ_URL", "redis://127.0.0.1:6379/2")

dramatiq.set_broker(RedisBroker(url=REDIS_URL))
_done = redis.Redis.from_url(REDIS_URL)


@dramatiq.actor(actor_name="bench.step", queue_name="bench", max_retries=0)
def step(index, total, token):
    """Run `true`, then send the next step of the chain (or report completion)."""
    subprocess.run(["/bin/bash", "-c", "true"], check=True)
    if index + 1 < total:
        step.send(index + 1, total, token)
    else:
        _done.lpush(f"bench:done:{token}", index)
