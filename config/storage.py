"""Where uploads, results and logs are stored: Django's ``STORAGES["default"]`` from the environment.

``SLUICE_STORAGE=filesystem`` (the default) keeps them under MEDIA_ROOT, which every host that runs
the web server or a worker must then share. ``SLUICE_STORAGE=s3`` keeps them as objects in a
bucket of an S3-compatible store (AWS S3, MinIO, Ceph, ...) through django-storages, and hosts
share nothing but the database, the broker and the bucket. docs/configuration.md lists the settings.
"""
from django.core.exceptions import ImproperlyConfigured

FILESYSTEM = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
MB = 1024 * 1024


def _int(environ, name, default):
    text = environ.get(name, "").strip() or str(default)
    try:
        return int(text)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {text!r}") from None


def _transfer_config(chunk, concurrency):
    """boto3's managed-transfer settings: parts of ``chunk`` bytes, ``concurrency`` of them at a time and in memory."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=concurrency, io_chunksize=256 * 1024)
    # Not among boto3's keyword arguments, but read by its transfer manager (s3transfer): without it
    # an upload may hold 10 parts in memory whatever the concurrency.
    config.max_in_memory_upload_chunks = concurrency
    config.max_in_memory_download_chunks = concurrency
    return config


def s3_options(environ):
    """django-storages S3Storage options from ``environ`` (a mapping such as os.environ)."""
    bucket = environ.get("AWS_STORAGE_BUCKET_NAME", "").strip()
    if not bucket:
        raise ImproperlyConfigured("SLUICE_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME, the bucket that holds uploads, results and logs")
    chunk = _int(environ, "SLUICE_S3_CHUNK_MB", 8) * MB
    concurrency = _int(environ, "SLUICE_S3_CONCURRENCY", 4)
    if chunk < 5 * MB or concurrency < 1:
        raise ImproperlyConfigured("SLUICE_S3_CHUNK_MB must be at least 5 (S3's smallest multipart part) and SLUICE_S3_CONCURRENCY at least 1")
    options = {
        "bucket_name": bucket,
        "endpoint_url": environ.get("AWS_S3_ENDPOINT_URL", "").strip() or None,
        "region_name": environ.get("AWS_S3_REGION_NAME", "").strip() or None,
        "location": environ.get("AWS_LOCATION", "").strip().strip("/"),
        "querystring_expire": _int(environ, "AWS_QUERYSTRING_EXPIRE", 300),
        "addressing_style": environ.get("AWS_S3_ADDRESSING_STYLE", "").strip() or None,
        "signature_version": environ.get("AWS_S3_SIGNATURE_VERSION", "").strip() or "s3v4",
        # Never overwrite: a restarted step's result takes a new name beside the superseded one's,
        # as it does on a file system, so history and its deletion never touch the new object.
        "file_overwrite": False,
        "default_acl": None,  # objects are private; clients reach them through the server or a signed URL
        "querystring_auth": True,
        # An upload in parts of `chunk` bytes, at most `concurrency` of them in memory and in flight:
        # storing a 1 GB result costs about chunk * concurrency of memory, not 1 GB.
        "transfer_config": _transfer_config(chunk, concurrency),
        # django-storages' own reader spools an object to a temporary file; past this it goes to disk.
        "max_memory_size": 2 * MB,
    }
    verify = environ.get("AWS_S3_VERIFY", "").strip()
    if verify:  # a CA bundle's path, or 0 to skip checking the store's certificate
        options["verify"] = False if verify.lower() in ("0", "false", "no", "off") else verify
    # Keys: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) when set; otherwise boto3's
    # own chain (instance roles, ~/.aws). Read by django-storages from the environment, never stored here.
    for option, name in (("access_key", "AWS_ACCESS_KEY_ID"), ("secret_key", "AWS_SECRET_ACCESS_KEY"), ("security_token", "AWS_SESSION_TOKEN")):
        if environ.get(name):
            options[option] = environ[name]
    return options


def default_storage(environ):
    """``STORAGES["default"]`` for ``environ``'s SLUICE_STORAGE."""
    kind = environ.get("SLUICE_STORAGE", "filesystem").strip().lower() or "filesystem"
    if kind == "filesystem":
        return dict(FILESYSTEM)
    if kind == "s3":
        return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": s3_options(environ)}
    raise ImproperlyConfigured(f"SLUICE_STORAGE must be filesystem or s3, got {kind!r}")
