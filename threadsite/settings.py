"""Settings, read from the environment. `.env.example` lists every variable.

Embedded default (nothing set): SQLite in the project folder, tasks run in-process.
DATABASE_URL=postgres://… and REDIS_URL=redis://… switch to PostgreSQL, a Redis broker and
separate Celery worker and beat processes.
"""

import re
import warnings
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from .env import (
    beat_schedule,
    cache_settings,
    database_settings,
    envbool,
    envint,
    envlist,
    envsecret,
    envstr,
)

BASE_DIR = Path(__file__).resolve().parent.parent

TESTING = envbool("THREADSITE_TESTING", False)
DEBUG = envbool("DEBUG", False)

_DEV_SECRET = "dev-only-insecure-secret-key-change-me"  # noqa: S105 (refused in production)
SECRET_KEY = envsecret("SECRET_KEY", _DEV_SECRET)
if SECRET_KEY in (_DEV_SECRET, "change-me", "") and envbool("THREADSITE_REQUIRE_SECRET", False):
    raise ImproperlyConfigured("Set SECRET_KEY: the development default must not be used in production")

# Key for the API keys stored in the database (Fernet, urlsafe base64 of 32 bytes). Several keys,
# comma-separated, allow rotation: the first encrypts, all decrypt. Without it, a key derived from
# SECRET_KEY is used, which ties the stored API keys to SECRET_KEY.
ENCRYPTION_KEYS = envlist("THREADSITE_ENCRYPTION_KEYS", [])

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "threads_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "threads_app.signin.IdleSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "threads_app.audit.AddressMiddleware",
]

ROOT_URLCONF = "threadsite.urls"

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
                "threads_app.permissions.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "threadsite.wsgi.application"

DATABASES = {"default": database_settings(envstr("DATABASE_URL"), BASE_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A tally's unique index carries its count (INCLUDE) on PostgreSQL, for index-only reads; SQLite, which
# has no such indexes, builds it without, and needs no warning saying so.
SILENCED_SYSTEM_CHECKS = ["models.W039"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "threadsite.static_storage.StaticFilesStorage"
    },
}
# Without collectstatic (the demo, tests) whitenoise serves straight from the finders, and its warning
# that STATIC_ROOT does not exist yet says nothing useful. It is raised on behalf of Django's handler
# (stacklevel), so it is matched by its text, not by the module that raises it.
WHITENOISE_USE_FINDERS = True
if not STATIC_ROOT.exists():
    warnings.filterwarnings(
        "ignore", message=re.escape(f"No directory at: {STATIC_ROOT}"), category=UserWarning
    )

# Served over HTTPS (behind a TLS-terminating proxy, as docker-compose deploys it): secure cookies, HTTP
# redirected to HTTPS, and HSTS. The proxy must set X-Forwarded-Proto and drop any the client sent.
HTTPS = envbool("SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", HTTPS)
# One year once HTTPS is on; browsers then refuse plain HTTP for the host (set 0 to try HTTPS out first).
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0, minimum=0)
# Subdomains of the dashboard's host too, and eligible for browsers' preload list, once HTTPS is on: a
# dashboard of customers' conversations has no reason to be reached over plain HTTP under any name. Set
# either to false if a subdomain of the host must still be served over HTTP.
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", HTTPS)

# How many proxies in front of the site append the client's address to X-Forwarded-For. 0 (the default):
# the header is ignored and the connection's address is what the audit log records, since any client can
# write the header; 1 behind one proxy (docker-compose's TLS proxy), and so on.
TRUSTED_PROXIES = envint("THREADSITE_TRUSTED_PROXIES", 0, minimum=0)
# Audit events older than this many days are purged by beat (THREADSITE_AUDIT_PURGE_CRON) or
# `manage.py purge_audit_events`; 0 (the default) keeps them forever.
AUDIT_RETENTION_DAYS = envint("THREADSITE_AUDIT_RETENTION_DAYS", 0, minimum=0)

# Only the site's own scripts and styles (no inline ones: htmx's indicator styles are off, see base.html),
# no framing, and no referrer beyond this origin.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Signing in: failed attempts allowed per username, and per client address (as the audit log reads it,
# THREADSITE_TRUSTED_PROXIES), in each window (cache counters, `threads_app/signin.py`).
THREADSITE_SIGNIN_MAX_FAILURES = envint("THREADSITE_SIGNIN_MAX_FAILURES", 5, minimum=1)
THREADSITE_SIGNIN_MAX_FAILURES_PER_ADDRESS = envint(
    "THREADSITE_SIGNIN_MAX_FAILURES_PER_ADDRESS", 30, minimum=1
)
THREADSITE_SIGNIN_WINDOW_SECONDS = envint("THREADSITE_SIGNIN_WINDOW_SECONDS", 15 * 60, minimum=1)
# A session left idle this long is signed out.
THREADSITE_SESSION_IDLE_MINUTES = envint("THREADSITE_SESSION_IDLE_MINUTES", 8 * 60, minimum=1)
SESSION_COOKIE_AGE = THREADSITE_SESSION_IDLE_MINUTES * 60
# One-time set-password links made on the Team page stay valid this long.
PASSWORD_RESET_TIMEOUT = envint("THREADSITE_SET_PASSWORD_LINK_DAYS", 3, minimum=1) * 24 * 3600

CACHES = {"default": cache_settings(envstr("REDIS_URL"))}

# --- Task queue -----------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
REDIS_URL = envstr("REDIS_URL")
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-url
CELERY_BROKER_URL = REDIS_URL or "memory://"
# Without a broker, tasks run in the calling process (see threads_app.tasks.dispatch).
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-always-eager
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
# JSON only: pickle on a reachable broker allows remote code execution.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-serializer
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Job state lives in our own models; Celery's result backend is not consulted.
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged only after it finishes, so a worker that dies mid-task hands it back.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-connection-retry-on-startup
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
# https://docs.celeryq.dev/en/stable/userguide/periodic-tasks.html
CELERY_BEAT_SCHEDULE = beat_schedule()
# In embedded mode, dispatch() runs tasks on this many background threads of the web process;
# tests set 0 to run them inline.
THREADSITE_INPROCESS_WORKERS = envint("THREADSITE_INPROCESS_WORKERS", 0 if TESTING else 2, minimum=0)

# A deletion job's item in flight belongs to its worker this long past the worker's last heartbeat (one
# a second); after that, another worker takes it over, looking the thread up before sending anything.
THREADSITE_DELETION_LEASE_SECONDS = envint("THREADSITE_DELETION_LEASE_SECONDS", 30, minimum=2)
# How many worker runs share a new deletion job, each with its share of every credential's concurrency:
# with Celery, runs in several worker processes use several cores (one process is bound by its own
# interpreter); in the embedded default, tasks share the web process, where one run is as fast.
THREADSITE_RUNS_PER_JOB = envint("THREADSITE_RUNS_PER_JOB", 2 if REDIS_URL else 1, minimum=1)

# --- OpenAI API -----------------------------------------------------------------------------------
OPENAI_DEFAULT_BASE_URL = envstr("OPENAI_BASE_URL", "https://api.openai.com/v1")
OPENAI_CONNECT_TIMEOUT = envint("OPENAI_CONNECT_TIMEOUT", 5, minimum=1)
OPENAI_READ_TIMEOUT = envint("OPENAI_READ_TIMEOUT", 30, minimum=1)
OPENAI_MAX_RETRIES = envint("OPENAI_MAX_RETRIES", 2, minimum=0)
# Every API call a page waits on ends within this many seconds, retries and body included (keep it well
# under the server's worker timeout); background work has its own, longer deadline.
OPENAI_WEB_DEADLINE = envint("OPENAI_WEB_DEADLINE", 10, minimum=1)
OPENAI_TASK_DEADLINE = envint("OPENAI_TASK_DEADLINE", 300, minimum=1)
# API calls one person's pages may make in a minute (reading messages, refreshing, exporting).
THREADSITE_PAGE_API_CALLS_PER_MINUTE = envint("THREADSITE_PAGE_API_CALLS_PER_MINUTE", 120, minimum=1)
# The largest answer the client reads, in bytes.
OPENAI_MAX_RESPONSE_BYTES = envint("OPENAI_MAX_RESPONSE_BYTES", 20 * 1024 * 1024, minimum=1024)
# Imports of more IDs than this are checked against the API by a background task.
IMPORT_INLINE_CHECK_LIMIT = envint("THREADSITE_IMPORT_INLINE_CHECK_LIMIT", 20, minimum=0)
# Imports larger than this (bytes) are parsed in the background, the page following their progress.
IMPORT_INLINE_BYTES = envint("THREADSITE_IMPORT_INLINE_BYTES", 512 * 1024, minimum=0)
# Largest import accepted at once, in bytes.
IMPORT_MAX_BYTES = envint("THREADSITE_IMPORT_MAX_BYTES", 64 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = IMPORT_MAX_BYTES

# --- API tokens, the REST API and the capture proxy (/proxy/v1/) ----------------------------------
# A token found is kept this long in each web process, sparing the capture proxy a query per request; a
# revocation reaches the other processes within it (0: look every token up every time).
THREADSITE_TOKEN_CACHE_SECONDS = envint("THREADSITE_TOKEN_CACHE_SECONDS", 5, minimum=0)
# Background threads of each web process that record what the capture proxy forwarded, once each answer
# has gone; tests set 0 to record in the request's own thread as it closes.
THREADSITE_CAPTURE_THREADS = envint("THREADSITE_CAPTURE_THREADS", 0 if TESTING else 4, minimum=0)
# Each socket read of a forwarded answer may wait this long: a model may think for minutes before its
# first token (the official client's own timeout is 600 s).
THREADSITE_PROXY_READ_TIMEOUT = envint("THREADSITE_PROXY_READ_TIMEOUT", 600, minimum=1)
# Streams one web process holds at once. Each holds one of gunicorn's threads for its whole length, so
# the default keeps 8 of GUNICORN_THREADS free for every other request; past it, a stream gets a 503
# with Retry-After (which the official client retries) instead of taking the last thread.
THREADSITE_PROXY_MAX_STREAMS = envint(
    "THREADSITE_PROXY_MAX_STREAMS", max(4, envint("GUNICORN_THREADS", 8, minimum=1) - 8), minimum=1
)

if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"refusals": {"()": "threadsite.logfilters.RefusalsWithoutTraceback"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["refusals"]},
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own console handler (DEBUG only) would print each record a second time beside the
        # root's: configured here without handlers, its records reach the root's console once.
        "django": {"level": "INFO"},
        # urllib3 logs URLs only (never headers), but keep it quiet: retries are logged by our client.
        "urllib3": {"level": "WARNING"},
    },
}
