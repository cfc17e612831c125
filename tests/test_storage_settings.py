"""SLUICE_STORAGE and the AWS_* settings become Django's STORAGES["default"] (config/storage.py).

The bucket itself is exercised against a real S3 server in tests/realservers/test_s3.py.
"""
import pytest
from django.core.exceptions import ImproperlyConfigured

from config import storage
from execution import stored
from execution.models import Result
from tests.factories import make_job, make_task

BUCKET = {"SLUICE_STORAGE": "s3", "AWS_STORAGE_BUCKET_NAME": "sluice-results"}


def test_the_default_is_the_file_system():
    assert storage.default_storage({}) == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    assert storage.default_storage({"SLUICE_STORAGE": " FileSystem "})["BACKEND"].endswith("FileSystemStorage")


def test_s3_takes_its_settings_from_the_environment():
    chosen = storage.default_storage({
        **BUCKET, "AWS_S3_ENDPOINT_URL": "https://s3.example.org", "AWS_S3_REGION_NAME": "eu-west-1", "AWS_LOCATION": "/sluice/prod/",
        "AWS_QUERYSTRING_EXPIRE": "120", "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret", "SLUICE_S3_CHUNK_MB": "16",
    })
    options = chosen["OPTIONS"]
    assert chosen["BACKEND"] == "storages.backends.s3.S3Storage"
    assert options["bucket_name"] == "sluice-results" and options["endpoint_url"] == "https://s3.example.org"
    assert options["region_name"] == "eu-west-1" and options["location"] == "sluice/prod"
    assert options["querystring_expire"] == 120 and options["access_key"] == "key" and options["secret_key"] == "secret"
    assert options["file_overwrite"] is False and options["default_acl"] is None
    config = options["transfer_config"]
    assert config.multipart_chunksize == 16 * 1024 * 1024 and config.max_concurrency == 4 and config.max_in_memory_upload_chunks == 4


def test_s3_without_keys_leaves_them_to_boto3():
    options = storage.s3_options(BUCKET)
    assert "access_key" not in options and "secret_key" not in options
    assert options["querystring_expire"] == 300 and options["endpoint_url"] is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SLUICE_STORAGE": "nfs"}, "SLUICE_STORAGE must be filesystem or s3"),
        ({"SLUICE_STORAGE": "s3"}, "AWS_STORAGE_BUCKET_NAME"),
        ({**BUCKET, "SLUICE_S3_CHUNK_MB": "1"}, "SLUICE_S3_CHUNK_MB must be at least 5"),
        ({**BUCKET, "SLUICE_S3_CONCURRENCY": "0"}, "SLUICE_S3_CONCURRENCY at least 1"),
        ({**BUCKET, "AWS_QUERYSTRING_EXPIRE": "soon"}, "AWS_QUERYSTRING_EXPIRE must be a whole number"),
    ],
)
def test_wrong_settings_are_refused_by_name(environ, named):
    with pytest.raises(ImproperlyConfigured, match=named):
        storage.default_storage(environ)


def test_stored_files_on_the_file_system_are_read_copied_and_found_locally(db, tmp_path, settings):
    job = make_job(steps=[make_task("t", "true")])
    from execution import engine

    submission = engine.submit(job, input_data=b"0123456789")
    upload = Result.objects.get(submission=submission, node__isnull=True)
    assert not stored.in_bucket(upload.file.storage)
    with stored.reader(upload.file) as handle:
        assert handle.read() == b"0123456789"
    assert stored.read_from(upload.file, 6) == b"6789"
    stored.copy_to(upload.file, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b"0123456789"
    assert stored.local_path(upload.file).startswith(str(settings.MEDIA_ROOT))
