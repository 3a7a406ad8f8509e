"""The settings helpers: typed, loud about bad values."""

from datetime import timedelta
from pathlib import Path

import pytest
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from threadsite import env


def test_envbool_reads_the_usual_spellings(monkeypatch):
    for raw, expected in [
        ("1", True),
        ("yes", True),
        ("On", True),
        ("0", False),
        ("false", False),
        ("", False),
    ]:
        monkeypatch.setenv("FLAG", raw)
        assert env.envbool("FLAG", not expected) is expected
    monkeypatch.delenv("FLAG")
    assert env.envbool("FLAG", True) is True


def test_envbool_and_envint_refuse_nonsense(monkeypatch):
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG must be one of"):
        env.envbool("FLAG", False)
    monkeypatch.setenv("COUNT", "ten")
    with pytest.raises(ImproperlyConfigured, match="COUNT must be a whole number"):
        env.envint("COUNT", 1)
    monkeypatch.setenv("COUNT", "-1")
    with pytest.raises(ImproperlyConfigured, match="at least 0"):
        env.envint("COUNT", 1, minimum=0)


def test_envsecret_reads_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("TOKEN_FILE", str(secret))
    assert env.envsecret("TOKEN") == "s3cret"
    monkeypatch.setenv("TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="unreadable"):
        env.envsecret("TOKEN")


def test_database_is_sqlite_in_the_project_folder_by_default():
    config = env.database_settings("", Path("/srv/threadsite"))
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == Path("/srv/threadsite/db.sqlite3")


def test_database_url_selects_postgresql():
    config = env.database_settings("postgres://u:p@db:5433/threads", Path("."))
    assert (config["ENGINE"], config["HOST"], config["PORT"], config["NAME"]) == (
        "django.db.backends.postgresql",
        "db",
        5433,
        "threads",
    )


def test_a_bad_database_url_is_refused():
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env.database_settings("nosuchdb://x", Path("."))


def test_the_beat_schedule_is_built_from_the_table():
    schedule = env.beat_schedule({})
    entry = schedule["Apply retention policies"]
    assert (entry["task"], entry["args"]) == ("threads_app.tasks.run_sweep", ("retention",))
    assert entry["schedule"] == crontab(minute="41")
    assert entry["options"]["expires"] < 3600
    assert set(schedule) == {
        "Fold the overview's tallies",
        "Resume stalled deletion jobs",
        "Check threads past their expiry",
        "Apply retention policies",
        "Sync recently active threads",
        "Purge old audit events",
    }


def test_a_schedule_can_be_moved_or_disabled():
    moved = env.beat_schedule({"THREADSITE_SYNC_CRON": "0 3 * * 1"})
    assert moved["Sync recently active threads"]["schedule"] == crontab(minute="0", hour="3", day_of_week="1")
    assert "Sync recently active threads" not in env.beat_schedule({"THREADSITE_SYNC_CRON": "disable"})
    keys = [row[1] for row in env.BEAT_TABLE]
    assert env.beat_schedule(dict.fromkeys(keys, "disable")) == {}


def test_a_schedule_can_repeat_every_few_seconds():
    entry = env.beat_schedule({"THREADSITE_SYNC_CRON": "every 5 seconds"})["Sync recently active threads"]
    assert entry["schedule"] == timedelta(seconds=5) and entry["options"]["expires"] == 4


@pytest.mark.parametrize("value", ["every hour", "61 * * * *", "every 0 s"])
def test_a_bad_crontab_is_refused(value):
    with pytest.raises(ImproperlyConfigured, match="THREADSITE_SYNC_CRON"):
        env.beat_schedule({"THREADSITE_SYNC_CRON": value})


def test_the_cache_is_shared_through_redis_when_there_is_one():
    assert env.cache_settings("")["BACKEND"].endswith("LocMemCache")
    shared = env.cache_settings("redis://redis:6379/0")
    assert (shared["BACKEND"], shared["LOCATION"]) == (
        "django.core.cache.backends.redis.RedisCache",
        "redis://redis:6379/0",
    )


def test_served_over_https_the_deploy_check_finds_nothing_missing():
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {key: value for key, value in os.environ.items() if key not in ("DEBUG", "THREADSITE_TESTING")}
    env.update(SECURE_COOKIES="1", SECRET_KEY="k3y-" + "".join(chr(65 + n % 26) for n in range(60)))
    root = Path(__file__).resolve().parent.parent
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], cwd=root, env=env, capture_output=True, text=True
    )
    said = checked.stderr + checked.stdout
    # No redirect (W008), HSTS (W004), HSTS for subdomains (W005) or preload (W021) missing.
    assert not [warning for warning in ("W004", "W005", "W008", "W021") if warning in said], said
    assert "no issues" in said
