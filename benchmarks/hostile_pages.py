"""The site's other pages while three thread pages are stuck on a hostile API; print the figures.

    .venv/bin/python benchmarks/hostile_pages.py [--runs 30] [--deadline 10]
        [--database postgres://postgres@127.0.0.1:5432/threadsite_hostile_bench]

Starts gunicorn as the Dockerfile's CMD starts it (GUNICORN_BIND, OPENAI_WEB_DEADLINE=--deadline) on a
PostgreSQL database of its own, created, migrated and dropped by the run, with a user signed in through
the login form (a pbkdf2 hash, as production hashes); and the offline simulator in a child process, whose
queued faults (`no_headers`, `slow_body`, `no_headers`) make three thread pages hang.

Prints, for the list `/` and `/overview/`, `--runs` requests each (interleaved, one at a time): median and
95th percentile in ms, first with no page stuck (baseline), then while the three pages are stuck; and each
stuck page's time to its "did not answer within N s" message.
"""

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from delete_jobs import recreate_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/threadsite_hostile_bench"
API_KEY = "sk-sim-hostile-bench-0001"
PROJECT = "proj_hostile"
PASSWORD = "bench-password"  # noqa: S105 - a throwaway user of a throwaway database
STUCK_FAULTS = ("no_headers", "slow_body", "no_headers")


def setup_database(database_url: str, base_url: str) -> list[int]:
    """Migrate, add the user, a credential for the simulator and 50 threads; the pks of the first three."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threadsite.settings")
    import django

    django.setup()
    from django.contrib.auth.hashers import PBKDF2PasswordHasher
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from threads_app.models import Credential, Thread

    call_command("migrate", verbosity=0)
    password = PBKDF2PasswordHasher().encode(PASSWORD, "benchsalt", iterations=1000)
    User.objects.create(username="admin", password=password, is_staff=True, is_superuser=True)
    credential = Credential(name="hostile", base_url=base_url, project_id=PROJECT)
    credential.api_key = API_KEY
    credential.save()
    threads = [
        Thread.objects.create(
            remote_id=f"thread_hostile{n:010d}", kind="assistants_thread", credential=credential
        )
        for n in range(50)
    ]
    return [thread.pk for thread in threads[:3]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(database_url: str, log, *options: str, **settings: str) -> tuple[subprocess.Popen, str]:
    """gunicorn as the Dockerfile starts it (plus `options` on its command line and `settings` in its
    environment), on `database_url`; returns the process and its base URL once it answers."""
    import json

    line = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    command = json.loads(line.removeprefix("CMD "))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "THREADSITE_TESTING", "REDIS_URL")}
    env.update(DATABASE_URL=database_url, GUNICORN_BIND=f"127.0.0.1:{port}", PYTHONPATH=str(ROOT), **settings)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name(command[0])), *command[1:], *options],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    while True:
        try:
            requests.get(f"{base}/accounts/login/", timeout=10)
            return server, base
        except requests.RequestException:
            if server.poll() is not None or time.monotonic() - started > 30:
                server.kill()
                raise RuntimeError("gunicorn did not start; see its log") from None
            time.sleep(0.1)


def sign_in(base: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=5)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        f"{base}/accounts/login/",
        {"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=5,
    )
    if "sessionid" not in session.cookies:
        raise RuntimeError(f"Could not sign in (HTTP {answer.status_code})")
    return session


def measure(session: requests.Session, base: str, runs: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"/": [], "/overview/": []}
    for _ in range(runs):
        for path, found in timings.items():
            started = time.monotonic()
            answer = session.get(f"{base}{path}", timeout=30)
            found.append((time.monotonic() - started) * 1000)
            if answer.status_code != 200:
                raise RuntimeError(f"{path} answered {answer.status_code}")
    return timings


def figures(values: list[float]) -> str:
    p95 = statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]
    return f"{statistics.median(values):8.1f} {p95:8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--deadline", type=int, default=10, help="OPENAI_WEB_DEADLINE of the gunicorn")
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    args = parser.parse_args()

    from threads_app.simulator import SimulatorConfig, SimulatorProcess

    recreate_database(args.database)
    log_path = Path(tempfile.gettempdir()) / f"hostile_pages_gunicorn_{os.getpid()}.log"
    server = None
    try:
        with SimulatorProcess(SimulatorConfig(seed=7)) as sim, log_path.open("w") as log:
            sim.call("add_key", API_KEY, PROJECT)
            stuck_pks = setup_database(args.database, sim.base_url)
            server, base = start_gunicorn(args.database, log, OPENAI_WEB_DEADLINE=str(args.deadline))
            session = sign_in(base)
            measure(session, base, 2)  # warm-up
            baseline = measure(session, base, args.runs)

            already = len(sim.call("request_log"))
            sim.call("enqueue_faults", *STUCK_FAULTS)
            stuck: dict[int, tuple[float, str]] = {}
            give_up = args.deadline * 4

            def open_messages(pk: int) -> None:
                opener = sign_in_copy(session)
                started = time.monotonic()
                try:
                    page = opener.get(
                        f"{base}/threads/{pk}/messages/", headers={"HX-Request": "true"}, timeout=give_up
                    )
                except requests.RequestException:
                    stuck[pk] = (time.monotonic() - started, f"no answer within {give_up} s (gave up)")
                    return
                message = re.search(r"did not answer within \d+ s", page.text)
                stuck[pk] = (time.monotonic() - started, message.group(0) if message else page.text[:80])

            openers = [threading.Thread(target=open_messages, args=(pk,)) for pk in stuck_pks]
            for opener in openers:
                opener.start()
            if not sim.call("wait_for_requests", already + len(STUCK_FAULTS), 30):
                raise RuntimeError("the three pages did not reach the simulator")
            measuring_started = time.monotonic()
            during = measure(session, base, args.runs)
            measured_for = time.monotonic() - measuring_started
            still_stuck = sum(opener.is_alive() for opener in openers)
            for opener in openers:
                opener.join(give_up + 5)
    finally:
        if server is not None:
            server.terminate()
            server.wait(20)
        recreate_database(args.database, drop_only=True)

    print(
        f"gunicorn as the Dockerfile's CMD, OPENAI_WEB_DEADLINE={args.deadline}, {args.runs} requests a page"
    )
    print(f"{'page':<12} {'state':<22} {'median':>8} {'p95':>8}   (ms)")
    for path in ("/", "/overview/"):
        print(f"{path:<12} {'baseline':<22} {figures(baseline[path])}")
        print(f"{path:<12} {'3 thread pages stuck':<22} {figures(during[path])}")
    print(f"(measured in {measured_for:.1f} s; {still_stuck} of 3 pages still stuck when it ended)")
    # Which page met which fault depends on the order their requests reached the simulator.
    print(f"stuck pages (faults {', '.join(STUCK_FAULTS)}, in the order the pages' requests arrived):")
    for pk in stuck_pks:
        elapsed, message = stuck.get(pk, (float("nan"), "no answer"))
        print(f"  thread page {pk}: {elapsed * 1000:8.0f} ms to {message!r}")


def sign_in_copy(session: requests.Session) -> requests.Session:
    """A session of its own (requests' sessions are not thread-safe) with the same login."""
    copy = requests.Session()
    copy.cookies.update(session.cookies)
    return copy


if __name__ == "__main__":
    main()
