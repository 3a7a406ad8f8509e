import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from tests.browsers import chromium, page  # noqa: F401 (fixtures for every test)
from tests.hostile import HostileServer
from tests.workers import redis_url, start_celery, start_worker, worker  # noqa: F401 (fixtures for every test)
from threads_app.models import Credential
from threads_app.simulator import SimulatorConfig, running_simulator


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test of the fast layer starts with an empty cache (this process's memory): cached figures and
    sign-in counters of one test never leak into the next. A shared Redis cache is left alone (clearing
    it would flush the database the workers' broker may use)."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()


def make_user(username: str, role: str, *, content: bool = False, **fields):
    """A user in `role` (member, admin, auditor), password `<username>-password`; `content` grants an
    auditor the reading of message content."""
    from threads_app import team

    user = User.objects.create_user(username, f"{username}@example.com", f"{username}-password", **fields)
    team.set_role(user, role, recorded=False)  # setting the scene, not an event to audit
    if content:
        from django.contrib.auth.models import Permission

        user.user_permissions.add(Permission.objects.get(codename="view_message_content"))
    return user


@pytest.fixture
def alice(db):
    """An admin: sees and does everything."""
    return make_user("alice", "admin")


@pytest.fixture
def bob(db):
    """A member: sees and acts on the threads he owns."""
    return make_user("bob", "member")


@pytest.fixture
def personas(db):
    """The five people of every access test: an admin, a member who owns the thread under test, a member
    who does not, and auditors without and with the permission to read message content."""
    return {
        "admin": make_user("ada", "admin"),
        "owner": make_user("olga", "member"),
        "stranger": make_user("sam", "member"),
        "auditor": make_user("audrey", "auditor"),
        "reader": make_user("reed", "auditor", content=True),
    }


@pytest.fixture
def credential(db):
    cred = Credential(name="alpha", base_url="http://127.0.0.1:9/v1", project_id="proj_alpha")
    cred.api_key = "sk-test-alpha-key-1234"
    cred.save()
    return cred


# --- Offline simulator of the OpenAI API ----------------------------------------------------------
# Two projects; proj_alpha's key is the `credential` fixture's, so that credential works against it.
SIMULATOR_KEYS = {"proj_alpha": "sk-test-alpha-key-1234", "proj_beta": "sk-test-beta-key-5678"}


@pytest.fixture
def simulator():
    """The offline API served on a free port: `.base_url`, `.state` (seed objects, queue faults, move
    `.state.clock`), `.config` (turn knobs while it runs). Keys: `sim_key("proj_alpha")`."""
    with running_simulator(SimulatorConfig(seed=1234)) as sim:
        for project_id, api_key in SIMULATOR_KEYS.items():
            sim.state.add_key(api_key, project_id)
        yield sim


class CallsAtOnce:
    """Counts the requests the simulator is answering at once (`.most`: the most so far). The simulated
    latency is spent inside its app, so a request counts for as long as the client waits for it."""

    def __init__(self, server):
        self.most, self._now, self._lock, self._app = 0, 0, threading.Lock(), server.get_app()
        server.set_app(self)

    def __call__(self, environ, start_response):
        with self._lock:
            self._now += 1
            self.most = max(self.most, self._now)
        try:
            return self._app(environ, start_response)
        finally:
            with self._lock:
                self._now -= 1


@pytest.fixture
def calls_at_once(simulator) -> CallsAtOnce:
    return CallsAtOnce(simulator.server)


@pytest.fixture
def sim_key():
    """The simulator's API key for a project: `sim_key("proj_beta")`."""
    return SIMULATOR_KEYS.__getitem__


class SimClock:
    """A clock for `SimulatorState.clock` that moves only when told: `advance(days=60)`."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def sim_clock(simulator):
    """Freezes the simulator's time at 2026-06-01 12:00 UTC; `sim_clock.advance(...)` moves it."""
    simulator.state.clock = SimClock(datetime(2026, 6, 1, 12, tzinfo=UTC))
    return simulator.state.clock


@pytest.fixture
def no_retries(settings):
    """One answer per request: retries and their waits are the client's tests' business."""
    settings.OPENAI_MAX_RETRIES = 0


@pytest.fixture
def sim_credential(credential, simulator):
    """The `credential` fixture pointed at the simulator (project proj_alpha)."""
    credential.base_url = simulator.base_url
    credential.save()
    return credential


@pytest.fixture
def make_thread(credential):
    """Create tracked threads: `make_thread(title="…", owner=alice)`; remote IDs are unique by default."""
    from threads_app.models import Thread

    counter = iter(range(1, 1_000_000))

    def make(**fields):
        fields.setdefault("credential", credential)
        fields.setdefault("kind", Thread.Kind.ASSISTANTS)
        if "remote_id" not in fields:
            prefix = {"conversation": "conv", "chatkit_thread": "cthr"}.get(fields["kind"], "thread")
            fields["remote_id"] = f"{prefix}_test{next(counter):06d}"
        return Thread.objects.create(**fields)

    return make


@pytest.fixture(scope="session")
def openapi_spec_path() -> Path:
    """OpenAI's OpenAPI description, which lies in shared/ beside the checkout (as in CI) unless
    THREADSITE_OPENAPI_SPEC names another file. Missing, it fails the tests that need it: never a skip."""
    override = os.environ.get("THREADSITE_OPENAPI_SPEC")
    path = Path(override) if override else Path(settings.BASE_DIR).parent / "shared/openai/openapi.yaml"
    if not path.is_file():
        pytest.fail(
            f"The OpenAPI description of the OpenAI API is missing: {path} does not exist. Put it there "
            "or name another file in THREADSITE_OPENAPI_SPEC.",
            pytrace=False,
        )
    return path


@pytest.fixture
def hostile():
    """Start servers that misbehave below HTTP: `hostile(behaviour)`, see tests/hostile.py."""
    servers = []

    def start(behaviour):
        servers.append(HostileServer(behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
