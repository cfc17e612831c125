"""gunicorn settings for Sluice's web servers: `gunicorn -c config/gunicorn.conf.py --bind HOST:PORT`.

Threaded workers (see config/gunicorn_workers.py) rather than gunicorn's
default sync workers: a sync worker serves one connection at a time, so a
few slow clients stop it unless a buffering proxy (nginx) stands in front.
Each worker takes at most as many connections as it has threads, so that a
worker whose threads are all busy leaves new connections to the others
instead of queueing them. Keep workers x threads at about twice the slow
clients to outlast: near that number one worker's places fill before the
others' and a request can wait in its queue until the header deadline
(SLUICE_GUNICORN_HEADER_TIMEOUT) frees a thread; 4 x 256 outlasted 500 in
tests/test_slow_clients.py where 4 x 128 sometimes kept /healthz waiting 5 s.
Command-line options override these, e.g. `--workers 8`.
"""
import os

wsgi_app = "config.wsgi:application"
worker_class = "config.gunicorn_workers.ThreadWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("SLUICE_GUNICORN_THREADS", "256"))
worker_connections = threads
# No keep-alive: a kept-alive connection would hold one of the worker's connections between requests.
keepalive = 0
# A worker that stops reporting for this long is restarted (its threads do not count).
timeout = 30
graceful_timeout = 30
backlog = 2048


def post_worker_init(worker):
    """Import the URLconf and the views now: otherwise each worker's first request waits a second or more for them."""
    from django.urls import get_resolver

    get_resolver().resolve("/healthz")
