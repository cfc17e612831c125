#!/usr/bin/env python
"""A long run of submissions over HTTP: does the memory of the web and of the worker stay flat? (run by hand)

    .venv/bin/python bench/soak.py [--mode embedded|pg|both] [--submissions 10000] [--clients 4] [--unfinished 32] [--steps 1]

It starts each deployment as bench/burst.py does (the same code), on loopback
and throwaway data:

- ``embedded``: `manage.py up` on SQLite, one process that serves the web and runs the steps;
- ``pg``: a throwaway PostgreSQL and Redis, gunicorn with 2 workers
  (`config/gunicorn.conf.py`) and `manage.py worker --processes 2`.

It loads a job of ``--steps`` steps in a chain, each running `true`, and sends
``--submissions`` submissions (`POST /api/submissions/`, JSON) from
``--clients`` threads. A client sends only while fewer than ``--unfinished``
accepted submissions are not yet terminal (read from the database every
0.2 s), so the deployment runs at the rate it keeps up with and no backlog
builds up. Every 500 accepted submissions, and once more after the last one
is terminal, it reads VmRSS (and Threads) from /proc/PID/status of each
process group:

- ``up``: the `manage.py up` process (the steps it starts are not counted);
- ``web``: the gunicorn master and its worker processes;
- ``worker``: the `manage.py worker --processes 2` supervisor and the two
  single-process workers it starts.

A group is the started process and its descendants that have run this
Python interpreter (/proc/PID/exe) for at least a second, so that the
steps' short-lived processes are left out; the report lists the pids
counted. The first 1,000 submissions are the warm-up: growth is measured
from the sample at 1,000 to the last one (all terminal), and the target
(issue "Speed at scale") is within ±10% for every group of every mode, with
every submission terminal and none lost. Progress (rate, RSS) goes to stderr, the Markdown report to
stdout. Every server started is stopped at the end, also on Ctrl-C or SIGTERM.
"""
import argparse
import contextlib
import http.client
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import burst  # noqa: E402  (this folder's bench/burst.py: the two deployments)
import intake  # noqa: E402  (this folder's bench/intake.py: progress, signals)

SAMPLE_EVERY = 500
WARM_UP = 1000
TARGET = 10.0  # per cent, either way
POLL = 0.2
MIN_AGE = 1.0  # seconds a descendant must have run to count
PYTHON_EXE = os.path.realpath(sys.executable)


# --- resident memory -------------------------------------------------------------


def memory(pid):
    """(VmRSS in KiB, threads) of ``pid``, or None once it has gone."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "Threads"):
                    found[key] = int(value.split()[0])
    except OSError:
        return None
    return found.get("VmRSS", 0), found.get("Threads", 0)  # a zombie has no VmRSS line


def _processes():
    """{pid: (parent pid, seconds since it started)} of every process visible in /proc."""
    with open("/proc/uptime") as uptime:
        now = float(uptime.read().split()[0])
    ticks = os.sysconf("SC_CLK_TCK")
    processes = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    # The command name, in brackets, may hold spaces and brackets itself.
                    fields = stat.read().rsplit(")", 1)[1].split()
                processes[int(entry)] = (int(fields[1]), now - int(fields[19]) / ticks)
            except (OSError, IndexError, ValueError):
                continue
    return processes


def _runs_python(pid):
    try:
        return os.path.realpath(f"/proc/{pid}/exe") == PYTHON_EXE
    except OSError:
        return False


def group(root):
    """``root`` and its descendants that have run this interpreter for a second or more, in pid order.

    That leaves out the steps' processes: `true`, and the instant between
    the fork and the exec of a step, when the child still runs Python and
    its VmRSS counts the pages it shares with its parent.
    """
    processes = _processes()
    children = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        if pid == root or (processes[pid][1] >= MIN_AGE and _runs_python(pid)):
            found.append(pid)
            stack.extend(children.get(pid, ()))
    return sorted(found)


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return "?"


def command_line(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    words = [Path(words[0].decode()).name] + [word.decode(errors="replace") for word in words[1:]]
    return " ".join(words)


def groups_of(deployment):
    """{group name: root pid} of a deployment started by bench/burst.py, the web first."""
    roots = {process.label: process.pid for process in deployment.processes}
    return {name: roots[label] for label, name in (("up", "up"), ("gunicorn", "web"), ("worker", "worker")) if label in roots}


def sample(deployment, submitted, terminal, commands):
    """One reading of every group: {"submitted", "terminal", "groups": {name: {"kib", "threads", "pids": {pid: kib}}}}.

    The command line of each pid not yet in ``commands`` is added to it.
    """
    reading = {"submitted": submitted, "terminal": terminal, "groups": {}}
    for name, root in groups_of(deployment).items():
        readings = {pid: memory(pid) for pid in group(root)}
        readings = {pid: reading for pid, reading in readings.items() if reading is not None}
        pids = {pid: kib for pid, (kib, _) in readings.items()}
        for pid in pids:
            commands.setdefault(pid, f"`{command_line(pid)}`" + ("" if pid == root else f" (child of {parent_of(pid)})"))
        reading["groups"][name] = {"kib": sum(pids.values()), "threads": sum(threads for _, threads in readings.values()), "pids": pids}
    return reading


# --- the load --------------------------------------------------------------------


class Throttle:
    """Lets a client send while fewer than ``limit`` accepted submissions are unfinished."""

    def __init__(self, deployment, after_id, limit):
        self.deployment, self.after_id, self.limit = deployment, after_id, limit
        self.accepted = 0  # answered 201
        self.sending = 0  # sent, not yet answered
        self.terminal = 0
        self.changed = threading.Condition()
        self.stopped = threading.Event()
        self.error = None

    def acquire(self):
        with self.changed:
            while self.accepted + self.sending - self.terminal >= self.limit and not self.stopped.is_set():
                self.changed.wait(1.0)
            self.sending += 1

    def release(self, accepted):
        with self.changed:
            self.sending -= 1
            self.accepted += accepted
            return self.accepted

    def watch(self):
        """Read the number of terminal submissions until stopped (in its own thread)."""
        while not self.stopped.is_set():
            try:
                counts, _, _ = self.deployment.states(self.after_id)
            except Exception as error:  # the database went away: stop the clients and say why
                self.error = error
                self.stopped.set()
                break
            with self.changed:
                self.terminal = sum(counts.get(status, 0) for status in burst.TERMINAL)
                self.changed.notify_all()
            for process in self.deployment.processes:
                if process.poll() is not None:
                    self.error = RuntimeError(f"{self.deployment.name}: {process.label} exited with {process.returncode}")
                    self.stopped.set()
            self.stopped.wait(POLL)


def soak(deployment, args):
    """Send the submissions, sampling RSS; return the samples, the final states and the rate."""
    after_id = deployment.last_id()
    throttle = Throttle(deployment, after_id, args.unfinished)
    watcher = threading.Thread(target=throttle.watch, daemon=True)
    watcher.start()
    tickets = iter(range(args.submissions))
    tickets_lock, samples_lock = threading.Lock(), threading.Lock()
    refused, first_refusal = [], []
    commands = {}
    time.sleep(MIN_AGE + 1)  # so that the processes the started ones start count from the first sample
    samples = [sample(deployment, 0, 0, commands)]
    started = time.monotonic()

    def record(accepted):
        reading = sample(deployment, accepted, throttle.terminal, commands)
        with samples_lock:
            samples.append(reading)
        rate = accepted / (time.monotonic() - started)
        sizes = ", ".join(f"{name} {entry['kib'] / 1024:.1f} MiB ({entry['threads']} threads)" for name, entry in reading["groups"].items())
        intake.progress(f"{deployment.name}: {accepted}/{args.submissions} accepted, {reading['terminal']} terminal, {rate:.1f}/s; {sizes}")

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", deployment.port, timeout=120)
        while not throttle.stopped.is_set():
            with tickets_lock:
                if next(tickets, None) is None:
                    break
            throttle.acquire()
            try:
                connection.request("POST", "/api/submissions/", body=burst.BODY, headers=intake.HEADERS)
                response = connection.getresponse()
                answer, status = response.read(), response.status
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                answer, status = repr(error).encode(), None
            accepted = throttle.release(status == 201)
            if status != 201:
                refused.append(status)
                if not first_refusal:
                    first_refusal.append(f"{status}: {answer[:300].decode(errors='replace')}")
            elif accepted % SAMPLE_EVERY == 0:
                record(accepted)
        connection.close()

    intake.progress(f"{deployment.name}: {args.submissions} submissions from {args.clients} clients, at most {args.unfinished} unfinished")
    clients = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    throttle.stopped.set()
    watcher.join()
    if throttle.error is not None:
        raise RuntimeError(f"{deployment.name}: stopped early: {throttle.error}")
    if first_refusal:
        intake.progress(f"{deployment.name}: {len(refused)} answers other than 201, the first: {first_refusal[0]}")
    counts, _, _, timed_out = burst.drain(deployment, after_id, throttle.accepted)
    wall = time.monotonic() - started
    samples.sort(key=lambda entry: entry["submitted"])
    samples.append(sample(deployment, throttle.accepted, sum(counts.get(status, 0) for status in burst.TERMINAL), commands))
    samples[-1]["end"] = True
    return {
        "samples": samples, "commands": commands, "counts": counts, "accepted": throttle.accepted, "refused": len(refused),
        "timed_out": timed_out, "rate": throttle.accepted / wall, "wall": wall,
    }


# --- the report ------------------------------------------------------------------


def growth(result, name):
    """(RSS after the warm-up in KiB, at the end, per cent change), or None if the run was too short."""
    base = next((entry for entry in result["samples"] if entry["submitted"] >= WARM_UP and not entry.get("end")), None)
    if base is None:
        return None
    first, last = base["groups"][name]["kib"], result["samples"][-1]["groups"][name]["kib"]
    return base["submitted"], first, last, (last - first) / first * 100


def mib(kib):
    return f"{kib / 1024:.1f}"


GROUP_TITLES = {"up": "`up` (web + worker)", "web": "web (gunicorn)", "worker": "worker"}
MODE_TITLES = {"embedded": "embedded (`up`, SQLite)", "pg": "PostgreSQL + Redis"}


def met(result):
    """Whether a mode met the target: every group within ±10% and every accepted submission terminal."""
    lost = result["accepted"] - sum(result["counts"].get(status, 0) for status in burst.TERMINAL)
    changes = [growth(result, name) for name in result["samples"][-1]["groups"]]
    return lost == 0 and all(change is not None and abs(change[3]) <= TARGET for change in changes)


def report(args, results, errors):
    print(f"# bench/soak.py, {date.today().isoformat()}, {platform.node()} ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end)")
    print()
    print(f"Command: `.venv/bin/python bench/soak.py --mode {args.mode} --submissions {args.submissions} --clients {args.clients} "
          f"--unfinished {args.unfinished} --steps {args.steps}`")
    print()
    print(f"{args.submissions} submissions of a {args.steps}-step chain of `true` over HTTP from {args.clients} clients, at most "
          f"{args.unfinished} unfinished at a time. VmRSS in MiB, summed over each group's processes; growth from the sample after "
          f"the {WARM_UP:,}-submission warm-up to the last (every submission terminal). Target: within ±{TARGET:g}% per group, none lost.")
    print()
    print("| mode | process group | RSS after warm-up | RSS at the end | growth | accepted | terminal | complete | not terminal | submissions/s | met |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for mode, result in results.items():
        terminal = sum(result["counts"].get(status, 0) for status in burst.TERMINAL)
        for name in result["samples"][-1]["groups"]:
            change = growth(result, name)
            figures = ("–", "–", "–") if change is None else (mib(change[1]), mib(change[2]), f"{change[3]:+.1f}%")
            print(f"| {MODE_TITLES[mode]} | {GROUP_TITLES[name]} | {' | '.join(figures)} | {result['accepted']} | {terminal} | "
                  f"{result['counts'].get('complete', 0)} | {result['accepted'] - terminal} | {result['rate']:.1f} | {'yes' if met(result) else 'no'} |")
    if results:
        print()
        print(f"Target (±{TARGET:g}% per group, none lost) met: {'yes' if len(results) == len(modes(args)) and all(map(met, results.values())) else 'no'}.")
    for mode, result in results.items():
        names = list(result["samples"][-1]["groups"])
        print()
        print(f"## {MODE_TITLES[mode]}: RSS (MiB) and threads at each sample")
        print()
        print("| accepted | terminal | " + " | ".join(f"{GROUP_TITLES[name]} MiB | threads" for name in names) + " |")
        print("| ---: | ---: | " + " | ".join("---: | ---:" for _ in names) + " |")
        for entry in result["samples"]:
            label = f"{entry['submitted']} (end)" if entry.get("end") else str(entry["submitted"])
            cells = [f"{mib(entry['groups'][name]['kib'])} | {entry['groups'][name]['threads']}" for name in names]
            print(f"| {label} | {entry['terminal']} | " + " | ".join(cells) + " |")
        print()
        print("Processes counted (pid, command line, RSS in MiB after the warm-up → at the end):")
        print()
        base = next((entry for entry in result["samples"] if entry["submitted"] >= WARM_UP), result["samples"][0])["groups"]
        last = result["samples"][-1]["groups"]
        for name in names:
            for pid in sorted(set(base[name]["pids"]) | set(last[name]["pids"])):
                before, after = base[name]["pids"].get(pid), last[name]["pids"].get(pid)
                print(f"- {GROUP_TITLES[name]}: {pid} {result['commands'].get(pid, '?')}: "
                      f"{'not yet' if before is None else mib(before)} → {'gone' if after is None else mib(after)}")
        steps = zip(result["samples"][1:], result["samples"][2:])
        changed = [entry["submitted"] for previous, entry in steps for name in names
                   if set(entry["groups"][name]["pids"]) != set(previous["groups"][name]["pids"])]
        if changed:
            print(f"\nThe pids counted changed during the run (a process was replaced or started), first at {changed[0]} accepted.")
        if result["refused"] or result["timed_out"]:
            print(f"\n{result['refused']} answers other than 201; drain timed out: {result['timed_out']}.")
    for mode, error in errors.items():
        print(f"\n{mode} failed: {error}")


def modes(args):
    return ["embedded", "pg"] if args.mode == "both" else [args.mode]


def run(mode, work, args, stack):
    deployment = None
    try:
        deployment = burst.Embedded(work, args.steps) if mode == "embedded" else burst.OnPostgres(work, args.steps, stack)
        return soak(deployment, args)
    finally:
        if deployment is not None:
            deployment.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["embedded", "pg", "both"], default="both")
    parser.add_argument("--submissions", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--unfinished", type=int, default=32, help="accepted submissions allowed to be unfinished at once (default 32)")
    parser.add_argument("--steps", type=int, default=1, help="steps in the job's chain (default 1)")
    args = parser.parse_args()
    intake.exit_on_signals()
    work = Path(tempfile.mkdtemp(prefix="sluice-soak-"))
    work.chmod(0o711)
    results, errors = {}, {}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        for mode in modes(args):
            try:
                results[mode] = run(mode, work, args, stack)
            except Exception as error:  # one mode failing must not lose the other's figures
                errors[mode] = str(error)
                intake.progress(f"{mode} failed: {error}")
    report(args, results, errors)


if __name__ == "__main__":
    main()
