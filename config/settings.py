"""Sluice settings, read from the environment.

Every value a deployment may change comes from an environment variable with a
default that suits the embedded, single-machine mode (SQLite under
``SLUICE_DATA_DIR``). See docs/configuration.md for the list.
"""
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config import storage

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def env_duration(name, default):
    """Seconds from ``90``, ``90s``, ``15m``, ``12h`` or ``7d``."""
    text = os.environ.get(name, default).strip().lower()
    unit = DURATION_UNITS.get(text[-1:], None)
    try:
        return float(text[:-1] if unit else text) * (unit or 1)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be seconds, or a number with s, m, h or d (e.g. 7d); got {text!r}") from None


def keep_private(path, mode):
    """Create directory ``path`` if need be and set its mode, when this user owns it.

    The data directory is 0711, not 0700, so that steps running as another
    user (see SLUICE_STEP_USER) can pass through it to their working directory
    under it; they cannot list it, and what it holds is private on its own
    (the database 0600, the media root 0700).
    """
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    if path.stat().st_uid == os.geteuid():
        path.chmod(mode)


DATA_DIR = Path(os.environ.get("SLUICE_DATA_DIR", BASE_DIR / "var")).resolve()
keep_private(DATA_DIR, 0o711)  # SQLite will not create the directory of its file

DEBUG = env_bool("DJANGO_DEBUG", False)
# The fallback key is only good for local use; production sets DJANGO_SECRET_KEY.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-local-only-key-set-DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
# Behind a proxy that ends TLS: the origins pages are served from (e.g. https://sluice.example.org), which
# Django's CSRF check must trust, and whether to believe the proxy's X-Forwarded-Proto header.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
if env_bool("SLUICE_BEHIND_TLS_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # API tokens, stored as SHA-512 digests (the key is shown once, at creation)
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "jobs",
    "execution",
    "api",
    "web",
]

MIDDLEWARE = [
    "api.middleware.refuse_nul",  # before anything looks a name up in the database
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "web.middleware.ContentSecurityPolicy",
]

# Sent with every response (docs/configuration.md). Scripts come only from this site's own files,
# never from inline code, attributes or other sites, and nothing may frame a page; the pages and the
# diagrams in them use no inline style either. Empty: no header (e.g. when a proxy sets it).
SLUICE_CONTENT_SECURITY_POLICY = os.environ.get(
    "SLUICE_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
).strip()

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'sluice.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        # A kept connection is checked before a request uses it, so one that a database
        # restart closed is replaced instead of failing that request.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and os.environ.get("DATABASE_PREPARED_STATEMENTS", "1") == "1":
    # Bind parameters on the server and let psycopg prepare what a connection
    # runs twice, so that PostgreSQL plans each of a worker's per-step
    # statements once. Set DATABASE_PREPARED_STATEMENTS=0 behind a pooler
    # that cannot keep prepared statements (PgBouncer's transaction mode before 1.21).
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=2)
DATABASE_POOL_SIZE = int(os.environ.get("DATABASE_POOL_SIZE", "0"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_POOL_SIZE > 0:
    # At most DATABASE_POOL_SIZE connections per process, shared by its threads (psycopg_pool, through
    # Django's "pool" option), instead of one per thread: a gunicorn worker of 256 threads neither
    # opens a connection per request (DATABASE_CONN_MAX_AGE=0) nor keeps hundreds open past
    # PostgreSQL's max_connections. A request waits up to DATABASE_POOL_TIMEOUT seconds for one.
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them; Django refuses both at once
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1, "max_size": DATABASE_POOL_SIZE, "timeout": float(os.environ.get("DATABASE_POOL_TIMEOUT", "10")),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers and the web server share one SQLite file: wait for locks rather
    # than failing, and take the write lock at BEGIN so that read-then-write
    # transactions cannot deadlock.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Each connection lives for one request or one step's message (CONN_MAX_AGE 0), so a large
    # page cache buys little; SQLite's default, 2 MiB for each, made `up` grow about 1 MiB per 500
    # submissions until about 9,000 of 10,000 (bench/soak.py, docs/performance.md "Memory").
    SQLITE_CACHE_KIB = int(os.environ.get("SLUICE_SQLITE_CACHE_KIB", "256"))
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-{SQLITE_CACHE_KIB};",
    }
    # The database holds password hashes and sessions: readable by this user alone. Created
    # here (an empty file is a new SQLite database) so that it never exists with wider rights;
    # SQLite gives its -wal and -shm files the same mode.
    _database = Path(DATABASES["default"]["NAME"])
    if _database.parent.is_dir() and str(_database) != ":memory:":
        os.close(os.open(_database, os.O_CREAT | os.O_RDONLY, 0o600))
        if _database.stat().st_uid == os.geteuid():
            _database.chmod(0o600)
    # Tests run workers in threads, which need a database file they can all open;
    # one per test run, so that two runs on one checkout do not collide.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "web:catalogue"
LOGOUT_REDIRECT_URL = "web:catalogue"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise looks here even when serving from the apps
# Uploads, results and logs: files under MEDIA_ROOT (SLUICE_STORAGE=filesystem, the default), which
# hosts must then share, or objects in an S3-compatible bucket (SLUICE_STORAGE=s3 and the AWS_*
# settings, config/storage.py), which leaves the database, the broker and the bucket as all they share.
SLUICE_STORAGE = os.environ.get("SLUICE_STORAGE", "filesystem").strip().lower() or "filesystem"
STORAGES = {
    "default": storage.default_storage(os.environ),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve static files straight from the apps in the embedded mode (no collectstatic needed).
WHITENOISE_USE_FINDERS = True
MEDIA_URL = "media/"
MEDIA_ROOT = DATA_DIR / "media"
keep_private(MEDIA_ROOT, 0o700)  # every submission's results: the server reads and serves them, nobody else
# With a bucket, downloads (API and pages) answer 302 to a signed URL of the object, valid for
# AWS_QUERYSTRING_EXPIRE seconds, instead of streaming it through this server. Off: streamed.
SLUICE_DOWNLOAD_REDIRECT = env_bool("SLUICE_DOWNLOAD_REDIRECT", False)
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# Where nodes run when their backend names no root path of its own.
SLUICE_WORK_DIR = Path(os.environ.get("SLUICE_WORK_DIR", DATA_DIR / "work")).resolve()
# Keep a node's working directory after it finishes (useful when debugging a task).
SLUICE_KEEP_WORK_DIRS = env_bool("SLUICE_KEEP_WORK_DIRS", False)
# How much of a failed node's stderr is kept in its message.
SLUICE_STDERR_TAIL = int(os.environ.get("SLUICE_STDERR_TAIL", "2000"))
# Bytes kept of each stream (stdout, stderr) of each attempt of a step: past this, the head and
# the tail, half each, with a marker line between them that says how much was cut.
SLUICE_LOG_MAX_BYTES = int(os.environ.get("SLUICE_LOG_MAX_BYTES", str(1024 * 1024)))
# Environment variables a step inherits from its worker (besides its task's own and SLUICE_*).
# Nothing else passes, so the worker's secrets (DJANGO_SECRET_KEY, DATABASE_URL…) never reach a step.
SLUICE_STEP_ENV = env_list("SLUICE_STEP_ENV", "PATH,HOME,LANG,LC_ALL,LC_CTYPE,TZ,TMPDIR,USER,LOGNAME,SHELL")
# How steps are confined (docs/operations.md, "Threat model"): auto uses the strongest mechanism
# this host offers, require refuses to run steps when there is none, off runs them unconfined.
SLUICE_SANDBOX = os.environ.get("SLUICE_SANDBOX", "auto").strip().lower()
if SLUICE_SANDBOX not in ("auto", "require", "off"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"SLUICE_SANDBOX must be auto, require or off, got {SLUICE_SANDBOX!r}")
# The unprivileged user a root server runs steps as (`make setup` creates it).
SLUICE_STEP_USER = os.environ.get("SLUICE_STEP_USER", "sluice-step")
# Directories (or files) steps may read besides the system's and the Python interpreter's, e.g. reference data.
SLUICE_SANDBOX_READ_PATHS = env_list("SLUICE_SANDBOX_READ_PATHS", "")
# Directories steps may also write (a shared scratch space); the step user needs the file rights too.
SLUICE_SANDBOX_WRITE_PATHS = env_list("SLUICE_SANDBOX_WRITE_PATHS", "")
# Interpreters for the python and r queue types.
SLUICE_PYTHON = os.environ.get("SLUICE_PYTHON", "") or None
SLUICE_RSCRIPT = os.environ.get("SLUICE_RSCRIPT", "Rscript")
# The container runtime of the container queue type: podman, docker or apptainer, with any global
# flags (shell-split, e.g. "podman --runtime /usr/sbin/runc"); and further flags of its run command.
SLUICE_CONTAINER_RUNTIME = os.environ.get("SLUICE_CONTAINER_RUNTIME", "podman")
SLUICE_CONTAINER_ARGS = os.environ.get("SLUICE_CONTAINER_ARGS", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("SLUICE_LOG_LEVEL", "WARNING")},
    # While RabbitMQ is unreachable, Dramatiq and Sluice say so in a line per retry; pika, its
    # client, would add four ERROR lines per connection attempt.
    "loggers": {"pika": {"level": "CRITICAL"}},
}

# --- Running steps -----------------------------------------------------------
# Empty: the embedded mode (an in-process broker; `manage.py up`). redis://… (Redis)
# or amqp://USER:PASSWORD@HOST:5672/VHOST (RabbitMQ) for workers on other processes
# and hosts (`manage.py worker`). See docs/configuration.md, "BROKER_URL".
BROKER_URL = os.environ.get("BROKER_URL", "")
# A running node's lease: renewed by its worker's heartbeat; when it lapses the
# reconciler treats the worker as dead and runs the node again.
SLUICE_LEASE_SECONDS = float(os.environ.get("SLUICE_LEASE_SECONDS", "30"))
# How often a worker checks on the node it runs (cancel, lease renewal).
SLUICE_HEARTBEAT_SECONDS = float(os.environ.get("SLUICE_HEARTBEAT_SECONDS", "0.5"))
# How often a worker's follower asks the cluster about the jobs it follows (one squeue for all).
SLUICE_FOLLOW_SECONDS = float(os.environ.get("SLUICE_FOLLOW_SECONDS", "1"))
# A node queued this long without starting has its message sent again.
SLUICE_REQUEUE_SECONDS = float(os.environ.get("SLUICE_REQUEUE_SECONDS", "60"))
# How long `worker` and `up` wait at start for a broker that does not answer yet, before exiting with a sentence.
SLUICE_BROKER_WAIT = float(os.environ.get("SLUICE_BROKER_WAIT", "30"))
# How often the reconciler runs (the `up` loop; the django-q2 schedule uses minutes).
SLUICE_RECONCILE_SECONDS = float(os.environ.get("SLUICE_RECONCILE_SECONDS", "10"))
# Retries wait SLUICE_RETRY_BACKOFF * 2**(attempt-1) seconds, at most SLUICE_RETRY_BACKOFF_MAX.
SLUICE_RETRY_BACKOFF = float(os.environ.get("SLUICE_RETRY_BACKOFF", "1"))
SLUICE_RETRY_BACKOFF_MAX = float(os.environ.get("SLUICE_RETRY_BACKOFF_MAX", "300"))
# Times a node is run again after its worker died, when its task allows fewer retries.
SLUICE_LOST_NODE_RETRIES = int(os.environ.get("SLUICE_LOST_NODE_RETRIES", "2"))
# Finished submissions older than this many days are deleted with their files (0: keep).
SLUICE_RETENTION_DAYS = int(os.environ.get("SLUICE_RETENTION_DAYS", "0"))
# Retention deletes this many submissions per transaction: writers wait for one batch at most.
SLUICE_RETENTION_BATCH = max(1, int(os.environ.get("SLUICE_RETENTION_BATCH", "500")))
# A submission left waiting (for input) or paused this long ends, cancelled, freeing its
# submitter's quota. Seconds, or with a unit: 90m, 12h, 7d. 0 never expires them.
SLUICE_IDLE_EXPIRY = env_duration("SLUICE_IDLE_EXPIRY", "7d")

Q_CLUSTER = {
    "name": "sluice",
    "orm": "default",  # django-q2's ORM broker: schedules need no other server
    "workers": int(os.environ.get("SLUICE_Q_WORKERS", "1")),
    "timeout": 600,
    "retry": 660,
    "catch_up": False,
    "log_level": os.environ.get("SLUICE_LOG_LEVEL", "WARNING"),
}

# --- Submissions over the API ----------------------------------------------------
# Largest accepted upload, in bytes (larger ones get 413).
SLUICE_MAX_UPLOAD_BYTES = int(os.environ.get("SLUICE_MAX_UPLOAD_BYTES", str(100 * 1024 * 1024)))
# How long an Idempotency-Key is remembered: a retry within it gets the first answer.
SLUICE_IDEMPOTENCY_HOURS = float(os.environ.get("SLUICE_IDEMPOTENCY_HOURS", "24"))
# Whether a cacheable task's results are reused across submitters. Off: only within one
# user's submissions (anonymous: one address's), so the cache tells nobody what others ran.
SLUICE_CACHE_SHARED = env_bool("SLUICE_CACHE_SHARED", False)
# How many entries of each list (nodes, results, history, messages) a submission's API document
# holds; the rest are served a page at a time (GET /api/submissions/{uuid}/nodes/ and the like).
SLUICE_DOCUMENT_LIMIT = int(os.environ.get("SLUICE_DOCUMENT_LIMIT", "1000"))
if SLUICE_DOCUMENT_LIMIT < 1:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"SLUICE_DOCUMENT_LIMIT must be at least 1, got {SLUICE_DOCUMENT_LIMIT}")
# Most instances one foreach step may expand into.
SLUICE_MAX_FOREACH = int(os.environ.get("SLUICE_MAX_FOREACH", "10000"))
# How deeply sub-jobs may nest (a job that runs itself stops here).
SLUICE_MAX_SUBJOB_DEPTH = int(os.environ.get("SLUICE_MAX_SUBJOB_DEPTH", "5"))
# Longest accepted parameter value, in characters (a command line has a size limit too).
SLUICE_MAX_VALUE_LENGTH = int(os.environ.get("SLUICE_MAX_VALUE_LENGTH", "10000"))
# Active submissions one user (or, for anonymous ones, one client IP) may have before new ones are
# sent to the low_ queues (QUEUE_HOG_SIZE) or refused with 429 (QUEUE_HARD_LIMIT). 0 disables a limit.
QUEUE_HOG_SIZE = int(os.environ.get("QUEUE_HOG_SIZE", "10"))
QUEUE_HARD_LIMIT = int(os.environ.get("QUEUE_HARD_LIMIT", "50"))
# Behind a reverse proxy, the request header holding the client's address (e.g. HTTP_X_FORWARDED_FOR);
# its first address is used for anonymous quotas. Empty: the connection's address (REMOTE_ADDR).
SLUICE_CLIENT_IP_HEADER = os.environ.get("SLUICE_CLIENT_IP_HEADER", "")
# Priority of logged-in users' submissions when they are under QUEUE_HOG_SIZE: "high" or "normal".
SLUICE_LOGGED_IN_PRIORITY = os.environ.get("SLUICE_LOGGED_IN_PRIORITY", "high")
# Require login for every job (a job can also require it on its own).
SLUICE_LOGIN_REQUIRED = env_bool("SLUICE_LOGIN_REQUIRED", False)
# Base of links in e-mails, e.g. https://sluice.example.org
SLUICE_BASE_URL = os.environ.get("SLUICE_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# The mail a batch of a compat "aa" job sends when it ends (docs/migrating-from-aa.md): A_A's
# EMAIL_SUBJECT_STRING, and EMAIL_MESSAGE_STRING, to which the batch's UUID is appended.
SLUICE_AA_EMAIL_SUBJECT = os.environ.get("SLUICE_AA_EMAIL_SUBJECT", "A_A Job Completion")
SLUICE_AA_EMAIL_MESSAGE = os.environ.get(
    "SLUICE_AA_EMAIL_MESSAGE", f"Your analysis is complete.\nYou can retrieve the results from {SLUICE_BASE_URL}/analytics_automated/submission/"
)
# Forget a submitter's e-mail address once the completion mail is sent.
EMAIL_DELETE_AFTER_USE = env_bool("EMAIL_DELETE_AFTER_USE", True)
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "sluice@localhost")
# Largest JSON body, in bytes (larger gets 413 before it is read). It may carry input_data as text,
# which is written to a temporary file as it is read, so this bounds the disk a request uses, not memory.
SLUICE_MAX_JSON_BYTES = int(os.environ.get("SLUICE_MAX_JSON_BYTES", str(SLUICE_MAX_UPLOAD_BYTES + 1024 * 1024)))
# How deeply a JSON body may nest objects and arrays (deeper gets 400, found while reading).
SLUICE_JSON_MAX_DEPTH = int(os.environ.get("SLUICE_JSON_MAX_DEPTH", "64"))
# What one request may hold in memory besides its upload: a URL-encoded form, a multipart form's text
# fields, a JSON body's values other than input_data. Larger gets 413; uploads go to temporary files.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("SLUICE_MAX_FORM_BYTES", str(2560 * 1024)))
# Uploads above this many bytes are streamed to a temporary file rather than held in memory; the
# handler keeps at most SLUICE_MAX_UPLOAD_BYTES of a file and ignores the client's file name.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler", "api.parsers.UploadHandler"]

# --- manage.py up: the embedded web server (waitress) ------------------------------
# Open connections served at once; more wait in the listen backlog. Each costs a file descriptor
# (`up` raises its soft limit to fit) and no thread until its request has fully arrived.
SLUICE_UP_CONNECTION_LIMIT = int(os.environ.get("SLUICE_UP_CONNECTION_LIMIT", "1000"))
# Connections the kernel queues while the limit is reached (listen(2)'s backlog).
SLUICE_UP_BACKLOG = int(os.environ.get("SLUICE_UP_BACKLOG", "2048"))
# A connection that has sent nothing for this many seconds is closed.
SLUICE_UP_CHANNEL_TIMEOUT = int(os.environ.get("SLUICE_UP_CHANNEL_TIMEOUT", "60"))
# A request whose headers have not all arrived this many seconds after its first byte is dropped,
# however slowly they trickle in (waitress alone only closes connections that go silent).
SLUICE_UP_HEADER_TIMEOUT = int(os.environ.get("SLUICE_UP_HEADER_TIMEOUT", "20"))
# How often, in seconds, connections are checked against those two timeouts.
SLUICE_UP_CLEANUP_INTERVAL = int(os.environ.get("SLUICE_UP_CLEANUP_INTERVAL", "5"))
# Largest request body waitress accepts (it buffers bodies to disk before Django sees them).
SLUICE_UP_MAX_BODY_BYTES = int(os.environ.get(
    "SLUICE_UP_MAX_BODY_BYTES", str(max(SLUICE_MAX_JSON_BYTES, SLUICE_MAX_UPLOAD_BYTES + DATA_UPLOAD_MAX_MEMORY_SIZE) + 1024 * 1024)
))

# Lists of submissions count matching rows up to this many and then say "more than": a count
# of every row would cost more than the page itself in a big database.
SLUICE_LIST_COUNT_LIMIT = max(1, int(os.environ.get("SLUICE_LIST_COUNT_LIMIT", "1000")))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header makes anonymous callers get 401, not 403.
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "api.renderers.BrowsableAPIRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.TextJSONParser",
        "api.parsers.TextMultiPartParser",
        "api.parsers.TextFormParser",
    ],
    "EXCEPTION_HANDLER": "api.errors.handle_exception",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "api.pagination.StrictLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "URL_FORMAT_OVERRIDE": None,  # ?format= is the graph endpoints' own parameter
}

# `Authorization: Token <key>`, as with DRF's own tokens; tokens last until deleted.
REST_KNOX = {"AUTH_HEADER_PREFIX": "Token", "TOKEN_TTL": None}

SPECTACULAR_SETTINGS = {
    "TITLE": "Sluice API",
    "DESCRIPTION": "Submit data to analysis jobs, poll their progress and fetch their results.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "api.schema.add_job_parameters"],
    "ENUM_NAME_OVERRIDES": {"SubmissionStatusEnum": "execution.states.SubmissionStatus", "NodeStatusEnum": "execution.states.NodeStatus"},
}
