#!/usr/bin/env python
"""Measure what large submissions cost `manage.py up` in memory (run by hand).

    .venv/bin/python bench/bodies.py [--mb 90] [--parallel 4] [--root CHECKOUT ...]

Starts `manage.py up` of each checkout given (default: this one) as a real
process on a throwaway SQLite file, sends ``--parallel`` concurrent
submissions whose input_data is ``--mb`` MB of text, first as JSON bodies
(the text inline, newlines escaped), then as multipart file uploads, and
samples the server's resident memory (/proc/PID/status) every 10 ms; the
kernel's own high-water mark (VmHWM, reset before each round through
/proc/PID/clear_refs) is reported too. "after" is the RSS 5 s after the last
response of a round. Bodies are streamed from files, so the client's own
memory stays small. Linux only. Prints one table per checkout, then the
figures side by side.
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.realservers.servers import free_port, wait_for_port  # noqa: E402  (after the path is set)
BOUNDARY = "sluice-bench-boundary"
JOB = """
queue_types: [{name: localhost, execution_behaviour: localhost}]
backends: [{name: local, queue_type: localhost}]
tasks: [{name: sink, backend: local, in_glob: .input, executable: "true", description: Reads nothing; the upload is only stored.}]
jobs: [{name: sink, steps: [{id: sink, task: sink}]}]
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=90, help="size of each upload in MB (default 90)")
    parser.add_argument("--parallel", type=int, default=4, help="concurrent submissions per round (default 4)")
    parser.add_argument("--root", action="append", type=Path, help="a checkout whose manage.py up to measure (repeatable; default this one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-bodies-"))
    bodies = make_bodies(work, args.mb)
    results = {}
    for root in args.root or [ROOT]:
        print(f"\n{root}  ({args.parallel} x {args.mb} MB)")
        results[root] = measure(root.resolve(), work, bodies, args.parallel)
        show(results[root])
    if len(results) > 1:
        compare(results)


def make_bodies(work, mb):
    """Write the upload (lines of text), the JSON body and the multipart body to files."""
    line = "the quick brown fox jumps over the lazy dog 0123456789\n"
    text = line * (mb * 1000 * 1000 // len(line))
    upload = work / "upload.txt"
    upload.write_text(text)
    body = work / "body.json"
    with body.open("w") as out:
        out.write('{"job": "sink", "submission_name": "bench", "input_data": ')
        out.write(json.dumps(text))
        out.write("}")
    form = work / "body.multipart"
    with form.open("wb") as out:
        out.write(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="job"\r\n\r\nsink\r\n'.encode())
        out.write(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="input_data"; filename="upload.txt"\r\nContent-Type: text/plain\r\n\r\n'.encode())
        with upload.open("rb") as source:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        out.write(f"\r\n--{BOUNDARY}--\r\n".encode())
    return {"JSON": (body, "application/json"), "multipart": (form, f"multipart/form-data; boundary={BOUNDARY}")}


def measure(root, work, bodies, parallel):
    data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=work))
    env = {**{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}, "SLUICE_DATA_DIR": str(data_dir), "SLUICE_SANDBOX": "off"}
    manage = [sys.executable, str(root / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, cwd=root, check=True, capture_output=True)
    (data_dir / "sink.yaml").write_text(JOB)
    subprocess.run([*manage, "loadjobs", str(data_dir / "sink.yaml")], env=env, cwd=root, check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen([*manage, "up", "--addr", f"127.0.0.1:{port}"], env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=90)
        get(port, "/api/jobs/sink/")  # load what the first request loads
        time.sleep(2)
        rows = [("baseline", rss(server.pid), None, None)]
        for name, (body, content_type) in bodies.items():
            rows.append(round_of(server.pid, port, name, body, content_type, parallel))
        return rows
    finally:
        server.terminate()
        server.wait(timeout=60)


def round_of(pid, port, name, body, content_type, parallel):
    """Send ``parallel`` copies of ``body`` at once; return (name, RSS after, sampled peak, kernel peak), in bytes."""
    reset_peak(pid)
    sampler = Sampler(pid)
    sampler.start()
    statuses = []
    senders = [threading.Thread(target=lambda: statuses.append(post(port, body, content_type))) for _ in range(parallel)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    time.sleep(5)
    sampler.stop()
    if statuses != [201] * parallel:
        raise SystemExit(f"{name}: the server answered {statuses}")
    return (f"{parallel} x {name}", rss(pid), sampler.peak, peak(pid))


def post(port, body, content_type):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    with body.open("rb") as stream:
        connection.request("POST", "/api/submissions/", body=stream, headers={"Content-Type": content_type, "Content-Length": str(body.stat().st_size)})
        response = connection.getresponse()
        response.read()
    connection.close()
    return response.status


def get(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path)
    assert connection.getresponse().status == 200
    connection.close()


class Sampler(threading.Thread):
    """Read a process's RSS every 10 ms and keep the largest."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopping = pid, 0, threading.Event()

    def run(self):
        while not self.stopping.wait(0.01):
            self.peak = max(self.peak, rss(self.pid))

    def stop(self):
        self.stopping.set()
        self.join()


def status_field(pid, name):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(name)


def rss(pid):
    return status_field(pid, "VmRSS")


def peak(pid):
    return status_field(pid, "VmHWM")


def reset_peak(pid):
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux 4.0+)


def show(rows):
    baseline = rows[0][1]
    print(f"{'':<16}{'RSS after':>12}{'peak':>10}{'peak (kernel)':>15}{'peak - baseline':>17}{'after - baseline':>18}")
    for name, after, sampled, kernel in rows:
        if sampled is None:
            print(f"{name:<16}{mib(after):>12}")
            continue
        print(f"{name:<16}{mib(after):>12}{mib(sampled):>10}{mib(kernel):>15}{mib(max(sampled, kernel) - baseline):>17}{mib(after - baseline):>18}")


def compare(results):
    roots = list(results)
    print("\n" + " " * 40 + "".join(f"{root.name:>16}" for root in roots))
    for index, name in enumerate(row[0] for row in results[roots[0]]):
        if index == 0:
            print(f"{'baseline RSS':<40}" + "".join(f"{mib(results[root][0][1]):>16}" for root in roots))
            continue
        for label, value in (("peak - baseline", lambda row, base: max(row[2], row[3]) - base), ("after - baseline", lambda row, base: row[1] - base)):
            cells = "".join(f"{mib(value(results[root][index], results[root][0][1])):>16}" for root in roots)
            print(f"{name + ': ' + label:<40}{cells}")


def mib(size):
    return f"{size / (1 << 20):.0f} MiB"


if __name__ == "__main__":
    main()
