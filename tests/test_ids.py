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
