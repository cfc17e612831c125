#!/usr/bin/env python
"""What a `foreach` instance costs as fan-outs grow, and what a big one's answers cost (run by hand).

    .venv/bin/python bench/fanout.py [--sizes 100 1000 10000] [--chain 100] [--rounds 3] [--repeat 5] [--json FILE]

In a throwaway SQLite database (or the DATABASE_URL given), with the step
sandbox as configured, it runs, the way `manage.py runjob` runs a job (one
node at a time in this process):

- a chain of ``--chain`` steps that each run `true`: the cost of a chain step;
- for each size N, a job whose one step is ``foreach: {lines: .input}`` over
  an upload of N lines, each instance running `true`, then a step after them
  all: the cost per instance (the whole run over N).

Each is run ``--rounds`` times, the sizes interleaved with the chain round by
round so that a shared machine's drift falls on all of them; the figures are
medians with their range. Then, for the largest fan-out's finished
submission, it times through Django's test client (server time, no network)
its API document (the first page of each list, SLUICE_DOCUMENT_LIMIT entries),
its graph JSON and its web page (``--repeat`` times each, median) and counts
their SQL statements; then it walks the whole document, the first page and
every further page of its lists (``<list>_next``, then each page's ``next``),
and reports that walk's time, its requests and the slowest of them.

Targets (issue "Speed at scale"): cost per instance within 1.2x from the
smallest to the largest size, and at most 1.5x a chain step; the largest
submission's document, graph JSON and page each under 1 s, and so each page
of the walk. The report says which were met. Progress goes to stderr, the
Markdown report to stdout.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--chain", type=int, default=100, help="steps in the chain (default 100)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5, help="requests per answer timed (default 5)")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="sluice-fanout-"))
    data.chmod(0o711)  # the sandbox's step user must reach the working directories under it
    os.environ["SLUICE_DATA_DIR"] = str(data)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.SLUICE_MAX_FOREACH = max(settings.SLUICE_MAX_FOREACH, max(args.sizes))
    call_command("migrate", verbosity=0)
    make_jobs(args.chain)

    chain, per_size, last = [], {size: [] for size in args.sizes}, None
    for round_number in range(1, args.rounds + 1):
        seconds, _ = run("bench_chain", None)
        chain.append(1000 * seconds / args.chain)
        progress(f"round {round_number}: chain step {chain[-1]:.2f} ms")
        for size in args.sizes:
            upload = "".join(f"{index}\n" for index in range(size)).encode()
            seconds, last = run("bench_fanout", upload)
            per_size[size].append(1000 * seconds / size)
            progress(f"round {round_number}: {size} instances, {per_size[size][-1]:.2f} ms each")
    answers = time_answers(last, args.repeat)
    report(args, chain, per_size, answers)
    if args.json:
        Path(args.json).write_text(json.dumps({"chain_ms": chain, "instance_ms": per_size, "answers": answers}, indent=2))


def make_jobs(chain_length):
    from tests.factories import make_job, make_task

    steps = [(f"s{index}", make_task(f"chain_{index}", "true"), {"ordering": index}) for index in range(chain_length)]
    make_job("bench_chain", steps=steps)
    each = make_task("each", "true")
    after = make_task("after_all", "true")
    make_job("bench_fanout", steps=[("each", each, {"foreach": {"lines": ".input"}}), ("after_all", after, {"ordering": 1})])


def run(job, upload):
    from execution.local import SynchronousRunner

    started = time.perf_counter()
    submission = SynchronousRunner(job, input=upload).init().process()
    seconds = time.perf_counter() - started
    if submission.status != "complete":
        raise SystemExit(f"{job} ended {submission.status}: {submission.last_message}")
    return seconds, submission


def time_answers(submission, repeat):
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    urls = [
        ("API document (first page)", f"/api/submissions/{submission.uuid}/"),
        ("graph JSON", f"/api/submissions/{submission.uuid}/graph/"),
        ("web page", f"/submissions/{submission.uuid}/"),
    ]
    answers = []
    for name, url in urls:
        samples = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                samples.append(1000 * (time.perf_counter() - started))
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}")
        body = b"".join(response.streaming_content) if response.streaming else response.content
        answers.append({"what": name, "url": url, "ms": statistics.median(samples), "min": min(samples), "max": max(samples), "queries": len(queries), "bytes": len(body)})
        progress(f"{name}: {answers[-1]['ms']:.0f} ms, {len(queries)} statements, {len(body)} bytes")
    walks = [walk(client, urls[0][1]) for _ in range(repeat)]
    totals = [sum(ms for ms, _, _ in pages) for pages in walks]
    pages = walks[-1]
    answers.append({
        "what": f"whole API document, walked ({len(pages)} requests)", "url": urls[0][1], "ms": statistics.median(totals), "min": min(totals), "max": max(totals),
        "queries": sum(queries for _, queries, _ in pages), "bytes": sum(size for _, _, size in pages),
        "slowest_page_ms": max(max(ms for ms, _, _ in pages) for pages in walks),
    })
    progress(f"walk: {answers[-1]['ms']:.0f} ms for {len(pages)} requests, slowest page {answers[-1]['slowest_page_ms']:.0f} ms")
    return answers


def walk(client, url):
    """Read the whole document: its first page, then every further page of each list; (ms, statements, bytes) of each request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def get(url):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            ms = 1000 * (time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        pages.append((ms, len(queries), len(response.content)))
        return response.json()

    pages = []
    document = get(url)
    for name in ("nodes", "results", "history", "messages"):
        listed, following = len(document[name]), document[f"{name}_next"]
        while following:
            page = get(following)
            listed, following = listed + len(page["results"]), page["next"]
        if listed != document[f"{name}_count"]:
            raise SystemExit(f"the walk found {listed} {name}, the document counts {document[name + '_count']}")
    return pages


def report(args, chain, per_size, answers):
    from django.conf import settings

    nodes = max(args.sizes) + 3
    print(f"# bench/fanout.py, {date.today().isoformat()}, {platform.node()} ({os.cpu_count()} cores), {database()}")
    print()
    print(f"Command: `.venv/bin/python bench/fanout.py --sizes {' '.join(map(str, args.sizes))} --chain {args.chain} --rounds {args.rounds} --repeat {args.repeat}`")
    print()
    print("| run | ms per step or instance, median | range | × chain step |")
    print("| --- | ---: | ---: | ---: |")
    step = statistics.median(chain)
    print(f"| chain of {args.chain} | {step:.2f} | {min(chain):.2f}–{max(chain):.2f} | 1.00 |")
    for size, samples in per_size.items():
        median = statistics.median(samples)
        print(f"| foreach × {size} | {median:.2f} | {min(samples):.2f}–{max(samples):.2f} | {median / step:.2f} |")
    print()
    smallest, largest = statistics.median(per_size[min(args.sizes)]), statistics.median(per_size[max(args.sizes)])
    growth = largest / smallest
    print(f"The {nodes}-node submission's answers (medians of {args.repeat}, server time through the test client; the document lists")
    print(f"{settings.SLUICE_DOCUMENT_LIMIT} entries of each list, SLUICE_DOCUMENT_LIMIT; the walk's figures are its whole time, statements and bytes):")
    print()
    print("| answer | ms | range | SQL statements | bytes |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for answer in answers:
        print(f"| {answer['what']} (`{answer['url']}`) | {answer['ms']:.0f} | {answer['min']:.0f}–{answer['max']:.0f} | {answer['queries']} | {answer['bytes']} |")
    print()
    targets = [
        (f"cost per instance × {max(args.sizes)} within 1.2× of × {min(args.sizes)}", growth <= 1.2, f"{growth:.2f}×"),
        ("cost per instance at most 1.5× a chain step", largest <= 1.5 * step, f"{largest / step:.2f}×"),
    ] + [(f"{answer['what']} under 1 s", answer["ms"] < 1000, f"{answer['ms']:.0f} ms") for answer in answers if "slowest_page_ms" not in answer] + [
        (f"each request of the {answer['what']} under 1 s", answer["slowest_page_ms"] < 1000, f"slowest {answer['slowest_page_ms']:.0f} ms")
        for answer in answers if "slowest_page_ms" in answer
    ]
    print("| target | met | measured |")
    print("| --- | --- | ---: |")
    for name, met, measured in targets:
        print(f"| {name} | {'yes' if met else 'no'} | {measured} |")


def database():
    from django.db import connection

    return "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"


def progress(text):
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
