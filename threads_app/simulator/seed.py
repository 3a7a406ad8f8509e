"""A demo world: two projects with threads of all three kinds, the same IDs on every run.

Ages are spread so that a dashboard has something to show: Assistants threads from fresh to a few hours
short of the 60-day edge, conversations and ChatKit threads up to months old, several ChatKit end users,
metadata on some, titles on most, messages with code blocks, citations, attachments and tool calls.
"""

import json
import random
from datetime import datetime, timedelta

from . import objects
from .state import SimulatorState

DEMO_SEED = 20260826
DEMO_PROJECTS = (
    {
        "name": "Support bot (simulated)",
        "api_key": "sk-sim-support-7f3a",
        "project_id": "proj_sim_support",
        "organization_id": "org-sim-acme",
    },
    {
        "name": "Research assistant (simulated)",
        "api_key": "sk-sim-research-2c9d",
        "project_id": "proj_sim_research",
        "organization_id": "org-sim-acme",
    },
)
USERS = ("user_ada", "user_grace", "user_linus", "user_margaret", "user_alan", "user_barbara")
CUSTOMERS = ("Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises")

# (question, answer) pairs; answers carry code blocks so that renderers get exercised.
EXCHANGES = (
    (
        "How do I rotate the API key used by our nightly export?",
        "Create the new key first, deploy it, then revoke the old one:\n\n```bash\n"
        "export OPENAI_API_KEY=sk-new\nsystemctl restart export.timer\n```\n\nRevoke the old key once "
        "the next run succeeds.",
    ),
    (
        "The export job fails with a 429. What should it do?",
        "Back off and retry, honouring the `retry-after` header:\n\n```python\nfor attempt in range(5):\n"
        "    response = session.get(url)\n    if response.status_code != 429:\n        break\n"
        "    time.sleep(int(response.headers.get('retry-after', 1)))\n```",
    ),
    (
        "Summarise the attached onboarding checklist.",
        "The checklist has three parts: accounts, hardware and a first-week buddy. Accounts must exist "
        "before day one【4:0†checklist.pdf】.",
    ),
    (
        "Can you convert this SQL to the Django ORM? SELECT * FROM orders WHERE total > 100",
        "```python\nOrder.objects.filter(total__gt=100)\n```\n\nAdd `.only(...)` if you need fewer columns.",
    ),
    (
        "Why is the dashboard slow on Mondays?",
        "The weekly report runs at 08:00 and scans the whole orders table. An index on "
        "`(created_at, status)` would let it read only the last week.",
    ),
    (
        "What is our refund policy for annual plans?",
        "Annual plans are refundable pro rata within 30 days of renewal【7:1†policies.md】.",
    ),
    (
        "Write a regex that matches an order number like ORD-2024-00042.",
        '```python\nimport re\nORDER = re.compile(r"ORD-\\d{4}-\\d{5}")\n```',
    ),
    (
        "Translate 'Your ticket has been resolved' into French and German.",
        "French: « Votre ticket a été résolu. »\nGerman: „Ihr Ticket wurde gelöst.“",
    ),
)
TITLES = (
    "Key rotation",
    "Rate limits on export",
    "Onboarding checklist",
    "ORM question",
    "Slow dashboard",
    "Refund policy",
    "Order number regex",
    "Translations",
)


def seed_demo(
    state: SimulatorState, *, threads_per_kind: int = 40, now: datetime | None = None
) -> list[dict]:
    """Seed a fresh state: for each of two projects, `threads_per_kind` threads of each kind.

    Returns one dict per project: name, api_key, project_id, organization_id, remote_ids (all kinds),
    users (the ChatKit end users seen). The same call gives the same IDs on every run; timestamps are
    relative to `now` (default: the state's clock).
    """
    now = now or state.clock()
    rng = random.Random(DEMO_SEED)
    seeded = []
    with state.ids_from(random.Random(DEMO_SEED + 1)):
        for project in DEMO_PROJECTS:
            state.add_key(project["api_key"], project["project_id"], project["organization_id"])
            project_id = project["project_id"]
            remote_ids, users = [], set()
            assistant_id = state.new_id("asst")
            for _ in range(threads_per_kind):
                remote_ids.append(_assistants_thread(state, rng, project_id, assistant_id, now))
                remote_ids.append(_conversation(state, rng, project_id, now))
                thread = _chatkit_thread(state, rng, project_id, now)
                remote_ids.append(thread["id"])
                users.add(thread["user"])
            seeded.append({**project, "remote_ids": remote_ids, "users": sorted(users)})
    return seeded


def _metadata(rng: random.Random) -> dict:
    if rng.random() < 0.4:
        return {}
    metadata = {"customer": rng.choice(CUSTOMERS), "channel": rng.choice(("web", "email", "slack"))}
    if rng.random() < 0.3:
        metadata["priority"] = rng.choice(("low", "normal", "high"))
    return metadata


def _assistants_thread(
    state: SimulatorState, rng: random.Random, project_id: str, assistant_id: str, now: datetime
) -> str:
    # Last activity from today to a few hours short of the 60-day edge; a fifth sit in the last 3 days
    # before it, so that expiry shows up within a demo's lifetime.
    if rng.random() < 0.2:
        idle = timedelta(days=57) + timedelta(hours=rng.uniform(1, 70))
    else:
        idle = timedelta(days=rng.uniform(0, 57))
    exchanges = rng.randint(1, 6)
    last = now - idle
    start = last - timedelta(minutes=rng.randint(5, 60 * 24 * 10))
    thread = state.create_thread(project_id, created_at=start, metadata=_metadata(rng))
    step = (last - start) / (exchanges * 2)
    for number in range(exchanges):
        question, answer = rng.choice(EXCHANGES)
        asked = start + step * (number * 2 + 1)
        extra = {}
        if "attached" in question:
            extra["attachments"] = [
                {"file_id": f"file-{rng.getrandbits(48):012x}", "tools": [{"type": "file_search"}]}
            ]
        state.add_message(thread["id"], "user", question, created_at=asked, **extra)
        failed = rng.random() < 0.05
        run = state.add_run(
            thread["id"],
            created_at=asked + timedelta(seconds=2),
            assistant_id=assistant_id,
            **(
                {
                    "status": "failed",
                    "completed_at": None,
                    "failed_at": int((asked + timedelta(seconds=9)).timestamp()),
                    "last_error": {"code": "server_error", "message": "Sorry, something went wrong."},
                }
                if failed
                else {}
            ),
        )
        if failed:
            continue
        state.add_message(
            thread["id"],
            "assistant",
            created_at=start + step * (number * 2 + 2),
            content=[objects.text_part(answer, _citations(rng, answer))],
            run_id=run["id"],
            assistant_id=assistant_id,
        )
    return thread["id"]


def _citations(rng: random.Random, text: str) -> list[dict]:
    start = text.find("【")
    if start < 0:
        return []
    end = text.index("】", start) + 1
    return [
        {
            "type": "file_citation",
            "text": text[start:end],
            "file_citation": {"file_id": f"file-{rng.getrandbits(48):012x}"},
            "start_index": start,
            "end_index": end,
        }
    ]


def _conversation(state: SimulatorState, rng: random.Random, project_id: str, now: datetime) -> str:
    items: list = []
    if rng.random() < 0.3:
        items.append(("developer", "Answer as Acme's support agent. Be brief."))
    for _ in range(rng.randint(1, 5)):
        question, answer = rng.choice(EXCHANGES)
        items.append(("user", question))
        if rng.random() < 0.2:
            call_id = f"call_{rng.getrandbits(64):016x}"
            arguments = json.dumps({"customer": rng.choice(CUSTOMERS)})
            items.append(
                {
                    "type": "function_call",
                    "call_id": call_id,
                    "name": "lookup_account",
                    "arguments": arguments,
                }
            )
            items.append({"type": "function_call_output", "call_id": call_id, "output": '{"plan": "annual"}'})
        annotations = []
        if rng.random() < 0.25:
            annotations.append(
                {
                    "type": "url_citation",
                    "url": "https://docs.example.com/support",
                    "title": "Support handbook",
                    "start_index": 0,
                    "end_index": min(len(answer), 20),
                }
            )
        items.append(
            ("assistant", answer, {"content": [objects.item_text_part("assistant", answer, annotations)]})
        )
    created = now - timedelta(days=rng.uniform(0, 180))
    return state.create_conversation(project_id, created_at=created, metadata=_metadata(rng), items=items)[
        "id"
    ]


def _chatkit_thread(state: SimulatorState, rng: random.Random, project_id: str, now: datetime) -> dict:
    created = now - timedelta(days=rng.uniform(0, 120))
    items = []
    moment = created
    for _ in range(rng.randint(1, 5)):
        question, answer = rng.choice(EXCHANGES)
        moment += timedelta(minutes=rng.randint(1, 30))
        items.append(("user", question, {"created_at": moment}))
        extra_kind = rng.random()
        if extra_kind < 0.15:
            items.append(("task", "Searching the knowledge base", {"created_at": moment}))
        elif extra_kind < 0.25:
            items.append(
                (
                    "client_tool_call",
                    "open_ticket",
                    {"created_at": moment, "arguments": '{"priority": "high"}'},
                )
            )
        elif extra_kind < 0.35:
            widget = json.dumps(
                {"type": "Card", "children": [{"type": "Text", "value": "Order ORD-2024-00042"}]}
            )
            items.append(("widget", widget, {"created_at": moment}))
        moment += timedelta(seconds=rng.randint(2, 40))
        items.append(("assistant", answer, {"created_at": moment}))
    status = None
    if rng.random() < 0.1:
        status = rng.choice(
            ({"type": "locked", "reason": "Escalated to a human"}, {"type": "closed", "reason": None})
        )
    return state.create_chatkit_thread(
        project_id,
        user=rng.choice(USERS),
        title=rng.choice(TITLES) if rng.random() < 0.85 else None,
        created_at=created,
        items=items,
        status=status,
    )


def seed_bulk(
    state: SimulatorState,
    project_id: str,
    *,
    count: int,
    items: tuple[int, int] = (1, 3),
    seed: int = 1,
    kinds: tuple[str, ...] = ("assistants_thread", "conversation", "chatkit_thread"),
    idle_days: float = 0,
) -> list[str]:
    """`count` threads in one project, the `kinds` in turn, quickly, for benchmarks: Assistants threads
    with one message, conversations with `items` (min, max) items each, ChatKit threads with one item,
    last active `idle_days` ago. Returns their IDs in the order made."""
    rng = random.Random(seed)
    now = state.clock() - timedelta(days=idle_days)
    remote_ids = []
    with state.ids_from(random.Random(seed + 1)), state.lock:
        for n in range(count):
            created = now - timedelta(minutes=n // 3)
            kind = kinds[n % len(kinds)]
            if kind == "assistants_thread":
                thread = state.create_thread(
                    project_id, created_at=created, messages=[("user", f"Question {n}")]
                )
            elif kind == "conversation":
                thread = state.create_conversation(
                    project_id,
                    created_at=created,
                    items=[("user", f"Question {n}.{i}") for i in range(rng.randint(*items))],
                )
            else:
                thread = state.create_chatkit_thread(
                    project_id, user=f"user_{n % 50:02d}", created_at=created, items=[("user", f"Hi {n}")]
                )
            remote_ids.append(thread["id"])
    return remote_ids
