"""Settings come from the environment and fail loudly on values they cannot use."""

import subprocess
import sys

import pytest

from tests.support.processes import ROOT

_LOAD = (
    "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'cdp.settings'; django.setup(); "
    "from django.conf import settings; print(settings.{name})"
)


def _load(name: str, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "CDP_VAR_DIR": "var/test"}
    return subprocess.run(
        [sys.executable, "-c", _LOAD.format(name=name)], cwd=ROOT, env={**base, **env}, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CDP_DEBUG": "maybe"}, "CDP_DEBUG='maybe' is not a boolean"),
        ({"CDP_MAX_BATCH_MESSAGES": "lots"}, "CDP_MAX_BATCH_MESSAGES='lots' is not an integer"),
        ({"CDP_MAX_BATCH_MESSAGES": "0"}, "CDP_MAX_BATCH_MESSAGES=0 is below the minimum of 1"),
        ({"CDP_WRITE_KEY_CACHE_SECONDS": "soon"}, "CDP_WRITE_KEY_CACHE_SECONDS='soon' is not a number"),
        ({"DATABASE_URL": "mongodb://x/y"}, "DATABASE_URL"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with"),
        ({"CDP_SECRET_KEY": "short"}, "CDP_SECRET_KEY must be at least 32 characters"),
        ({"CDP_CHANNEL_LAYER": "kafka"}, "CDP_CHANNEL_LAYER must be redis or memory"),
        ({"CDP_SQLITE_SYNCHRONOUS": "OFF"}, "CDP_SQLITE_SYNCHRONOUS must be FULL or NORMAL"),
    ],
)
def test_settings_bad_value_stops_start_with_its_name(env, message):
    result = _load("DEBUG", **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_settings_database_url_switches_to_postgresql():
    result = _load("DATABASES['default']['ENGINE']", DATABASE_URL="postgres://someone@db.internal:5433/cdp")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.db.backends.postgresql"


def test_settings_default_is_sqlite_in_wal_mode():
    result = _load("DATABASES['default']")
    assert result.returncode == 0, result.stderr
    assert "sqlite3" in result.stdout
    assert "journal_mode=WAL" in result.stdout


def test_settings_redis_url_feeds_broker_and_channel_layer():
    broker = _load("CELERY_BROKER_URL", REDIS_URL="redis://cache:6380/2")
    layer = _load("CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]['address']", REDIS_URL="redis://cache:6380/2")
    assert broker.stdout.strip() == "redis://cache:6380/2", broker.stderr
    assert layer.stdout.strip() == "redis://cache:6380/2", layer.stderr
