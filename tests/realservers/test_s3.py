"""Object storage on a real S3-compatible server (moto_server on loopback): uploads, results and logs in a bucket.

Worker processes and this test process both use SLUICE_STORAGE=s3 against the same bucket; the
media directory they would otherwise use must stay empty.
"""
import hashlib
import hmac
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from execution import dispatch, retention
from tests.clients import client_for
from tests.factories import make_job, make_task

from .conftest import EXPIRE, MB
from .servers import MotoS3
from .test_distributed import finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def workers(processes, bucket, count=1):
    return [processes.start("worker", "--processes", "1", "--threads", "1", env=bucket.env) for _ in range(count)]


def submit_over_api(user, job_name, data, **params):
    response = client_for(user).post("/api/submissions/", {"job": job_name, "input_data": data, **params}, format="json")
    assert response.status_code == 201, response.content
    from execution.models import Submission

    return Submission.objects.get(uuid=response.json()["uuid"])


def upper_job():
    task = make_task("upper", "tr a-z A-Z < $I1 > $O1; echo 'upper ran' >&2", in_glob=".input", out_glob=".up")
    return make_job("shout", steps=[task])


def test_upload_step_result_and_log_live_in_the_bucket(processes, bucket, owner):
    workers(processes, bucket)
    upper_job()
    submission = finished(submit_over_api(owner, "shout", "hello object storage\n"))
    assert submission.status == "complete", submission.last_message
    node = submission.nodes.get()
    keys = bucket.keys()
    prefix = f"results/{submission.uuid}/"
    assert f"{prefix}_input/{submission.file_id}.input" in keys
    assert f"{prefix}upper/{submission.file_id}.up" in keys
    assert f"logs/{submission.uuid}/{node.pk}-1-1.stderr.txt" in keys
    assert bucket.read(f"{prefix}upper/{submission.file_id}.up") == b"HELLO OBJECT STORAGE\n"
    assert all(result.file.name.startswith("results/") for result in submission.results.all())


def test_the_api_streams_a_result_and_a_log_from_the_bucket(processes, bucket, owner, settings):
    settings.SLUICE_DOWNLOAD_REDIRECT = False
    workers(processes, bucket)
    upper_job()
    submission = finished(submit_over_api(owner, "shout", "stream me\n" * 1000))
    result = submission.results.get(node__isnull=False)
    response = client_for(owner).get(f"/api/submissions/{submission.uuid}/results/{result.pk}/")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Length"] == str(len("STREAM ME\n" * 1000))
    assert b"".join(response.streaming_content) == b"STREAM ME\n" * 1000
    assert f'filename="{result.name}"' in response["Content-Disposition"]
    log = client_for(owner).get(f"/api/submissions/{submission.uuid}/nodes/upper/log/", {"stream": "stderr"})
    assert log.status_code == 200 and b"".join(log.streaming_content) == b"upper ran\n"


def sigv4_valid(url, secret, region, now):
    """Check an S3 query-signed (SigV4) GET URL as S3 does: the signature covers this host, path and query, and it has not expired.

    moto_server serves signed URLs without checking their signature or expiry, so the test checks
    them here, by the published algorithm, with the key pair the server was given.
    """
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    fields = dict(query)
    signed_at = datetime.strptime(fields["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    if now > signed_at + timedelta(seconds=int(fields["X-Amz-Expires"])):
        return False
    quote = lambda text: urllib.parse.quote(text, safe="-_.~")  # noqa: E731
    canonical_query = "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(query) if k != "X-Amz-Signature")
    headers = fields["X-Amz-SignedHeaders"].split(";")
    assert headers == ["host"], headers
    canonical = "\n".join(["GET", urllib.parse.quote(urllib.parse.unquote(parts.path), safe="/-_.~"), canonical_query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"])
    scope = fields["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(["AWS4-HMAC-SHA256", fields["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for piece in (scope.split("/")[0], region, "s3", "aws4_request"):
        key = hmac.new(key, piece.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), fields["X-Amz-Signature"])


def test_the_redirect_is_a_short_lived_url_for_that_object_only(processes, bucket, owner, other_user, settings):
    settings.SLUICE_DOWNLOAD_REDIRECT = True
    workers(processes, bucket)
    upper_job()
    first = finished(submit_over_api(owner, "shout", "first\n"))
    second = finished(submit_over_api(owner, "shout", "second\n"))
    result = first.results.get(node__isnull=False)
    response = client_for(owner).get(f"/api/submissions/{first.uuid}/results/{result.pk}/")
    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    url = response["Location"]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query["X-Amz-Expires"] == str(EXPIRE)
    assert result.name in query["response-content-disposition"]
    with urllib.request.urlopen(url) as fetched:  # what the client's next request gets: the object itself
        assert fetched.read() == b"FIRST\n"  # (moto ignores response-content-disposition; S3 answers with it)
    now = datetime.now(timezone.utc)
    assert sigv4_valid(url, MotoS3.SECRET_KEY, MotoS3.REGION, now)
    assert not sigv4_valid(url, MotoS3.SECRET_KEY, MotoS3.REGION, now + timedelta(seconds=EXPIRE + 1)), "the URL must expire"
    other_key = second.results.get(node__isnull=False).file.name
    tampered = url.replace(urllib.parse.quote(result.file.name), urllib.parse.quote(other_key))
    assert tampered != url and not sigv4_valid(tampered, MotoS3.SECRET_KEY, MotoS3.REGION, now), "the URL must name one object"
    assert not sigv4_valid(url, "another-secret", MotoS3.REGION, now)
    # The page's download redirects too, after the same checks.
    page = client_for(owner)
    page.force_login(owner)
    assert page.get(f"/submissions/{first.uuid}/results/{result.pk}/file/").status_code == 302
    # Someone else gets 404 and no URL, from the API and the pages alike.
    for path in (f"/api/submissions/{first.uuid}/results/{result.pk}/", f"/submissions/{first.uuid}/results/{result.pk}/file/", f"/submissions/{first.uuid}/results/{result.pk}/"):
        stranger = client_for(other_user)
        stranger.force_login(other_user)
        refused = stranger.get(path)
        assert refused.status_code == 404 and "Location" not in refused, path
        assert bucket.name not in refused.content.decode(errors="replace")


def test_retention_deletes_the_objects(processes, bucket, owner):
    workers(processes, bucket)
    upper_job()
    gone = finished(submit_over_api(owner, "shout", "old\n"))
    kept = finished(submit_over_api(owner, "shout", "new\n"))
    assert bucket.keys(f"results/{gone.uuid}/") and bucket.keys(f"logs/{gone.uuid}/")
    type(gone).objects.filter(pk=gone.pk).update(finished_at=gone.finished_at - timedelta(days=30))
    assert retention.purge(days=7) == 1
    assert bucket.keys(f"results/{gone.uuid}/") == [] and bucket.keys(f"logs/{gone.uuid}/") == []
    assert len(bucket.keys(f"results/{kept.uuid}/")) == 2 and bucket.keys(f"logs/{kept.uuid}/")


def peak_rss_mb(pid):
    """The process's peak resident memory so far (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def test_a_200_mb_result_is_gathered_and_staged_without_the_worker_holding_it(processes, bucket, owner):
    """A 200 MB result goes up to the bucket and back down to the next step in chunks.

    Measured, not timed: the worker's peak resident memory (VmHWM, which no sampling can miss) may
    grow by well under the file's size: the bound, 100 MB, is half of it, so a copy held whole in
    memory fails, while the multipart upload's parts (SLUICE_S3_CHUNK_MB x SLUICE_S3_CONCURRENCY,
    32 MB by default) pass. The first submission warms the worker (imports, connections) with the
    same steps on a small file.
    """
    (worker,) = workers(processes, bucket)
    warm = finished(_start(_big_job("warm", 1), owner))
    assert warm.status == "complete", warm.last_message
    before = peak_rss_mb(worker.pid)
    submission = finished(_start(_big_job("big", 200), owner), timeout=300)
    assert submission.status == "complete", submission.last_message
    grown = peak_rss_mb(worker.pid) - before
    big = submission.results.get(node__key="make")
    assert big.size == 200 * MB + 3
    with submission.results.get(node__key="check").file.open("rb") as handle:
        digest, size = handle.read().decode().split()
    assert int(size) == big.size and digest == bucket.digest(big.file.name)
    print(f"the worker's peak RSS grew by {grown:.1f} MB moving a 200 MB result up and down")
    assert grown < 100, f"the worker's peak memory grew by {grown:.0f} MB moving a 200 MB file"


def _big_job(name, size_mb):
    """Step make writes size_mb MB (plus 3 bytes); step check reads it back and writes its sha256 and size."""
    make = make_task(f"{name}-make", f"head -c {size_mb * MB} /dev/zero | tr '\\0' x > $O1; printf end >> $O1", out_glob=".big")
    check = make_task(f"{name}-check", "sha256sum < $I1 | cut -c1-64 > $O1; wc -c < $I1 >> $O1", in_glob=".big", out_glob=".sum")
    return make_job(name, steps=[("make", make, {"ordering": 0}), ("check", check, {"ordering": 1})])


def _start(job, user):
    from execution import engine

    submission = engine.submit(job, user=user)
    dispatch.start(submission)
    return submission
