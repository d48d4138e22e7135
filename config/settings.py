"""Screenreel settings: everything from the environment, every value with a safe embedded default.

Embedded default (nothing configured): SQLite in WAL mode and local file storage under ``var/``,
Redis at REDIS_URL (``make demo`` starts a private one when none is given).
Production: DATABASE_URL (PostgreSQL), REDIS_URL, and S3 settings for django-storages.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_int, env_int_list, env_list, env_str
from jobs.lib.task_names import QUEUE_OF, TaskName

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SCREENREEL_VAR_DIR", str(BASE_DIR / "var")))


def _embedded_secret_key() -> str:
    """A per-checkout key kept in var/, so signed links survive restarts without any configuration."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY", "") or _embedded_secret_key()
# True when the key came from var/ (this machine's own): fine for one machine, wrong for several sharing
# one database (check screenreel.W003).
SCREENREEL_SECRET_KEY_EMBEDDED = not env_str("SECRET_KEY", "")
DEBUG = env_bool("DEBUG", False)


def _encryption_keys() -> list[str]:
    """SCREENREEL_ENCRYPTION_KEYS, each entry a Fernet key or "derived"; refused at start-up when malformed."""
    keys = env_list("SCREENREEL_ENCRYPTION_KEYS", "derived")
    for position, key in enumerate(keys, 1):
        if key == "derived":
            continue
        try:
            size = len(base64.urlsafe_b64decode(key.encode()))
        except (binascii.Error, ValueError):
            size = -1
        if size != 32:  # the message never echoes the key
            raise ImproperlyConfigured(f"SCREENREEL_ENCRYPTION_KEYS: entry {position} is not a Fernet key (32 bytes "
                                       "in url-safe base64, as Fernet.generate_key() makes) nor 'derived'")
    return keys or ["derived"]


# Secrets at rest (webhook secrets; jobs/lib/keys/crypto.py): Fernet keys, the first seals and every one opens;
# "derived" is a key derived from SECRET_KEY, the embedded default. Rotation: docs/operating.md.
SCREENREEL_ENCRYPTION_KEYS = _encryption_keys()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "axes",  # the admin's login throttle (see "The admin console" below)
    "drf_spectacular_sidecar",  # Swagger UI from our own static files, never a CDN
    "jobs",
    "webhooks",
    "bundles",
    "retention",
    "credentials",
    "demos",
]

MIDDLEWARE = [
    "config.metrics.RequestMetricsMiddleware",
    "jobs.api.middleware.RateLimitHeadersMiddleware",
    "jobs.api.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "jobs.api.middleware.ContentSecurityPolicyMiddleware",
    # The admin's CSS and JS under every server (uvicorn, honcho, runserver without DEBUG), from
    # STATIC_ROOT, which set-up fills with collectstatic (make serve, make demo, the test session).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a login refused for lockout into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

# --- Database -------------------------------------------------------------------------------------------
_database_url = env_str("DATABASE_URL", "")
# The embedded SQLite default: how long a writer waits for the one write lock before its request answers
# 503 database_busy (docs/operating.md#the-embedded-default-under-concurrency).
SCREENREEL_SQLITE_BUSY_TIMEOUT_S = env_int("SCREENREEL_SQLITE_BUSY_TIMEOUT_S", 30, minimum=1, maximum=600)
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60, conn_health_checks=True)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "screenreel.sqlite3"),
            # WAL lets the web process read while a worker writes. Every transaction.atomic() begins
            # IMMEDIATE, so it takes the write lock up front, waiting for it through the busy handler; a
            # deferred one that read first and wrote second would be refused at once when another writer
            # got in between ("database is locked", with no wait). ``timeout`` sets that busy handler on
            # every connection (sqlite3's busy_timeout). The API writes only inside atomic blocks.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": SCREENREEL_SQLITE_BUSY_TIMEOUT_S,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and Celery -----------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None  # results live in the database, never in Celery's backend
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING: JSON lines, ids, redaction
# Celery's Django fixup closes every database connection after every task unless this is set: a new
# PostgreSQL connection (and backend process) per task cost more than a whole webhook attempt.
# Connections are still recycled by CONN_MAX_AGE and health checks.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=1)
# The longest task (a recording) is capped well below this, so an unacked message only comes back
# when its worker really died. Recovery does not wait for it: the database sweeper re-enqueues
# stages whose lease expired (jobs.pipeline.recovery).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}

# --- Storage --------------------------------------------------------------------------------------------
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
STATIC_ROOT = VAR_DIR / "static"
STATIC_URL = "static/"
MEDIA_URL = "media/"

STORAGE_BACKEND = env_str("SCREENREEL_STORAGE", "s3" if env_str("AWS_STORAGE_BUCKET_NAME", "") else "local")
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME", ""),
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("AWS_S3_REGION_NAME", "") or None,
            "access_key": env_str("AWS_ACCESS_KEY_ID", "") or None,
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY", "") or None,
            "default_acl": None,
            "file_overwrite": True,
            "querystring_auth": True,
            # Presigned storage URLs are only ever handed out behind our own signed links.
            "querystring_expire": 300,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- API ------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["jobs.api.auth.ApiKeyAuthentication"],
    # A scoped key (a CI's) calls only the operations its scope names (jobs.api.auth.KeyScopes).
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated", "jobs.api.auth.KeyScopes"],
    "DEFAULT_PARSER_CLASSES": ["jobs.lib.parsers.JsonParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "jobs.lib.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": ["jobs.api.ratelimit.ClientRateThrottle"],
}
# Requests per second per client on average, and the burst above it (jobs.api.ratelimit); per client in the admin.
SCREENREEL_RATE_LIMIT_PER_S = env_int("SCREENREEL_RATE_LIMIT_PER_S", 25, minimum=1, maximum=100_000)
SCREENREEL_RATE_LIMIT_BURST = env_int("SCREENREEL_RATE_LIMIT_BURST", 100, minimum=1, maximum=1_000_000)
# Wrong tokens one address may try on the URLs whose token is the credential (deploy hooks, shares) before its misses
# answer 429 instead of 404: this many at once, then one per SCREENREEL_WRONG_TOKEN_EVERY_S
# (jobs.api.ratelimit.TokenGuard). Only misses count and a right token is always served: GitHub delivers every
# customer's webhooks from shared addresses, so a block by address would let anyone lock them out.
SCREENREEL_WRONG_TOKEN_BURST = env_int("SCREENREEL_WRONG_TOKEN_BURST", 30, minimum=1, maximum=1_000_000)
SCREENREEL_WRONG_TOKEN_EVERY_S = env_int("SCREENREEL_WRONG_TOKEN_EVERY_S", 2, minimum=1, maximum=86_400)
SPECTACULAR_SETTINGS = {
    "TITLE": "Screenreel API",
    "DESCRIPTION": "Narrated, branded demo videos of your web app, recorded in a real browser.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "OAS_VERSION": "3.1.0",
    # /api/docs/ serves Swagger UI from drf-spectacular-sidecar's files through our own static files (no
    # CDN, a pinned version) under a Content-Security-Policy that allows only this origin; no online
    # validator badge (it would load an image from swagger.io).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.models.JobStatus", "ChunkStatusEnum": "jobs.models.ChunkStatus",
        "DeliveryStatusEnum": "webhooks.models.DeliveryStatus", "EventTypeEnum": "jobs.models.EventType",
    },
    # Error responses, the event stream, examples: what drf-spectacular cannot infer (jobs/api/schema.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "jobs.api.schema.openapi_complete"],
}
# Bodies above this answer 413 before anything is parsed (jobs.api.middleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
SCREENREEL_MAX_BODY_BYTES = DATA_UPLOAD_MAX_MEMORY_SIZE

# --- The pipeline ---------------------------------------------------------------------------------------
SCREENREEL_PUBLIC_URL = env_str("SCREENREEL_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")

# An https public URL means the service is served over TLS, by a proxy or load balancer in front of it
# that terminates TLS and says so in X-Forwarded-Proto. Then: HSTS, secure cookies, http redirected to
# https, and the proxy's header trusted. The embedded http default (make demo, the tests) keeps none.
if SCREENREEL_PUBLIC_URL.startswith("https://"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SCREENREEL_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = [SCREENREEL_PUBLIC_URL]  # the admin's forms, posted through the proxy
    SECURE_HSTS_SECONDS = env_int("SCREENREEL_HSTS_SECONDS", 365 * 86400, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SCREENREEL_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SCREENREEL_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading submits the domain to the browsers' built-in lists, which is hard to undo: the
        # operator opts in (SCREENREEL_HSTS_PRELOAD=true); not doing so is not a misconfiguration.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
SCREENREEL_WORK_DIR = Path(env_str("SCREENREEL_WORK_DIR", str(VAR_DIR / "work")))
SCREENREEL_CHROMIUM = env_str("SCREENREEL_CHROMIUM", "/usr/bin/chromium")
# How a feature's frames are captured (docs/operating.md, "Capture on the video's clock"): "virtual_time", every frame
# rendered by the recorder on the video's own clock in the headless shell (SCREENREEL_HEADLESS_SHELL; a machine
# without it records by the screencast), or "screencast", the frames Chromium delivers in real time;
# bench/media/virtual_time.py, bench/media/concurrent.py and bench/job compare them.
SCREENREEL_CAPTURE = env_choice("SCREENREEL_CAPTURE", "virtual_time", ("screencast", "virtual_time"))
SCREENREEL_HEADLESS_SHELL = env_str("SCREENREEL_HEADLESS_SHELL", "/usr/lib/chromium/chromium-headless-shell")
SCREENREEL_FPS = env_int("SCREENREEL_FPS", 25, minimum=10, maximum=60)
# Keep Chromium running in each worker process and record each chunk in a fresh context of it (false: launch
# a browser per recording, about 1 s more per chunk; bench/job compares them).
SCREENREEL_WARM_BROWSER = env_bool("SCREENREEL_WARM_BROWSER", True)
# A browser serves one client (jobs.media.browser): how many clients' browsers each worker process keeps
# warm, besides one spare. More saves a launch (about 1 s of CPU) when clients take turns, at the memory of
# an idle browser each (bench/job --tenancy, docs/benchmarks.md).
SCREENREEL_BROWSERS_KEPT = env_int("SCREENREEL_BROWSERS_KEPT", 1, minimum=1, maximum=16)
SCREENREEL_STEP_TIMEOUT_MS = env_int("SCREENREEL_STEP_TIMEOUT_MS", 10_000, minimum=500, maximum=120_000)
# A running stage holds its chunk by a lease its worker renews every SCREENREEL_STAGE_HEARTBEAT_S
# (jobs.services.leases); a lease not renewed for SCREENREEL_STAGE_LEASE_S means the worker died, and
# the recovery sweep queues the stage again. A stage runs at most SCREENREEL_STAGE_TIME_LIMIT_S.
SCREENREEL_STAGE_LEASE_S = env_int("SCREENREEL_STAGE_LEASE_S", 45, minimum=10, maximum=3600)
SCREENREEL_STAGE_HEARTBEAT_S = max(SCREENREEL_STAGE_LEASE_S // 3, 1)
SCREENREEL_STAGE_TIME_LIMIT_S = env_int("SCREENREEL_STAGE_TIME_LIMIT_S", 900, minimum=30, maximum=6 * 3600)
# How long a job's sign-in waits for an input a person reads (an e-mailed code: POST /v1/jobs/{id}/input)
# before its features fail with input_timeout (jobs.services.inputs). Under the broker's visibility timeout
# with the rest of the sign-in, so its message is never handed to a second worker while it waits.
SCREENREEL_INPUT_WINDOW_S = env_int("SCREENREEL_INPUT_WINDOW_S", 600, minimum=5, maximum=1200)
# Fair share (jobs.services.admission): per client, jobs running at once, and chunks queued for or in
# recording at once; per client in the admin. A client's burst waits in the database, not in the broker.
SCREENREEL_CLIENT_MAX_RUNNING_JOBS = env_int("SCREENREEL_CLIENT_MAX_RUNNING_JOBS", 20, minimum=1)
SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS = env_int("SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS", 4, minimum=1)
# Sign-ins of one client under way at once (jobs.services.admission), each also one of its active chunks: the
# sign-in pool's threads (the Procfile's worker-signin, -c 8) are shared by every client, and one that waits for
# a code may hold its thread for SCREENREEL_INPUT_WINDOW_S.
SCREENREEL_CLIENT_MAX_SIGN_INS = env_int("SCREENREEL_CLIENT_MAX_SIGN_INS", 2, minimum=1)
# Chunks of one client queued for or in muxing at once (jobs.services.admission): one client's 50 muxes wait
# in the database, so another client's first mux is queued behind at most this many of each other client's.
SCREENREEL_CLIENT_MAX_MUXING_CHUNKS = env_int("SCREENREEL_CLIENT_MAX_MUXING_CHUNKS", 2, minimum=1)
# Carried chunks (a demo's ``changed`` refresh) one client may have copying at once (jobs.services.admission).
SCREENREEL_CLIENT_MAX_CARRIES = env_int("SCREENREEL_CLIENT_MAX_CARRIES", 4, minimum=1)
# Jobs a client may have queued or running; past it POST /v1/jobs answers 429 too_many_jobs.
SCREENREEL_CLIENT_MAX_UNFINISHED_JOBS = env_int("SCREENREEL_CLIENT_MAX_UNFINISHED_JOBS", 1000, minimum=1)
SCREENREEL_STAGE_MAX_ATTEMPTS = env_int("SCREENREEL_STAGE_MAX_ATTEMPTS", 3, minimum=1, maximum=10)
SCREENREEL_RECOVER_EVERY_S = env_int("SCREENREEL_RECOVER_EVERY_S", 15, minimum=1)
# How long a queued job or an unclaimed chunk may look stalled before the recovery sweep queues it again
# (a lapsed lease needs no grace: the lease is the proof).
SCREENREEL_RECOVER_GRACE_S = env_int("SCREENREEL_RECOVER_GRACE_S", 60, minimum=1)
# Networks the recording browser and webhook delivery may reach although they are private
# (e.g. "127.0.0.0/8" for a local sample app or receiver). Empty in production.
SCREENREEL_EGRESS_ALLOW = env_list("SCREENREEL_EGRESS_ALLOW", "")

# Intro/outro cards are rendered once per distinct branding and kept here (shared by media workers).
SCREENREEL_CARD_CACHE_DIR = Path(env_str("SCREENREEL_CARD_CACHE_DIR", str(VAR_DIR / "cards")))
# ElevenLabs speaks when a key is set (voice "auto" or "elevenlabs"); otherwise Piper, else espeak-ng.
ELEVENLABS_API_KEY = env_str("ELEVENLABS_API_KEY", "")
ELEVENLABS_BASE_URL = env_str("ELEVENLABS_BASE_URL", "https://api.elevenlabs.io")
ELEVENLABS_MODEL_ID = env_str("ELEVENLABS_MODEL_ID", "eleven_multilingual_v2")
ELEVENLABS_VOICE_ID = env_str("ELEVENLABS_VOICE_ID", "JBFqnCBsd6RMkjVDRZzb")

# Webhooks: retry schedule in seconds after the first attempt (docs/events.md, "Delivery").
SCREENREEL_WEBHOOK_SCHEDULE_S = env_int_list(
    "SCREENREEL_WEBHOOK_SCHEDULE_S", "0,5,300,1800,7200,18000,36000,50400,72000,86400"
)
# Per attempt: connecting may take this long, and the whole attempt (DNS to last byte) this long.
SCREENREEL_WEBHOOK_CONNECT_TIMEOUT_S = env_int("SCREENREEL_WEBHOOK_CONNECT_TIMEOUT_S", 5, minimum=1, maximum=30)
SCREENREEL_WEBHOOK_TIMEOUT_S = env_int("SCREENREEL_WEBHOOK_TIMEOUT_S", 10, minimum=1, maximum=60)
# Retry-After is honoured up to this many seconds.
SCREENREEL_WEBHOOK_MAX_RETRY_AFTER_S = env_int("SCREENREEL_WEBHOOK_MAX_RETRY_AFTER_S", 3600, minimum=1)
# An endpoint whose every attempt has failed for this long is disabled, with the reason shown.
SCREENREEL_WEBHOOK_DISABLE_AFTER_S = env_int("SCREENREEL_WEBHOOK_DISABLE_AFTER_S", 5 * 86400, minimum=60)
# Endpoints a client may register (disabled ones count); past it POST /v1/webhook-endpoints answers 409
# too_many_endpoints. Per client in the admin (Client.max_webhook_endpoints).
SCREENREEL_CLIENT_MAX_WEBHOOK_ENDPOINTS = env_int("SCREENREEL_CLIENT_MAX_WEBHOOK_ENDPOINTS", 20, minimum=0)
# Attempts in flight at once per client over all its endpoints (and its jobs' own webhook_url), so one
# client's slow receivers cannot hold every sender thread. Per client in the admin.
SCREENREEL_CLIENT_MAX_DELIVERIES_IN_FLIGHT = env_int("SCREENREEL_CLIENT_MAX_DELIVERIES_IN_FLIGHT", 32, minimum=1)
# Credentials a client may store (docs/credentials.md); past it POST /v1/credentials answers 409
# too_many_credentials. Per client in the admin (Client.max_credentials).
SCREENREEL_CLIENT_MAX_CREDENTIALS = env_int("SCREENREEL_CLIENT_MAX_CREDENTIALS", 50, minimum=0)
# Demos one client may keep (docs/demos.md): each is a spec and its versions.
SCREENREEL_CLIENT_MAX_DEMOS = env_int("SCREENREEL_CLIENT_MAX_DEMOS", 100, minimum=0)
# How often beat looks for demos whose schedule is due (demos.tasks); a schedule is at most hourly.
SCREENREEL_DEMO_SCHEDULE_EVERY_S = env_int("SCREENREEL_DEMO_SCHEDULE_EVERY_S", 60, minimum=1, maximum=3600)
# How long the old secret keeps signing after a rotation.
SCREENREEL_WEBHOOK_ROTATION_GRACE_S = env_int("SCREENREEL_WEBHOOK_ROTATION_GRACE_S", 86400, minimum=0)
# Delivery runs as the deliveries_dispatch task on the "deliver" queue (webhooks/dispatch.py).
# Attempts in flight at once per worker process, on its sender pool (none of them holds a DB connection).
SCREENREEL_DELIVERY_THREADS = env_int("SCREENREEL_DELIVERY_THREADS", 32, minimum=1, maximum=512)
# Deliveries one task claims at most; a full batch enqueues the next task at once.
SCREENREEL_DELIVERY_BATCH = env_int("SCREENREEL_DELIVERY_BATCH", 32, minimum=1, maximum=500)
# How long a task waits for its batch's attempts before it ends; later ones are recorded by a later task.
SCREENREEL_DELIVERY_BATCH_WAIT_S = env_int("SCREENREEL_DELIVERY_BATCH_WAIT_S", 2, minimum=1, maximum=60)
# A task enqueued by a commit waits this long first, so that the commits right behind it join its batch.
SCREENREEL_DELIVERY_LINGER_MS = env_int("SCREENREEL_DELIVERY_LINGER_MS", 20, minimum=0, maximum=1000)
# Beat enqueues a dispatch this often: retries that fall due, and work whose kick was lost.
SCREENREEL_DELIVERY_SWEEP_S = env_int("SCREENREEL_DELIVERY_SWEEP_S", 1, minimum=1, maximum=60)

# Signed download links (docs/api.md, "Bundles, signed links and downloads").
SCREENREEL_LINK_TTL_S = env_int("SCREENREEL_LINK_TTL_S", 7 * 24 * 3600, minimum=60)

# The narrow calls through which jobs hands work to the apps that build on it (docs/architecture.md:
# jobs imports none of them directly).
# demos' builder adds a demo version's drift report to its bundle, and builds every other bundle as bundles does.
SCREENREEL_BUNDLE_BUILDER = "demos.bundling.bundle_build"
SCREENREEL_EVENT_HANDLERS = ["webhooks.services.deliveries.deliveries_create_for_event",
                             "demos.handlers.demo_versions_on_event"]
SCREENREEL_RETENTION_SCHEDULE = "retention.selectors.objects_expiry"
SCREENREEL_SECRET_SOURCE = "credentials.recording.secret_source"  # noqa: S105 (a dotted path, not a secret)
SCREENREEL_ADMIN_EXTENSIONS = {"job": ["retention.console.JobRetentionActions"],
                               "client": ["retention.console.ClientRetentionActions"]}

# --- Retention (retention/ owns this block; docs/retention.md) -----------------------------------------------
# Days each class is kept by default; per client, RetentionPolicy in the admin overrides any of them.
SCREENREEL_RETENTION_DAYS = {
    "raw": env_int("SCREENREEL_RETENTION_RAW_DAYS", 7, minimum=1, maximum=3650),
    "output": env_int("SCREENREEL_RETENTION_OUTPUT_DAYS", 30, minimum=1, maximum=3650),
    "bundle": env_int("SCREENREEL_RETENTION_BUNDLE_DAYS", 90, minimum=1, maximum=3650),
}
# Nothing is purged until this long after its policy allows: covers clock skew between machines.
SCREENREEL_RETENTION_GRACE_S = env_int("SCREENREEL_RETENTION_GRACE_S", 3600, minimum=0, maximum=30 * 86400)
# How long a credential's audit rows are kept (created, rotated, revoked...): then beat deletes them, hourly.
SCREENREEL_CREDENTIAL_AUDIT_DAYS = env_int("SCREENREEL_CREDENTIAL_AUDIT_DAYS", 400, minimum=1)
SCREENREEL_RETENTION_PURGE_EVERY_S = env_int("SCREENREEL_RETENTION_PURGE_EVERY_S", 900, minimum=10)
# Keys per DeleteObjects call and per database transaction (S3 takes at most 1,000).
SCREENREEL_RETENTION_BATCH = env_int("SCREENREEL_RETENTION_BATCH", 1000, minimum=1, maximum=1000)
# Clients purged at once, each on its own thread and database connection (PostgreSQL; SQLite gets 1).
SCREENREEL_RETENTION_CONCURRENCY = env_int("SCREENREEL_RETENTION_CONCURRENCY", 4, minimum=1, maximum=32)
# The embedded SQLite default has no advisory locks: one purge at a time is a file lock on this machine.
SCREENREEL_RETENTION_LOCK_FILE = Path(env_str("SCREENREEL_RETENTION_LOCK_FILE", str(VAR_DIR / "retention.lock")))
# Workers' scratch space: stage directories left by killed workers older than this are removed (a stage
# never runs longer than SCREENREEL_STAGE_TIME_LIMIT_S), and cached cards unused for this long.
SCREENREEL_SCRATCH_MAX_AGE_S = env_int("SCREENREEL_SCRATCH_MAX_AGE_S", 24 * 3600, minimum=3600)
SCREENREEL_CARD_CACHE_MAX_AGE_S = env_int("SCREENREEL_CARD_CACHE_MAX_AGE_S", 30 * 86400, minimum=3600)

CELERY_BEAT_SCHEDULE = {
    "deliveries-dispatch": {
        "task": TaskName.DELIVERIES_DISPATCH,
        "schedule": float(SCREENREEL_DELIVERY_SWEEP_S),
        # Expired if no worker takes it in time, so a stopped deliver tier does not pile them up.
        "options": {"queue": QUEUE_OF[TaskName.DELIVERIES_DISPATCH], "expires": 2 * SCREENREEL_DELIVERY_SWEEP_S},
    },
    "pipeline-recover": {
        "task": TaskName.PIPELINE_RECOVER,
        "schedule": float(SCREENREEL_RECOVER_EVERY_S),
        "options": {"queue": "default", "expires": SCREENREEL_RECOVER_EVERY_S},
    },
    "retention-purge": {
        "task": TaskName.RETENTION_PURGE,
        "schedule": float(SCREENREEL_RETENTION_PURGE_EVERY_S),
        "options": {"queue": "default", "expires": SCREENREEL_RETENTION_PURGE_EVERY_S},
    },
    "demo-schedules": {
        "task": TaskName.DEMO_SCHEDULES_RUN,
        "schedule": float(SCREENREEL_DEMO_SCHEDULE_EVERY_S),
        "options": {"queue": "default", "expires": SCREENREEL_DEMO_SCHEDULE_EVERY_S},
    },
    "credential-audit-purge": {
        "task": TaskName.CREDENTIAL_AUDIT_PURGE,
        "schedule": 3600.0,
        "options": {"queue": "default", "expires": 3600},
    },
}

# --- SSE ------------------------------------------------------------------------------------------------
SCREENREEL_SSE_HEARTBEAT_S = env_int("SCREENREEL_SSE_HEARTBEAT_S", 15, minimum=1)
# Threads (so database connections, at most) one web process uses for every SSE stream's reads.
SCREENREEL_SSE_DB_THREADS = env_int("SCREENREEL_SSE_DB_THREADS", 4, minimum=1, maximum=32)
# While Redis is unreachable, each open job's events are read from the table this often.
SCREENREEL_SSE_FALLBACK_POLL_S = env_int("SCREENREEL_SSE_FALLBACK_POLL_S", 2, minimum=1, maximum=60)
# Event streams one client may hold open at once on each web process (jobs.api.stream); past it a new stream
# answers 429 too_many_streams. Per client in the admin. Streams held by Pushpin do not count (they hold
# nothing here).
SCREENREEL_CLIENT_MAX_STREAMS = env_int("SCREENREEL_CLIENT_MAX_STREAMS", 20, minimum=1, maximum=100_000)
# How long a browser has to open a stream with a token from POST /v1/jobs/{id}/events/token.
SCREENREEL_SSE_TOKEN_TTL_S = env_int("SCREENREEL_SSE_TOKEN_TTL_S", 900, minimum=30)
# Behind Pushpin (jobs/live/grip.py, docs/live-events.md): its publish endpoint (e.g. http://127.0.0.1:5561)
# and its sig_key. Empty: streams are served by the web processes themselves.
SCREENREEL_GRIP_PUBLISH_URL = env_str("SCREENREEL_GRIP_PUBLISH_URL", "").rstrip("/")
SCREENREEL_GRIP_KEY = env_str("SCREENREEL_GRIP_KEY", "")
# Pushpin fetches a quiet stream's recovery link this often, so that a lost last publish still arrives.
# Every open stream costs the web tier one request per this many seconds (docs/live-events.md). At most
# 3000: a recovery link is valid for at least an hour (jobs.live.grip.link_for).
SCREENREEL_GRIP_LINK_TIMEOUT_S = env_int("SCREENREEL_GRIP_LINK_TIMEOUT_S", 120, minimum=1, maximum=3000)

# --- Health and metrics (config/health.py, config/metrics.py, docs/operating.md) ------------------------
# /metrics wants "Authorization: Bearer <this>"; empty: /metrics answers only with DEBUG on.
SCREENREEL_METRICS_TOKEN = env_str("SCREENREEL_METRICS_TOKEN", "")
# /readyz keeps its answer this long (one check per period per web process, however many probes), and
# gives each dependency this long to answer (config/health.py).
SCREENREEL_READY_CACHE_S = env_int("SCREENREEL_READY_CACHE_S", 5, minimum=0, maximum=300)
SCREENREEL_READY_TIMEOUT_S = env_int("SCREENREEL_READY_TIMEOUT_S", 2, minimum=1, maximum=30)
# Every worker says this often which queues it consumes (jobs.lib.heartbeats); three missed beats and it is
# taken for gone by /readyz/workers and screenreel_workers.
SCREENREEL_WORKER_HEARTBEAT_S = env_int("SCREENREEL_WORKER_HEARTBEAT_S", 10, minimum=1, maximum=300)

# --- The admin console (docs/operating.md, "The admin console") ----------------------------------------
# The apps whose models the console's two groups cover (jobs.console.groups): "operators" hold every permission
# of their models, "viewers" every view permission. A new app of the project joins here.
SCREENREEL_CONSOLE_APPS = ["jobs", "webhooks", "bundles", "retention", "credentials", "demos"]
# Admin logins are throttled by django-axes: after this many failures in a row for one username from one
# address, that pair is refused (429, even with the right password) for SCREENREEL_ADMIN_LOCKOUT_S.
# The API's keys never go through these backends (jobs.api.auth) and are not affected.
SCREENREEL_ADMIN_LOGIN_FAILURES = env_int("SCREENREEL_ADMIN_LOGIN_FAILURES", 5, minimum=1, maximum=100)
SCREENREEL_ADMIN_LOCKOUT_S = env_int("SCREENREEL_ADMIN_LOCKOUT_S", 900, minimum=60, maximum=7 * 86400)
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = SCREENREEL_ADMIN_LOGIN_FAILURES
AXES_COOLOFF_TIME = timedelta(seconds=SCREENREEL_ADMIN_LOCKOUT_S)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # one pair; others may still log in from there
AXES_RESET_ON_SUCCESS = True  # a typo or two before a good login does not count towards the next lockout
# The address is REMOTE_ADDR, never a forwarded header: under uvicorn it is the peer, or the client named
# in X-Forwarded-For when the peer is one of uvicorn's FORWARDED_ALLOW_IPS (default: this machine only).
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
# Axes keeps each failure's form data; the password is always masked, and so is the CSRF token.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"

# --- Misc -----------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# One JSON object per line (jobs/lib/logs.py), with job, chunk, event and delivery ids; LOG_FORMAT=plain for
# a human at a terminal. Celery workers log through the same handler (not their own root logger), and
# uvicorn through the same file (--log-config config/logging.json), its access log included: every line
# passes the formatters' redaction.
LOGGING = json.loads((BASE_DIR / "config" / "logging.json").read_text())
LOGGING["root"]["level"] = env_str("LOG_LEVEL", "INFO")
# axes.apps says which lockout mode it uses at every start of every process: once in the docs is enough.
LOGGING["loggers"]["axes.apps"] = {"level": "WARNING"}
# Python's warnings as log lines too (logger py.warnings), not raw text on standard error.
logging.captureWarnings(True)

# What work costs (jobs.pipeline.pricing); offline voices cost nothing but the recording.
SCREENREEL_RATE_CARD = {
    "recording_per_minute_usd": 0.05,
    "characters_per_1k_usd": {"elevenlabs": 0.30, "piper": 0.0, "espeak-ng": 0.0},
}

# --- Bundles (bundles/ owns this block) -----------------------------------------------------------------
# The bundle streams into S3 as one multipart upload in parts of exactly this size (the last may be
# shorter; R2 requires equal parts). One part is held in memory; 10,000 parts at most, so 16 MiB parts
# allow bundles up to ~156 GiB.
SCREENREEL_BUNDLE_PART_BYTES = env_int("SCREENREEL_BUNDLE_PART_BYTES", 16 * 1024 * 1024,
                                       minimum=5 * 1024 * 1024, maximum=5 * 1024 * 1024 * 1024)
# How long the presigned storage URL behind a valid signed link lives (capped at 300 s in bundles.downloads).
SCREENREEL_STORAGE_URL_TTL_S = env_int("SCREENREEL_STORAGE_URL_TTL_S", 300, minimum=10, maximum=300)
# A bundle that could not be stored (storage unreachable, full or refusing) is built again after each of these
# delays in turn, while the job stays running and its chunks' files wait in storage: 1,720 s (about 29
# minutes) in all by default, which rides out a storage restart, a failover or a full disk an operator frees,
# and still tells the client within the half hour, after which POST /v1/jobs/{id}/rebuild-bundle builds it
# again without recording (docs/operating.md). Each delay is a Celery countdown, so it must stay under the
# broker's visibility timeout (measured: a longer one runs the task again and again); the retry's due time
# is in the job's row too, so a lost countdown is queued again by the recovery sweep.
SCREENREEL_SETTLE_RETRY_S = env_int_list("SCREENREEL_SETTLE_RETRY_S", "10,30,60,120,300,600,600")
_visibility_s = CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
if not 0 < len(SCREENREEL_SETTLE_RETRY_S) <= 50 or not all(0 < d < _visibility_s for d in SCREENREEL_SETTLE_RETRY_S):
    raise ImproperlyConfigured("SCREENREEL_SETTLE_RETRY_S must list 1 to 50 delays, each above 0 s and under "
                               f"CELERY_VISIBILITY_TIMEOUT ({_visibility_s} s)")
# How long one build of a bundle may run (streaming every chunk's files into storage): under the visibility
# timeout too, so its unacknowledged message is not handed to a second worker meanwhile.
SCREENREEL_SETTLE_TIME_LIMIT_S = env_int("SCREENREEL_SETTLE_TIME_LIMIT_S", min(3000, _visibility_s - 60),
                                         minimum=60, maximum=_visibility_s - 1)
# Presigned storage URLs must be SigV4 (X-Amz-Expires): botocore would otherwise presign S3 in us-east-1
# with legacy SigV2 query auth, which R2 and newer S3 regions refuse.
if STORAGE_BACKEND == "s3" and isinstance(_s3_options := _default_storage["OPTIONS"], dict):
    _s3_options.setdefault("signature_version", "s3v4")
