"""Measure what running a step in a container costs over running it as a local process, side by side.

    python bench/containers.py [N]

Runs the same one-line step (``echo ok > $O1``) N times each way through the
executors, as a worker does (stage, render, start, wait, collect), interleaved
so that the machine's load drifts alike for both, and prints the median
milliseconds per step of each, their difference, and the share of it spent
resolving the image (one ``podman image inspect`` per step, which pins the
digest recorded on the node). Uses podman (SLUICE_CONTAINER_RUNTIME) with a
busybox image built as the tests build theirs; when CONTAINERS_CONF is not
set it writes the containers.conf those tests use.
"""
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from execution import containers, executors, workdirs  # noqa: E402
from execution.local import SynchronousRunner  # noqa: E402, F401  (load what a worker loads)
from tests.containers_support import build_image, remove_image, write_containers_conf  # noqa: E402

IMAGE = "localhost/sluice-bench:1"


def one(behaviour, root, number):
    """Run one step through ``behaviour``'s executor; return its wall-clock seconds."""
    run = executors.NodeRun(
        behaviour=behaviour, executable="echo ok > $O1", workdir=root / "s" / f"{number}-1", file_id="bench", in_endings=[],
        out_endings=[".out"], node_id=number, attempt=1, image=IMAGE if behaviour == "container" else "",
    )
    started = time.perf_counter()
    outcome = executors.execute(run)
    elapsed = time.perf_counter() - started
    if outcome.exit_code != 0 or outcome.missing:
        raise SystemExit(f"the {behaviour} step failed (exit {outcome.exit_code}): {outcome.stderr_tail}")
    workdirs.remove(run.workdir)
    return elapsed


def inspect_time(n):
    words = shlex.split(settings.SLUICE_CONTAINER_RUNTIME)
    runtime = containers.runtime_for(words)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        containers._resolve(words, runtime, IMAGE)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(n):
    scratch = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    scratch.chmod(0o711)
    if not os.environ.get("CONTAINERS_CONF"):
        os.environ["CONTAINERS_CONF"] = str(write_containers_conf(scratch))
    build_image(scratch, IMAGE)
    try:
        times = {"localhost": [], "container": []}
        for behaviour in times:  # warm up: imports, caches, the runtime's first start
            for number in range(3):
                one(behaviour, scratch, number)
        for number in range(n):
            for behaviour in times:
                times[behaviour].append(one(behaviour, scratch, 100 + number))
        local, boxed = (statistics.median(times[b]) * 1000 for b in ("localhost", "container"))
        inspect = inspect_time(max(5, n // 4)) * 1000
        print(f"runtime: {settings.SLUICE_CONTAINER_RUNTIME} (CONTAINERS_CONF={os.environ['CONTAINERS_CONF']}); {n} steps each, medians")
        print(f"{'local process (localhost)':34s} {local:8.1f} ms per step")
        print(f"{'container (podman run)':34s} {boxed:8.1f} ms per step")
        print(f"{'container start overhead':34s} {boxed - local:8.1f} ms per step ({boxed / local:.0f}x)")
        print(f"{'  of which resolving the image':34s} {inspect:8.1f} ms")
    finally:
        remove_image(IMAGE)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
