"""Read, copy and serve stored files (uploads, results, logs) on whichever storage holds them.

Storage is a local directory (``FileSystemStorage``, the default) or a bucket of an
S3-compatible object store (``SLUICE_STORAGE=s3``, docs/operations.md). Nothing here relies on
a stored file's local path, which an object does not have (``local_path`` only names it in
messages), and copies and downloads never hold a whole file in memory: objects are read as the
HTTP body of one GET, in chunks, rather than through
django-storages' ``S3File``, which first downloads the whole object into a temporary file.
Writes go through the storage's own ``save``; the S3 backend's is a multipart upload whose
memory the transfer settings bound (config/storage.py).
"""
import shutil

from django.conf import settings
from django.http import FileResponse, HttpResponseRedirect
from django.utils.http import content_disposition_header

CHUNK = 1024 * 1024  # bytes per read when copying or serving a file


def in_bucket(storage):
    """Whether ``storage`` keeps its files as objects in an S3 bucket (django-storages' S3Storage)."""
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # django-storages is only needed when a bucket is used
        return False
    return isinstance(storage, S3Storage)  # default_storage, a lazy proxy, answers for what it wraps


def object_key(fieldfile):
    """The key of ``fieldfile``'s object in its bucket (its name under the storage's AWS_LOCATION prefix)."""
    from storages.utils import clean_name

    return fieldfile.storage._normalize_name(clean_name(fieldfile.name))


def _get(fieldfile, **extra):
    """GET the object of ``fieldfile``: its botocore response; FileNotFoundError if there is none."""
    from botocore.exceptions import ClientError

    storage = fieldfile.storage
    try:
        return storage.connection.meta.client.get_object(Bucket=storage.bucket_name, Key=object_key(fieldfile), **extra)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise FileNotFoundError(f"no object {object_key(fieldfile)!r} in bucket {storage.bucket_name!r}") from None
        raise


def reader(fieldfile):
    """A binary file-like object that reads ``fieldfile`` from the start, in whatever pieces are asked for.

    Use it as a context manager (it holds a file or a connection). An object's reader streams the
    body of one GET: it cannot seek.
    """
    if in_bucket(fieldfile.storage):
        return _get(fieldfile)["Body"]
    return fieldfile.storage.open(fieldfile.name, "rb")


def read_from(fieldfile, start):
    """The bytes of ``fieldfile`` from offset ``start`` to its end (a ranged GET for an object)."""
    if in_bucket(fieldfile.storage):
        with _get(fieldfile, Range=f"bytes={max(0, start)}-")["Body"] as body:
            return body.read()
    with fieldfile.storage.open(fieldfile.name, "rb") as handle:
        handle.seek(max(0, start))
        return handle.read()


def copy_to(fieldfile, destination):
    """Write ``fieldfile`` to the local path ``destination``, CHUNK bytes at a time."""
    with reader(fieldfile) as source, open(destination, "wb") as target:
        shutil.copyfileobj(source, target, CHUNK)


def signed_url(fieldfile, filename, content_type, as_attachment=True, expire=None):
    """A URL that lets its holder GET this one object for ``expire`` seconds (default AWS_QUERYSTRING_EXPIRE).

    The URL is signed with the server's key for exactly this object, method and lifetime, and asks the
    store to answer with the given file name and type, as the server's own download would.
    """
    parameters = {
        "ResponseContentDisposition": content_disposition_header(as_attachment, filename),
        "ResponseContentType": content_type,
    }
    return fieldfile.storage.url(fieldfile.name, parameters=parameters, expire=expire)


def download(fieldfile, filename, content_type, as_attachment=True):
    """The response that hands ``fieldfile`` to a client who has passed the caller's permission checks.

    With SLUICE_DOWNLOAD_REDIRECT and a bucket: a 302 to a short-lived signed URL of the object, so
    the bytes go from the store to the client without passing through this server. Otherwise the file
    streamed from storage in CHUNK-sized pieces.
    """
    storage = fieldfile.storage
    if in_bucket(storage):
        if settings.SLUICE_DOWNLOAD_REDIRECT:
            response = HttpResponseRedirect(signed_url(fieldfile, filename, content_type, as_attachment))
            response["Cache-Control"] = "private, no-store"  # the URL is a short-lived credential
            return response
        got = _get(fieldfile)
        response = FileResponse(got["Body"], as_attachment=as_attachment, filename=filename, content_type=content_type)
        response.block_size = CHUNK
        response["Content-Length"] = str(got["ContentLength"])
        return response
    return FileResponse(fieldfile.open("rb"), as_attachment=as_attachment, filename=filename, content_type=content_type)


def local_path(fieldfile):
    """The local path of ``fieldfile`` when its storage is a directory on this host, else None (for messages only)."""
    from django.core.files.storage import FileSystemStorage

    storage = fieldfile.storage
    if isinstance(storage, FileSystemStorage):
        return storage.path(fieldfile.name)
    return None
