"""Settings for the scenario's stand-in of the user's Django app ("AHSP").

The DATABASES block follows the seed (config/settings/base.py lines 129-157 of the user's app):
PGBOUNCER_PORT set means "through the pooler". Everything else is kept small and local.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = os.getenv("DJANGO_SECRET_KEY", "scenario-test-key-not-a-secret")
DEBUG = os.getenv("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "core",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",  # database-backed sessions, like theirs
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    },
]

# ---------------------------------------------------------------------------------------------
# Database: the seed's logic, verbatim in substance.
# Auto-detect PgBouncer from PGBOUNCER_PORT env variable
db_port = os.getenv("PGBOUNCER_PORT") or os.getenv("POSTGRES_PORT", "5432")
using_pgbouncer = os.getenv("PGBOUNCER_PORT") is not None

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.getenv("POSTGRES_DB", "postgres"),
        "USER": os.getenv("POSTGRES_USER", "postgres"),
        "PASSWORD": os.getenv("POSTGRES_PASSWORD", ""),
        "HOST": os.getenv("POSTGRES_HOST", "localhost"),
        "PORT": db_port,
        # Critical PgBouncer settings (seed):
        "CONN_MAX_AGE": 0 if using_pgbouncer else 600,
        # Django >= 4.1 only; Debian 12's Django 3.2 ignores this key (kept as in the seed).
        "CONN_HEALTH_CHECKS": False if using_pgbouncer else True,
        "OPTIONS": {
            "connect_timeout": int(os.getenv("POSTGRES_CONNECT_TIMEOUT", "10")),
        },
        "DISABLE_SERVER_SIDE_CURSORS": using_pgbouncer,
    }
}

# The seed also sends `options` (statement_timeout, idle_in_transaction_session_timeout) as a
# startup parameter. PgBouncer (and tidepool) reject unknown startup parameters unless listed in
# ignore_startup_parameters; the scenario checks both ways. POSTGRES_STARTUP_OPTIONS="" drops it.
_startup_options = os.getenv(
    "POSTGRES_STARTUP_OPTIONS",
    "-c statement_timeout=60000 -c idle_in_transaction_session_timeout=120000",
)
if _startup_options:
    DATABASES["default"]["OPTIONS"]["options"] = _startup_options

# ---------------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = []
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "Asia/Jakarta"
USE_I18N = False
USE_L10N = False
USE_TZ = True

STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# DJANGO_REQUEST_LOG=ERROR logs 500s with tracebacks to stderr (gunicorn's log); off by default,
# like a production Django without mail_admins, so failures cost what they cost there.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["stderr"], "level": os.getenv("DJANGO_REQUEST_LOG", "CRITICAL")},
    },
}
