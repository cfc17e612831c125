"""Sluice's settings with the framework floor mounted (bench/intake.py serves it; never used in production).

    DJANGO_SETTINGS_MODULE=bench.floor_settings manage.py up   # or gunicorn

Everything is as ``config.settings`` has it (middleware, database, logging,
the server's own settings); only the URLconf adds ``/bench-floor/``.
"""
from config.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench.floor_urls"
