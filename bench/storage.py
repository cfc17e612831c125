#!/usr/bin/env python
"""Measure how fast a big file moves in and out of storage: the file system against an S3 bucket (run by hand).

    .venv/bin/python bench/storage.py [--size-mb 200] [--repeat 3] [--endpoint URL --bucket NAME]

For each storage it times, ``--repeat`` times, the three moves a big file makes in Sluice, with the
calls Sluice makes:

- upload: a submitter's spooled upload (Django's ``TemporaryUploadedFile``) saved to storage, as
  ``engine.submit`` stores the input;
- stage in: a stored file copied into a step's working directory (``execution.stored.copy_to``,
  in 1 MB chunks);
- gather out: a step's output file saved to storage (``storage.save`` of the open file, as
  ``engine._replace_results`` does).

The storages are ``FileSystemStorage`` in a temporary directory and django-storages' S3Storage
with Sluice's options (``config.storage``: 8 MB parts, 4 at a time unless SLUICE_S3_CHUNK_MB and
SLUICE_S3_CONCURRENCY say otherwise). Without ``--endpoint`` the bucket is on a ``moto_server``
this script starts on a free loopback port (``pip install 'moto[server]'``) and stops at the end;
with it, a real store (keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and the bucket must
exist). The figures are MB/s (1 MB = 2**20 bytes), the median of the repeats. moto keeps
objects in its own process and checks nothing, so it measures Sluice's side of S3 (HTTP, signing,
multipart) rather than a store's disks. Progress goes to stderr, the Markdown table to stdout.
"""
import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_moto(workdir):
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(binary).exists():
        sys.exit("moto_server is not installed: pip install 'moto[server]' (or give --endpoint of a real store)")
    port = free_port()
    process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit("moto_server did not start")


def make_file(path, size):
    """A file of ``size`` bytes of varied content, written in 1 MB pieces."""
    piece = os.urandom(MB)
    with open(path, "wb") as handle:
        for _ in range(size // MB):
            handle.write(piece)
        handle.write(piece[: size % MB])


def measure(storage, source, workdir, size, repeat, label):
    from django.core.files import File
    from django.core.files.uploadedfile import TemporaryUploadedFile

    from execution import stored

    times = {"upload": [], "stage in": [], "gather out": []}
    for round_ in range(repeat):
        # upload: the request's spooled file, saved as the submission's input.
        spooled = TemporaryUploadedFile("upload", "application/octet-stream", size, None)
        with open(source, "rb") as handle:
            shutil.copyfileobj(handle, spooled, MB)
        spooled.seek(0)
        started = time.perf_counter()
        name = storage.save(f"bench/{uuid.uuid4()}/in.input", File(spooled))
        times["upload"].append(time.perf_counter() - started)
        spooled.close()
        # stage in: into a step's working directory.
        destination = workdir / f"staged-{round_}"
        started = time.perf_counter()
        stored.copy_to(SimpleNamespace(storage=storage, name=name), destination)
        times["stage in"].append(time.perf_counter() - started)
        assert destination.stat().st_size == size, "staged file has the wrong size"
        # gather out: the step's output file saved to storage.
        started = time.perf_counter()
        with open(destination, "rb") as handle:
            out = storage.save(f"bench/{uuid.uuid4()}/out.result", File(handle))
        times["gather out"].append(time.perf_counter() - started)
        destination.unlink()
        storage.delete(name)
        storage.delete(out)
        print(f"{label} round {round_ + 1}: " + ", ".join(f"{k} {size / MB / v[-1]:.0f} MB/s" for k, v in times.items()), file=sys.stderr)
    return {move: size / MB / statistics.median(seconds) for move, seconds in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--endpoint", help="an S3-compatible store's URL (default: a moto_server started here)")
    parser.add_argument("--bucket", default="", help="with --endpoint: an existing bucket to write bench/… objects in")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="sluice-bench-storage-"))
    moto = None
    try:
        os.environ.setdefault("SLUICE_DATA_DIR", str(scratch / "data"))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.files.storage import FileSystemStorage
        from storages.backends.s3 import S3Storage

        from config.storage import s3_options

        if args.endpoint:
            endpoint, bucket = args.endpoint, args.bucket or sys.exit("--endpoint needs --bucket")
            keys = {}
        else:
            moto, endpoint = start_moto(scratch)
            bucket = "sluice-bench"
            keys = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
        environ = {**os.environ, **keys, "AWS_STORAGE_BUCKET_NAME": bucket, "AWS_S3_ENDPOINT_URL": endpoint, "AWS_S3_REGION_NAME": args.region}
        s3 = S3Storage(**s3_options(environ))
        if moto:
            s3.connection.meta.client.create_bucket(Bucket=bucket)
        size = args.size_mb * MB
        source = scratch / "source"
        make_file(source, size)
        work = scratch / "work"
        work.mkdir()
        figures = {
            "file system": measure(FileSystemStorage(location=scratch / "media"), source, work, size, args.repeat, "file system"),
            "S3": measure(s3, source, work, size, args.repeat, "S3"),
        }
    finally:
        if moto:
            moto.kill()
            moto.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    where = f"moto_server on loopback ({endpoint})" if moto else endpoint
    print(f"Storage throughput, {args.size_mb} MB file, MB/s, median of {args.repeat} ({platform.python_version()}, {os.cpu_count()} cores; S3: {where})\n")
    print("| storage | upload | stage in | gather out |")
    print("|---|---:|---:|---:|")
    for name, row in figures.items():
        print(f"| {name} | {row['upload']:.0f} | {row['stage in']:.0f} | {row['gather out']:.0f} |")


if __name__ == "__main__":
    main()
