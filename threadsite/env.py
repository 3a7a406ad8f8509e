"""Typed readers for environment variables that fail loudly on bad values.

Every variable the project reads is listed, with its default, in `.env.example`.
"""

import os
import re
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of true/false/1/0/yes/no, not {raw!r}")


def envint(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def envsecret(name: str, default: str = "") -> str:
    """Read NAME, or the contents of the file named by NAME_FILE (Docker secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE points to an unreadable file: {exc}") from None
    return os.environ.get(name, default)


def envlist(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_settings(url: str, base_dir: Path) -> dict:
    """DATABASES["default"]: SQLite in the project folder unless DATABASE_URL is set."""
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": base_dir / "db.sqlite3",
            "OPTIONS": {
                # WAL lets the dashboard read while an in-process task writes.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    import dj_database_url

    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
    if config["ENGINE"] == "django.db.backends.postgresql":
        config.setdefault("OPTIONS", {})
    return config


def cache_settings(redis_url: str) -> dict:
    """CACHES["default"]: shared through Redis when there is one, so that every web and worker process
    reads the same cached figures; otherwise this process's memory."""
    if not redis_url:
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_url,
        "KEY_PREFIX": "threadsite",
    }


# name, env key, default crontab ("minute hour day_of_month month day_of_week"), task, expires (s),
# arguments
BEAT_TABLE = [
    (
        "Fold the overview's tallies",
        "THREADSITE_TALLIES_CRON",
        "* * * * *",
        "threads_app.tasks.fold_tallies",
        50,
        (),
    ),
    (
        "Resume stalled deletion jobs",
        "THREADSITE_RESUME_JOBS_CRON",
        "* * * * *",
        "threads_app.tasks.resume_deletion_jobs",
        50,
        (),
    ),
    (
        "Check threads past their expiry",
        "THREADSITE_EXPIRY_CRON",
        "23 3 * * *",
        "threads_app.tasks.run_sweep",
        23 * 3600,
        ("expiry",),
    ),
    (
        "Apply retention policies",
        "THREADSITE_RETENTION_CRON",
        "41 * * * *",
        "threads_app.tasks.run_sweep",
        55 * 60,
        ("retention",),
    ),
    (
        "Sync recently active threads",
        "THREADSITE_SYNC_CRON",
        "*/15 * * * *",
        "threads_app.tasks.run_sweep",
        14 * 60,
        ("sync",),
    ),
    (
        "Purge old audit events",
        "THREADSITE_AUDIT_PURGE_CRON",
        "17 4 * * *",
        "threads_app.tasks.purge_audit_events",
        23 * 3600,
        (),
    ),
]


EVERY = re.compile(r"every (\d+) ?s(?:ec(?:ond)?s?)?", re.IGNORECASE)


def beat_schedule(environ=os.environ) -> dict:
    """Celery beat schedule from BEAT_TABLE. An env value is a 5-field crontab, `every N seconds` (for
    short intervals: tests, busy sites), or `disable`, which switches the entry off."""
    from celery.schedules import crontab

    schedule = {}
    for name, key, default, task, expires, args in BEAT_TABLE:
        value = environ.get(key, default).strip()
        if value.lower() == "disable":
            continue
        if every := EVERY.fullmatch(value):
            seconds = int(every.group(1))
            if seconds < 1:
                raise ImproperlyConfigured(f"{key} must repeat at least a second apart, not {value!r}")
            when, expires = timedelta(seconds=seconds), min(expires, max(1, seconds - 1))
        else:
            when = _crontab(key, value, crontab)
        schedule[name] = {"task": task, "schedule": when, "args": args, "options": {"expires": expires}}
    return schedule


def _crontab(key: str, value: str, crontab):
    parts = value.split()
    if len(parts) != 5:
        raise ImproperlyConfigured(
            f"{key} must be a 5-field crontab, 'every N seconds' or 'disable', not {value!r}"
        )
    minute, hour, day_of_month, month, day_of_week = parts
    try:
        return crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"{key} is not a valid crontab: {exc}") from None
