"""Run the real-servers suite: start PostgreSQL, point the tests at it, run pytest, clean up.

    python -m tests.realservers [pytest arguments]

Two runs on one throwaway PostgreSQL:

1. the whole fast suite again, on PostgreSQL instead of SQLite (still with
   Dramatiq's stub broker), because production runs on PostgreSQL and the
   per-step hot path writes hand-built SQL there with server-side binding;
2. ``tests/realservers``: real worker processes and a real Redis, which the
   suite's own fixtures start (and restart) on the port chosen here, because
   one test restarts it mid-run; the key distributed tests also run on a real
   RabbitMQ node, which the fixtures start on ports of their own.

With pytest arguments, only the second run is made, with those arguments.
"""
import os
import subprocess
import sys

from .servers import Postgres, free_port


def main():
    postgres = Postgres().start()
    base = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "BROKER_URL")}
    try:
        if not sys.argv[1:]:
            print("== the fast suite on PostgreSQL", flush=True)
            code = subprocess.call(
                [sys.executable, "-m", "pytest", "tests", "--ignore=tests/realservers", "-q"], env={**base, "DATABASE_URL": postgres.url},
            )
            if code:
                return code
            print("== worker processes on PostgreSQL and Redis (and RabbitMQ)", flush=True)
        env = {**base, "DATABASE_URL": postgres.url, "BROKER_URL": f"redis://127.0.0.1:{free_port()}/0", "SLUICE_REAL_SERVERS": "1"}
        return subprocess.call([sys.executable, "-m", "pytest", "tests/realservers", *sys.argv[1:]], env=env)
    finally:
        postgres.stop()


if __name__ == "__main__":
    sys.exit(main())
