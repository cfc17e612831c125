#!/usr/bin/env python
"""Time the submission page and its diagram for a wide fan-out (run by hand).

    .venv/bin/python bench/pages.py [--width 1000] [--repeat 5]

Builds, in a throwaway SQLite database, one submission whose graph is
start -> M x WIDTH -> end (statuses mixed as in a running map), then times,
through Django's test client: the SVG of the graph (first draw and cached),
the graph JSON, and the whole live page (what the browser polls every 2 s).
Prints medians in milliseconds.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ["SLUICE_DATA_DIR"] = tempfile.mkdtemp(prefix="sluice-pages-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    uuid = build(args.width)
    client = Client()

    def timed(url, clear=False):
        samples = []
        for _ in range(args.repeat):
            if clear:
                cache.clear()
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        return statistics.median(samples), len(response.content)

    rows = [
        ("graph SVG, first draw", *timed(f"/api/submissions/{uuid}/graph/?format=svg", clear=True)),
        ("graph SVG, cached", *timed(f"/api/submissions/{uuid}/graph/?format=svg")),
        ("graph JSON", *timed(f"/api/submissions/{uuid}/graph/")),
        ("live page fragment (polled)", *timed(f"/submissions/{uuid}/live/", clear=True)),
        ("whole submission page", *timed(f"/submissions/{uuid}/", clear=True)),
    ]
    print(f"Submission with {args.width + 2} nodes (start -> M x {args.width} -> end); medians of {args.repeat}")
    print("| what | ms | bytes |\n| --- | ---: | ---: |")
    for name, ms, size in rows:
        print(f"| {name} | {ms:.0f} | {size} |")


def build(width):
    from execution.models import Edge, Node, Submission
    from tests.factories import make_job, make_task

    start, m, end = make_task("start", "true"), make_task("M", "true"), make_task("end", "true")
    job = make_job("wide", steps=[start, end])
    submission = Submission.objects.create(job=job, status="running")
    first = Node.objects.create(submission=submission, key="start", task=start, status="succeeded")
    last = Node.objects.create(submission=submission, key="end", task=end, status="pending")
    middle = Node.objects.bulk_create(
        Node(submission=submission, key=f"m{index}", task=m, status="succeeded" if index % 3 else "running") for index in range(width)
    )
    Edge.objects.bulk_create(
        [Edge(submission=submission, source=first, target=node) for node in middle] + [Edge(submission=submission, source=node, target=last) for node in middle]
    )
    return submission.uuid


if __name__ == "__main__":
    main()
