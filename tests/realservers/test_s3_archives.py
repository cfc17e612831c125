"""Download all and the RO-Crate from a real S3-compatible bucket (moto_server on loopback): streamed from the objects."""
import io
import json
import zipfile

import pytest

from tests.clients import client_for

from .test_distributed import finished
from .test_s3 import submit_over_api, upper_job, workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_archive_and_the_ro_crate_stream_every_file_from_the_bucket(processes, bucket, owner):
    workers(processes, bucket)
    upper_job()
    submission = finished(submit_over_api(owner, "shout", "from the bucket\n" * 5000))
    assert submission.status == "complete", submission.last_message
    response = client_for(owner).get(f"/api/submissions/{submission.uuid}/archive/")
    assert response.status_code == 200 and response.streaming
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["upload/input", "upper/upper.up"]
    assert archive.read("upper/upper.up") == bucket.read(f"results/{submission.uuid}/upper/{submission.file_id}.up") == b"FROM THE BUCKET\n" * 5000
    crate = client_for(owner).get(f"/api/submissions/{submission.uuid}/ro-crate/")
    assert crate.status_code == 200
    files = zipfile.ZipFile(io.BytesIO(b"".join(crate.streaming_content)))
    assert files.read("upload/input") == b"from the bucket\n" * 5000
    metadata = json.loads(files.read("ro-crate-metadata.json"))
    assert {entity["@id"] for entity in metadata["@graph"]} >= {"./", "workflow.json", "upper/upper.up", "#action-upper"}


def test_a_result_missing_from_the_bucket_is_a_json_404(processes, bucket, owner):
    workers(processes, bucket)
    upper_job()
    submission = finished(submit_over_api(owner, "shout", "gone\n"))
    result = submission.results.get(node__isnull=False)
    result.file.storage.delete(result.file.name)
    response = client_for(owner).get(f"/api/submissions/{submission.uuid}/archive/")
    assert response.status_code == 404 and "upper/upper.up" in response.json()["detail"]
