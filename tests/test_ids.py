import pytest

from threads_app import ids
from threads_app.models import Thread


@pytest.mark.parametrize(
    ("remote_id", "kind"),
    [
        ("thread_abc123XYZ456", Thread.Kind.ASSISTANTS),
        ("conv_68a5f0e1c2b34d5e6f708192a3b4c5d6e7f8091a2b3c4d5e", Thread.Kind.CONVERSATION),
        ("cthr_0123456789abcdef", Thread.Kind.CHATKIT),
        ("  thread_abc123XYZ456\n", Thread.Kind.ASSISTANTS),
    ],
)
def test_it_recognises_each_kind(remote_id, kind):
    assert ids.kind_of(remote_id) == kind


@pytest.mark.parametrize(
    ("remote_id", "what"),
    [
        ("run_abc123XYZ456", "a run of an Assistants thread"),
        ("asst_abc123XYZ456", "an assistant"),
        ("msg_abc123XYZ456", "a message"),
        ("resp_abc123XYZ456", "a Responses API response"),
        ("file_abc123XYZ456", "an uploaded file"),
    ],
)
def test_it_refuses_ids_of_other_objects_saying_what_they_are(remote_id, what):
    with pytest.raises(ids.InvalidId) as excinfo:
        ids.kind_of(remote_id)
    message = str(excinfo.value)
    assert what in message
    assert "thread_…" in message and "conv_…" in message and "cthr_…" in message


def test_a_run_id_refusal_points_at_the_thread_id():
    with pytest.raises(ids.InvalidId, match="starts with thread_"):
        ids.kind_of("run_abc123XYZ456")


@pytest.mark.parametrize(
    "value", ["", "hello", "thread_", "thread_ab", "thread_abc 123", "x" * 500, "thread_abc$123"]
)
def test_it_refuses_garbage_with_a_clear_message(value):
    with pytest.raises(ids.InvalidId, match="is not a thread ID"):
        ids.kind_of(value)


def test_it_picks_ids_out_of_log_lines():
    line = "2026-11-01 INFO run run_aaaaaa111 on thread_bbbbbb222 for conv_cccccc333 (resp_dddddd444)"
    found = list(ids.find_ids(line))
    assert [(value, kind) for value, kind, _ in found] == [
        ("run_aaaaaa111", None),
        ("thread_bbbbbb222", Thread.Kind.ASSISTANTS),
        ("conv_cccccc333", Thread.Kind.CONVERSATION),
        ("resp_dddddd444", None),
    ]
    assert "a run" in found[0][2]


def test_it_ignores_id_lookalikes_inside_words():
    assert list(ids.find_ids("mythread_abcdef123 thread_id=x subthread_abcdefg")) == []


# --- The wording of a refusal, which people read --------------------------------------------------------

HELP = "Threadsite tracks Assistants threads (thread_…), conversations (conv_…) and ChatKit threads (cthr_…)."
HINT = " Its thread's ID starts with thread_ (or conv_ for a conversation)."


@pytest.mark.parametrize(
    ("remote_id", "what", "hint"),
    [
        ("run_abc123XYZ456", "a run of an Assistants thread", HINT),
        ("step_abc123XYZ456", "a run step of an Assistants thread", HINT),
        ("msg_abc123XYZ456", "a message (or a conversation item)", HINT),
        ("asst_abc123XYZ456", "an assistant", ""),
        ("resp_abc123XYZ456", "a Responses API response", ""),
        ("file_abc123XYZ456", "an uploaded file", ""),
        ("vs_abc123XYZ456", "a vector store", ""),
        ("cti_abc123XYZ456", "a ChatKit thread item", ""),
        ("cksess_abc123XYZ456", "a ChatKit session", ""),
    ],
)
def test_an_id_of_another_object_is_refused_naming_it_and_where_its_thread_id_is(remote_id, what, hint):
    """Only runs, run steps and messages belong to a thread whose ID a person could look up instead."""
    expected = f"{remote_id} is {what}, not a thread.{hint} {HELP}"
    with pytest.raises(ids.InvalidId) as refused:
        ids.kind_of(f" {remote_id}\t")
    assert str(refused.value) == expected
    assert list(ids.find_ids(f"see {remote_id}.")) == [(remote_id, None, expected)]


@pytest.mark.parametrize(
    ("remote_id", "shown"),
    [
        ("run_abc", "run_abc"),
        ("run_abc_def", "run_abc_def"),
        ("step_", "step_"),
        ("msg_a-b", "msg_a-b"),
        ("vs_-" + "x" * 76, "vs_-" + "x" * 76),
        ("vs_-" + "x" * 77, "vs_-" + "x" * 73 + "…"),
        ("asst_" + "y" * 5000, "asst_" + "y" * 72 + "…"),
    ],
)
def test_a_known_wrong_prefix_is_refused_as_that_object_even_with_a_malformed_rest(remote_id, shown):
    """`run_abc` is too short to be a real run ID, but telling the person it is a run ID helps more. Like
    any refused value, it is echoed whole up to 80 characters and shortened beyond."""
    with pytest.raises(ids.InvalidId) as refused:
        ids.kind_of(remote_id)
    what = ids.REFUSED_PREFIXES[remote_id.split("_")[0]]
    assert str(refused.value).startswith(f"{shown} is {what}, not a thread.")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("hello", "hello"),
        ("run", "run"),  # a prefix alone is no ID of anything
        ("msg", "msg"),
        ("  thread_ab \n", "thread_ab"),
        ("thread_abc$123", "thread_abc$123"),
        ("_abcdefgh", "_abcdefgh"),
        ("thread-abcdefgh", "thread-abcdefgh"),
        ("x" * 80, "x" * 80),
        ("x" * 81, "x" * 77 + "…"),
        ("y" * 500, "y" * 77 + "…"),
    ],
)
def test_garbage_is_echoed_whole_up_to_80_characters_then_shortened_to_78(value, shown):
    with pytest.raises(ids.InvalidId) as refused:
        ids.kind_of(value)
    assert str(refused.value) == f"“{shown}” is not a thread ID. {HELP}"


@pytest.mark.parametrize("remote_id", ["thread_" + "a" * 80, "conv_" + "b" * 6])
def test_the_body_of_an_id_holds_six_to_eighty_characters(remote_id):
    assert ids.kind_of(remote_id)
    with pytest.raises(ids.InvalidId):
        ids.kind_of(remote_id + "a" if len(remote_id) > 20 else remote_id[:-1])


def test_ids_in_text_come_with_their_kind_and_no_refusal():
    assert list(ids.find_ids("cthr_abcdef1 and conv_abcdef2")) == [
        ("cthr_abcdef1", Thread.Kind.CHATKIT, None),
        ("conv_abcdef2", Thread.Kind.CONVERSATION, None),
    ]
