"""Measure what confining a step adds to spawning it, side by side in one worker-sized process.

    python bench/sandbox_spawn.py [N]

Prints milliseconds per spawn of `bash -c true` for: no sandbox, the sandbox as
configured (execution.sandbox.popen), and, for comparison, the alternatives it
replaces: Popen(user=...) and a preexec_fn (both lose Python's vfork path), and setpriv.
"""
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from execution import sandbox  # noqa: E402
from execution.local import SynchronousRunner  # noqa: E402, F401  (load what a worker loads)

ARGV = ["/bin/bash", "-c", "true"]


def timed(label, spawn, n):
    for _ in range(20):
        spawn()
    started = time.perf_counter()
    for _ in range(n):
        spawn()
    print(f"{label:34s} {(time.perf_counter() - started) / n * 1000:.3f} ms")


def main(n):
    plan = sandbox.current()
    print(plan.describe())
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"sluice-bench-{os.getpid()}" / "s" / "1-1"
    sandbox.prepare_workdir(workdir)
    stop = threading.Event()
    for _ in range(4):  # a worker has threads
        threading.Thread(target=stop.wait, daemon=True).start()
    options = dict(stdin=subprocess.DEVNULL, start_new_session=True, env={"PATH": "/usr/bin:/bin"})
    off = lambda: subprocess.Popen(ARGV, cwd=workdir, **options).wait()  # noqa: E731
    on = lambda: sandbox.popen(ARGV, workdir, **options).wait()  # noqa: E731
    runs = [("sandbox off", off), ("sandbox on (" + ("user+" if plan.user else "") + ("landlock" if plan.landlock else "") + ")", on)]
    if plan.user is not None:
        ids = dict(user=plan.user.pw_uid, group=plan.user.pw_gid, extra_groups=[])
        runs.append(("Popen(user=...) (full fork)", lambda: subprocess.Popen(ARGV, cwd=workdir, **ids, **options).wait()))
        runs.append(("preexec_fn (full fork)", lambda: subprocess.Popen(ARGV, cwd=workdir, preexec_fn=os.getpid, **options).wait()))
        setpriv = ["setpriv", f"--reuid={plan.user.pw_uid}", f"--regid={plan.user.pw_gid}", "--clear-groups", *ARGV]
        runs.append(("setpriv", lambda: subprocess.Popen(setpriv, cwd=workdir, **options).wait()))
    for _ in range(2):  # twice, interleaved, because the machine's load drifts
        for label, spawn in runs:
            timed(label, spawn, n)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
