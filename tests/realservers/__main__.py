"""Run the real-servers suite: start PostgreSQL, point the suite at it, run pytest, clean up.

    python -m tests.realservers [pytest arguments]

Redis is started (and restarted) by the suite's own fixtures, on the port
chosen here, because one test restarts it mid-run. The suite also runs
``tests/test_statements.py`` again, so that the hot path's hand-built SQL is
checked on PostgreSQL as well as on SQLite.
"""
import os
import subprocess
import sys

from .servers import Postgres, free_port


def main():
    postgres = Postgres().start()
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
        "SLUICE_REAL_SERVERS": "1",
    }
    try:
        return subprocess.call([sys.executable, "-m", "pytest", "tests/realservers", "tests/test_statements.py", *sys.argv[1:]], env=env)
    finally:
        postgres.stop()


if __name__ == "__main__":
    sys.exit(main())
