"""Reading the API's payloads into entries: each kind's messages and items, pages, lenient fields, metadata.

The first part reads crafted payloads (including shapes other servers send); the coverage tests read the
item types from the OpenAPI description itself, so a type added to the spec fails here until it is mapped.
Payloads are read through each kind's adapter (`adapter.entry`), as the rest of the product reads them.
"""

from datetime import UTC, datetime

import pytest
import yaml

from threads_app import entries
from threads_app.client import InvalidResponse
from threads_app.entries import (
    CHATKIT_ITEMS,
    CONVERSATION_ITEMS,
    PART_TYPES,
    Entry,
    Page,
    follow_pages,
    parse_page,
    timestamp,
)
from threads_app.kinds import AssistantsThreads, ChatKitThreads, Conversations
from threads_app.models import Thread

T0 = 1_760_000_000  # 2025-10-09T08:53:20Z
assistants, conversations, chatkit = AssistantsThreads(), Conversations(), ChatKitThreads()


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# --- Fields read leniently ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T0, at(T0)),
        (T0 + 0.5, datetime.fromtimestamp(T0 + 0.5, tz=UTC)),
        (T0 * 1000, at(T0)),
        (str(T0), at(T0)),
        ("2025-10-09T08:53:20Z", at(T0)),
        ("2025-10-09T08:53:20", at(T0)),
        (None, None),
        (True, None),
        ("yesterday", None),
        (float("nan"), None),
        ({"seconds": T0}, None),
    ],
)
def test_it_reads_timestamps_as_unix_seconds_and_tolerates_other_forms(value, expected):
    assert timestamp(value) == expected


def test_a_thread_without_metadata_or_timestamps_still_reads():
    remote = assistants.remote_thread({"id": "thread_abc123", "metadata": None}, "thread_abc123")
    assert (remote.id, remote.kind, remote.created_at, remote.metadata) == (
        "thread_abc123",
        Thread.Kind.ASSISTANTS,
        None,
        {},
    )


def test_a_title_comes_from_the_object_or_else_from_metadata():
    assert conversations.remote_thread({"metadata": {"title": "Refunds"}}, "conv_abc123").title == "Refunds"
    raw = {"id": "cthr_abc123", "title": "Billing", "user": "user_1", "created_at": T0}
    remote = chatkit.remote_thread(raw, "cthr_abc123")
    assert (remote.title, remote.user, remote.created_at) == ("Billing", "user_1", at(T0))
    assert chatkit.remote_thread({"id": "cthr_abc123", "title": None}, "cthr_abc123").title == ""


# --- Assistants messages --------------------------------------------------------------------------


ASSISTANT_MESSAGE = {
    "id": "msg_abc123",
    "object": "thread.message",
    "created_at": T0,
    "thread_id": "thread_abc123",
    "status": "completed",
    "role": "assistant",
    "assistant_id": "asst_abc123",
    "run_id": "run_abc123",
    "content": [
        {
            "type": "text",
            "text": {
                "value": "See the report【4:0†source】 and chart.png.",
                "annotations": [
                    {
                        "type": "file_citation",
                        "text": "【4:0†source】",
                        "file_citation": {"file_id": "file-cite1"},
                        "start_index": 14,
                        "end_index": 26,
                    },
                    {
                        "type": "file_path",
                        "text": "chart.png",
                        "file_path": {"file_id": "file-path1"},
                        "start_index": 31,
                        "end_index": 40,
                    },
                ],
            },
        },
        {"type": "image_file", "image_file": {"file_id": "file-img1", "detail": "auto"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "refusal", "refusal": "I can't help with that."},
        {"type": "hologram", "hologram": {"depth": 3}},
    ],
    "attachments": [
        {"file_id": "file-att1", "tools": [{"type": "file_search"}, {"type": "code_interpreter"}]}
    ],
    "metadata": {},
}


def test_it_normalises_an_assistants_message_with_every_content_type():
    entry = assistants.entry(ASSISTANT_MESSAGE)
    assert (entry.id, entry.role, entry.type, entry.created_at) == (
        "msg_abc123",
        "assistant",
        "message",
        at(T0),
    )
    assert (entry.run_id, entry.assistant_id, entry.status) == ("run_abc123", "asst_abc123", "completed")
    text, image_file, image_url, refusal, unknown, attachment = entry.parts
    assert text.type == "text" and text.text.startswith("See the report")
    citation, path = text.annotations
    assert (citation.type, citation.file_id, citation.text, citation.start, citation.end) == (
        "file_citation",
        "file-cite1",
        "【4:0†source】",
        14,
        26,
    )
    assert (path.type, path.file_id) == ("file_path", "file-path1")
    assert (image_file.type, image_file.file_id) == ("image", "file-img1")
    assert (image_url.type, image_url.url) == ("image", "https://example.com/cat.png")
    assert (refusal.type, refusal.text) == ("refusal", "I can't help with that.")
    assert (unknown.type, unknown.name, unknown.data) == (
        "other",
        "hologram",
        ASSISTANT_MESSAGE["content"][4],
    )
    assert (attachment.type, attachment.file_id) == ("file", "file-att1")
    assert attachment.data == {"tools": ["file_search", "code_interpreter"]}
    assert entry.raw is ASSISTANT_MESSAGE


def test_an_assistants_message_missing_optional_fields_still_reads():
    entry = assistants.entry({"id": "msg_1", "role": "user", "content": [{"type": "text", "text": "hi"}]})
    assert (entry.created_at, entry.run_id, entry.assistant_id, entry.text) == (None, "", "", "hi")


# --- Conversation items ---------------------------------------------------------------------------


def test_it_normalises_a_conversation_message_with_every_content_type():
    item = {
        "type": "message",
        "id": "msg_abc",
        "status": "completed",
        "role": "assistant",
        "content": [
            {"type": "input_text", "text": "question"},
            {
                "type": "output_text",
                "text": "answer",
                "annotations": [
                    {
                        "type": "url_citation",
                        "url": "https://example.com",
                        "title": "Ex",
                        "start_index": 0,
                        "end_index": 6,
                    },
                    {"type": "file_citation", "file_id": "file-c", "filename": "a.pdf", "index": 3},
                    {
                        "type": "container_file_citation",
                        "container_id": "cntr_1",
                        "file_id": "cfile_1",
                        "filename": "out.csv",
                        "start_index": 0,
                        "end_index": 1,
                    },
                ],
                "logprobs": [],
            },
            {"type": "refusal", "refusal": "no"},
            {"type": "input_image", "image_url": None, "file_id": "file-i", "detail": "auto"},
            {
                "type": "input_file",
                "file_id": None,
                "filename": "notes.txt",
                "file_url": "https://example.com/n",
            },
            {"type": "summary_text", "text": "in short"},
            {"type": "future_part", "x": 1},
        ],
    }
    entry = conversations.entry(item)
    assert (entry.id, entry.role, entry.type, entry.created_at, entry.status) == (
        "msg_abc",
        "assistant",
        "message",
        None,
        "completed",
    )
    question, answer, refusal, image, file, summary, unknown = entry.parts
    assert (question.type, question.text) == ("text", "question")
    url, cited, container = answer.annotations
    assert (url.type, url.url, url.title, url.start, url.end) == (
        "url_citation",
        "https://example.com",
        "Ex",
        0,
        6,
    )
    assert (cited.file_id, cited.filename, cited.start) == ("file-c", "a.pdf", 3)
    assert (container.file_id, container.filename) == ("cfile_1", "out.csv")
    assert (refusal.type, refusal.text) == ("refusal", "no")
    assert (image.type, image.file_id, image.url) == ("image", "file-i", "")
    assert (file.type, file.name, file.url) == ("file", "notes.txt", "https://example.com/n")
    assert (summary.type, summary.name) == ("text", "summary_text")
    assert (unknown.type, unknown.data) == ("other", {"type": "future_part", "x": 1})


def test_message_content_given_as_a_plain_string_reads_as_text():
    entry = conversations.entry({"type": "message", "id": "msg_1", "role": "user", "content": "Hello!"})
    assert [(p.type, p.text) for p in entry.parts] == [("text", "Hello!")]


@pytest.mark.parametrize(
    ("item", "role", "parts"),
    [
        (
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "c1",
                "name": "get_weather",
                "arguments": '{"city":"Oslo"}',
            },
            "assistant",
            [("tool_call", "get_weather", '{"city":"Oslo"}')],
        ),
        (
            {"type": "function_call_output", "id": "fco_1", "call_id": "c1", "output": "12°C"},
            "tool",
            [("tool_output", "", "12°C")],
        ),
        (
            {
                "type": "function_call_output",
                "id": "fco_2",
                "call_id": "c1",
                "output": [{"type": "input_text", "text": "ok"}],
            },
            "tool",
            [("tool_output", "", "ok")],
        ),
        (
            {
                "type": "web_search_call",
                "id": "ws_1",
                "status": "completed",
                "action": {"type": "search", "query": "oslo"},
            },
            "assistant",
            [("tool_call", "web_search", "oslo")],
        ),
        (
            {
                "type": "file_search_call",
                "id": "fs_1",
                "status": "completed",
                "queries": ["a", "b"],
                "results": None,
            },
            "assistant",
            [("tool_call", "file_search", "a\nb")],
        ),
        (
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Thinking"}]},
            "assistant",
            [("text", "reasoning", "Thinking")],
        ),
        (
            {
                "type": "computer_call",
                "id": "cu_1",
                "call_id": "c",
                "action": {"type": "click", "x": 1, "y": 2},
            },
            "assistant",
            [("tool_call", "computer", '{"type": "click", "x": 1, "y": 2}')],
        ),
        (
            {
                "type": "mcp_call",
                "id": "mcp_1",
                "server_label": "s",
                "name": "lookup",
                "arguments": "{}",
                "output": "found",
            },
            "assistant",
            [("tool_call", "lookup", "{}"), ("tool_output", "lookup", "found")],
        ),
        (
            {
                "type": "mcp_approval_response",
                "id": "mar_1",
                "approval_request_id": "r",
                "approve": False,
                "reason": "no",
            },
            "user",
            [("tool_output", "mcp_approval", "denied: no")],
        ),
        (
            {
                "type": "shell_call_output",
                "id": "sh_1",
                "call_id": "c",
                "output": [{"stdout": "hi", "stderr": "", "outcome": {}}],
            },
            "tool",
            [("tool_output", "shell", "hi")],
        ),
        (
            {
                "type": "apply_patch_call",
                "id": "ap_1",
                "call_id": "c",
                "operation": {"type": "update_file", "path": "a.py", "diff": "-x\n+y"},
            },
            "assistant",
            [("tool_call", "apply_patch", "update_file a.py\n-x\n+y")],
        ),
    ],
)
def test_it_normalises_conversation_tool_items(item, role, parts):
    entry = conversations.entry(item)
    assert entry.type == item["type"]
    assert entry.role == role
    assert [(p.type, p.name, p.text) for p in entry.parts] == parts


def test_an_unknown_conversation_item_type_keeps_its_raw_data():
    item = {"type": "teleport_call", "id": "tp_1", "destination": "Mars"}
    entry = conversations.entry(item)
    assert [(p.type, p.name, p.data) for p in entry.parts] == [("other", "teleport_call", item)]


# --- ChatKit items --------------------------------------------------------------------------------


def chatkit_item(kind, **fields):
    return {
        "id": "cthi_1",
        "object": "chatkit.thread_item",
        "created_at": T0,
        "thread_id": "cthr_1",
        "type": kind,
        **fields,
    }


def test_it_normalises_chatkit_messages_with_attachments_and_annotations():
    user = chatkit.entry(
        chatkit_item(
            "chatkit.user_message",
            content=[
                {"type": "input_text", "text": "Look"},
                {"type": "quoted_text", "text": "earlier words"},
            ],
            attachments=[
                {
                    "type": "image",
                    "id": "att_1",
                    "name": "a.png",
                    "mime_type": "image/png",
                    "preview_url": "https://p/a",
                },
                {
                    "type": "file",
                    "id": "att_2",
                    "name": "b.pdf",
                    "mime_type": "application/pdf",
                    "preview_url": None,
                },
            ],
            inference_options=None,
        )
    )
    assert (user.role, user.type, user.created_at) == ("user", "message", at(T0))
    assert [(p.type, p.name, p.text, p.file_id, p.url) for p in user.parts] == [
        ("text", "", "Look", "", ""),
        ("text", "quoted_text", "earlier words", "", ""),
        ("image", "a.png", "", "att_1", "https://p/a"),
        ("file", "b.pdf", "", "att_2", ""),
    ]
    assistant = chatkit.entry(
        chatkit_item(
            "chatkit.assistant_message",
            content=[
                {
                    "type": "output_text",
                    "text": "Per the guide",
                    "annotations": [
                        {"type": "file", "source": {"type": "file", "filename": "guide.pdf"}},
                        {"type": "url", "source": {"type": "url", "url": "https://example.com"}},
                    ],
                }
            ],
        )
    )
    assert assistant.role == "assistant"
    (text,) = assistant.parts
    assert [(a.type, a.filename, a.url) for a in text.annotations] == [
        ("file", "guide.pdf", ""),
        ("url", "", "https://example.com"),
    ]


def test_a_chatkit_widget_becomes_a_widget_part():
    entry = chatkit.entry(chatkit_item("chatkit.widget", widget='{"type": "Card", "children": []}'))
    (part,) = entry.parts
    assert (entry.type, part.type, part.text, part.data) == (
        "widget",
        "widget",
        "Card",
        {"type": "Card", "children": []},
    )
    (broken,) = chatkit.entry(chatkit_item("chatkit.widget", widget="<Card/>")).parts
    assert (broken.type, broken.text) == ("widget", "<Card/>")


def test_chatkit_tool_calls_and_tasks_are_normalised():
    call = chatkit.entry(
        chatkit_item(
            "chatkit.client_tool_call",
            status="completed",
            call_id="c1",
            name="get_time",
            arguments="{}",
            output="noon",
        )
    )
    assert (call.type, call.status) == ("client_tool_call", "completed")
    assert [(p.type, p.name, p.text) for p in call.parts] == [
        ("tool_call", "get_time", "{}"),
        ("tool_output", "get_time", "noon"),
    ]
    task = chatkit.entry(chatkit_item("chatkit.task", task_type="thought", heading="Planning", summary=None))
    assert [(p.type, p.name, p.text) for p in task.parts] == [("other", "task", "Planning")]
    group = chatkit.entry(
        chatkit_item(
            "chatkit.task_group",
            tasks=[
                {"type": "custom", "heading": "Search", "summary": "3 hits"},
                {"type": "thought", "heading": "Done", "summary": None},
            ],
        )
    )
    assert [p.text for p in group.parts] == ["Search\n3 hits", "Done"]


def test_an_unknown_chatkit_item_keeps_its_raw_data():
    raw = chatkit_item("chatkit.poll", question="Lunch?")
    entry = chatkit.entry(raw)
    assert (entry.type, entry.created_at) == ("poll", at(T0))
    assert [(p.type, p.data) for p in entry.parts] == [("other", raw)]


# --- Every type in the spec is mapped ---------------------------------------------------------------


@pytest.fixture(scope="module")
def schemas(openapi_spec_path):
    with openapi_spec_path.open() as spec:
        # The C build of the safe loader reads the 3 MB description five times faster.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(spec, Loader=loader)["components"]["schemas"]  # noqa: S506


def discriminators(schemas, variants):
    """The `type` constants of a oneOf's variants."""
    found = []
    for variant in variants:
        schema = schemas[variant["$ref"].rsplit("/", 1)[1]]
        properties = dict(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            properties.update(
                schemas[part["$ref"].rsplit("/", 1)[1]].get("properties", {}) if "$ref" in part else {}
            )
        found.extend(properties["type"]["enum"])
    return found


def test_every_conversation_item_type_in_the_spec_is_mapped(schemas):
    types = discriminators(schemas, schemas["ConversationItem"]["oneOf"])
    assert len(types) > 20
    assert set(types) - {"message"} <= set(CONVERSATION_ITEMS)
    for kind in types:
        parts = conversations.entry({"type": kind, "id": "x_1"}).parts
        assert all(part.type in PART_TYPES for part in parts)
        assert not any(
            part.type == "other" and part.name == kind and part.data is not None for part in parts
        ), kind


def test_every_message_content_type_in_the_spec_is_mapped(schemas):
    variants = schemas["Message"]["properties"]["content"]["items"]["oneOf"]
    for kind in discriminators(schemas, variants):
        (part,) = conversations.entry(
            {"type": "message", "role": "user", "content": [{"type": kind, "text": "t"}]}
        ).parts
        assert part.type != "other", kind


def test_every_assistants_content_type_in_the_spec_is_mapped(schemas):
    for kind in discriminators(schemas, schemas["MessageObject"]["properties"]["content"]["items"]["oneOf"]):
        (part,) = assistants.entry({"content": [{"type": kind}]}).parts
        assert part.type != "other", kind


def test_every_chatkit_item_type_in_the_spec_is_mapped(schemas):
    assert set(discriminators(schemas, schemas["ThreadItem"]["oneOf"])) == set(CHATKIT_ITEMS)


# --- Pages ----------------------------------------------------------------------------------------


def test_a_page_keeps_the_cursors_the_api_gives():
    page = parse_page(
        {
            "data": [{"id": "msg_2"}, {"id": "msg_1"}],
            "first_id": "msg_2",
            "last_id": "msg_1",
            "has_more": True,
        },
        assistants.entry,
        2,
    )
    assert [e.id for e in page.entries] == ["msg_2", "msg_1"]
    assert (page.first_id, page.last_id, page.has_more, page.next_cursor) == ("msg_2", "msg_1", True, "msg_1")


def test_a_page_without_cursors_derives_them_from_its_items():
    page = parse_page(
        {"data": [{"id": "a"}, {"id": "b"}], "last_id": None, "has_more": True}, assistants.entry, 20
    )
    assert (page.first_id, page.last_id, page.next_cursor) == ("a", "b", "b")


def test_a_page_without_has_more_assumes_more_only_when_full():
    full = parse_page({"data": [{"id": "a"}, {"id": "b"}]}, assistants.entry, 2)
    short = parse_page({"data": [{"id": "a"}]}, assistants.entry, 2)
    empty = parse_page({"data": []}, assistants.entry, 2)
    assert (full.has_more, short.has_more, empty.has_more) == (True, False, False)
    assert (empty.first_id, empty.next_cursor) == (None, None)


def test_the_last_page_has_no_next_cursor():
    assert Page(entries=[], first_id="a", last_id="b", has_more=False).next_cursor is None


def test_a_list_answer_without_data_is_an_invalid_response():
    with pytest.raises(InvalidResponse):
        parse_page({"object": "list"}, assistants.entry, 20)


def test_following_pages_stops_when_a_server_repeats_a_cursor():
    looping = Page(entries=[Entry("a", "user", "message", None)], first_id="a", last_id="a", has_more=True)
    calls = []

    def fetch(after):
        calls.append(after)
        return looping

    assert len(list(follow_pages(fetch))) == 2
    assert calls == [None, "a"]


# --- Part types ----------------------------------------------------------------------


def test_the_module_names_its_part_types():
    assert entries.PART_TYPES == (
        "text",
        "refusal",
        "file",
        "image",
        "tool_call",
        "tool_output",
        "widget",
        "other",
    )


def test_a_list_that_never_ends_is_stopped_at_the_caps():
    from threads_app.entries import Page, PagingLimit, follow_pages

    def endless(cursor):
        n = int(cursor or 0) + 1
        return Page(entries=[n], first_id=str(n), last_id=str(n), has_more=True)

    pages = follow_pages(endless, max_pages=5)
    with pytest.raises(PagingLimit, match="still listing after 5 pages"):
        list(pages)
    with pytest.raises(PagingLimit, match="after 0 s"):
        list(follow_pages(endless, max_seconds=0))
    repeating = follow_pages(lambda cursor: Page(entries=[1], first_id="a", last_id="a", has_more=True))
    assert len(list(repeating)) == 2, "a cursor given twice ends the list"
