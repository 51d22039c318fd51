"""Settings, all taken from the environment (see docs/configuration.md).

Every variable has a default that gives the embedded, one-machine setup; a value that cannot be
understood stops the process at start-up with a message naming the variable.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from cdp.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = (BASE_DIR / env_str("CDP_VAR_DIR", "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    configured = env_str("CDP_SECRET_KEY", "")
    if configured:
        if len(configured) < 32:
            raise ImproperlyConfigured("CDP_SECRET_KEY must be at least 32 characters long")
        return configured
    # The embedded setup keeps a generated key on disk so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("CDP_DEBUG", False)
ALLOWED_HOSTS = env_list("CDP_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CDP_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "cdp.core",
    "cdp.tracking",
    "cdp.processing",
    "cdp.destinations",
    "cdp.delivery",
    "cdp.debugger",
    "cdp.insights",
    "cdp.api",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "cdp.urls"
ASGI_APPLICATION = "cdp.asgi.application"
WSGI_APPLICATION = None

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

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    try:
        _db = dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
    except Exception as exc:  # dj-database-url raises several types for bad URLs
        raise ImproperlyConfigured(f"DATABASE_URL could not be parsed: {exc}") from None
    if not _db.get("ENGINE"):
        raise ImproperlyConfigured("DATABASE_URL has an unknown scheme; use postgres:// or sqlite:///")
else:
    _db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(VAR_DIR / "cdp.sqlite3"),
    }
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _sqlite_sync = env_str("CDP_SQLITE_SYNCHRONOUS", "FULL").upper()
    if _sqlite_sync not in {"FULL", "NORMAL"}:
        raise ImproperlyConfigured("CDP_SQLITE_SYNCHRONOUS must be FULL or NORMAL")
    _db["OPTIONS"] = {
        # IMMEDIATE makes writers queue on the lock at BEGIN instead of failing mid-transaction.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={_sqlite_sync};",
    }
    # Tests run servers in subprocesses, so the test database must be a file they can open.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, Celery, Channels ----------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured("REDIS_URL must start with redis://, rediss:// or unix://")

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cdp"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
_SWEEP_SECONDS = env_float("CDP_SWEEP_SECONDS", 5.0, 0.5)
CELERY_BEAT_SCHEDULE = {
    # The sweeper: whatever a lost wake-up message left behind is picked up within seconds.
    "process-intake": {"task": "cdp.processing.tasks.process_intake", "schedule": _SWEEP_SECONDS},
    "purge-intake": {"task": "cdp.processing.tasks.purge_intake", "schedule": 3600.0},
    "sweep-deliveries": {"task": "cdp.delivery.tasks.sweep_deliveries", "schedule": _SWEEP_SECONDS},
    "resume-delivery-jobs": {"task": "cdp.delivery.jobs.resume_jobs", "schedule": 60.0},
}
# Re-drive and replay jobs live outside the `tasks` modules Celery discovers.
CELERY_IMPORTS = ["cdp.delivery.jobs"]
CELERY_TASK_ROUTES = {
    "cdp.delivery.tasks.deliver_destination": {"queue": "delivery"},
    "cdp.delivery.jobs.run_job": {"queue": "delivery"},
}

CHANNEL_LAYER_BACKEND = env_str("CDP_CHANNEL_LAYER", "redis")
if CHANNEL_LAYER_BACKEND == "redis":
    # redis-py 8 reads with a 5 s timeout by default, exactly channels_redis's blocking pop: an idle
    # websocket's receive then fails at random. Reads must be allowed to wait longer than the pop.
    _channel_host = {"address": REDIS_URL, "socket_timeout": 30}
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [_channel_host]}}
    }
elif CHANNEL_LAYER_BACKEND == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    raise ImproperlyConfigured("CDP_CHANNEL_LAYER must be redis or memory")

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "dashboard:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["cdp.api.authentication.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "cdp.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "EXCEPTION_HANDLER": "cdp.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CDP management API",
    "DESCRIPTION": "Workspaces, sources and stored events. Authenticate with `Authorization: Bearer <token>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Choice sets on fields of the same name need their own names.
    "ENUM_NAME_OVERRIDES": {
        "SourceKindEnum": "cdp.core.models.SourceKind",
        "JobKindEnum": "cdp.delivery.models.JobKind",
        "JobStatusEnum": "cdp.delivery.models.JobStatus",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("CDP_LOG_LEVEL", "INFO").upper()},
    "loggers": {"httpx": {"level": "WARNING"}},
}

# --- Tracking API ---------------------------------------------------------------------------
CDP_MAX_MESSAGE_BYTES = env_int("CDP_MAX_MESSAGE_BYTES", 32 * 1024, 1024)
CDP_MAX_REQUEST_BYTES = env_int("CDP_MAX_REQUEST_BYTES", 500 * 1024, 1024)
CDP_MAX_BATCH_MESSAGES = env_int("CDP_MAX_BATCH_MESSAGES", 2500, 1)
# Events per second per source and web process; 0 means no limit. A source's own setting wins.
CDP_DEFAULT_RATE_LIMIT = env_int("CDP_DEFAULT_RATE_LIMIT", 0, 0)
CDP_WRITE_KEY_CACHE_SECONDS = env_float("CDP_WRITE_KEY_CACHE_SECONDS", 1.0, 0.0)
CDP_CORS_ALLOWED_ORIGINS = env_list("CDP_CORS_ALLOWED_ORIGINS", ["*"])
# Behind a reverse proxy that sets X-Forwarded-For/-Host/-Proto, and only then, trust them.
CDP_TRUST_FORWARDED_HEADERS = env_bool("CDP_TRUST_FORWARDED_HEADERS", False)
if CDP_TRUST_FORWARDED_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True
# The URL browsers and snippets use to reach this server, e.g. https://cdp.example.com (default: the request's).
CDP_PUBLIC_URL = env_str("CDP_PUBLIC_URL", "").rstrip("/")
if CDP_PUBLIC_URL and not CDP_PUBLIC_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("CDP_PUBLIC_URL must start with http:// or https://")
CDP_ANALYTICS_JS_DIR = Path(
    env_str("CDP_ANALYTICS_JS_DIR", str(BASE_DIR / "node_modules/@segment/analytics-next/dist/umd"))
)

# --- Processing -----------------------------------------------------------------------------
CDP_WAKE_PROCESSOR = env_bool("CDP_WAKE_PROCESSOR", True)
CDP_PROCESS_BATCH_ROWS = env_int("CDP_PROCESS_BATCH_ROWS", 200, 1)
# Having run out of requests, a drain keeps looking for new ones this long, this often.
CDP_PROCESS_LINGER_SECONDS = env_float("CDP_PROCESS_LINGER_SECONDS", 0.1, 0.0)
CDP_PROCESS_POLL_SECONDS = env_float("CDP_PROCESS_POLL_SECONDS", 0.01, 0.001)
CDP_INTAKE_RETENTION_DAYS = env_int("CDP_INTAKE_RETENTION_DAYS", 7, 1)
CDP_INTAKE_MAX_ATTEMPTS = env_int("CDP_INTAKE_MAX_ATTEMPTS", 5, 1)
CDP_INTAKE_RETRY_SECONDS = env_int("CDP_INTAKE_RETRY_SECONDS", 60, 0)
# Keep the routing configuration (sources, destinations, subscriptions) between batches while its
# version, kept by database triggers, stays the same; off: load it for every batch.
CDP_ROUTING_CACHE = env_bool("CDP_ROUTING_CACHE", True)

# --- Delivery -------------------------------------------------------------------------------
CDP_RETRY_BASE_SECONDS = env_float("CDP_RETRY_BASE_SECONDS", 10.0, 0.0)
CDP_RETRY_MAX_DELAY_SECONDS = env_float("CDP_RETRY_MAX_DELAY_SECONDS", 3600.0, 0.0)
CDP_BREAKER_THRESHOLD = env_int("CDP_BREAKER_THRESHOLD", 20, 1)
CDP_BREAKER_COOLDOWN_SECONDS = env_float("CDP_BREAKER_COOLDOWN_SECONDS", 30.0, 1.0)
CDP_DELIVERY_TIME_BUDGET_SECONDS = env_float("CDP_DELIVERY_TIME_BUDGET_SECONDS", 20.0, 1.0)
# Threads per delivery worker process that record answers (each with its own database connection).
CDP_DELIVERY_RECORDERS = env_int("CDP_DELIVERY_RECORDERS", 4, 1)
# Having sent everything due, a delivery task for single events keeps looking for new deliveries this
# long, this often, before it ends (a steady stream then needs no new task per event).
CDP_DELIVERY_LINGER_SECONDS = env_float("CDP_DELIVERY_LINGER_SECONDS", 0.1, 0.0)
CDP_DELIVERY_POLL_SECONDS = env_float("CDP_DELIVERY_POLL_SECONDS", 0.01, 0.001)
# Rows per second a re-drive or replay job works through (dead letters re-driven, events replayed).
CDP_REDRIVE_RATE = env_int("CDP_REDRIVE_RATE", 200, 1)
# Bearer token /metrics asks for; empty leaves /metrics open, for scrapers on a private network.
CDP_METRICS_TOKEN = env_str("CDP_METRICS_TOKEN", "")
