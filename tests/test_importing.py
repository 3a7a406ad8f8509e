import json

import pytest

from threads_app import importing
from threads_app.models import Credential, Thread


def test_it_imports_ids_picked_out_of_free_text(credential, alice):
    text = (
        "2026-10-01 created thread_aaaaaa111 for alice\n"
        "deleted? conv_bbbbbb222 and cthr_cccccc333\n"
        "noise without ids\n"
    )
    report = importing.import_threads(text, credential=credential, owner=alice)
    assert report.added == 3
    threads = {t.remote_id: t for t in Thread.objects.all()}
    assert threads["thread_aaaaaa111"].kind == Thread.Kind.ASSISTANTS
    assert threads["conv_bbbbbb222"].kind == Thread.Kind.CONVERSATION
    assert threads["cthr_cccccc333"].kind == Thread.Kind.CHATKIT
    assert {t.owner for t in threads.values()} == {alice}
    assert {t.source for t in threads.values()} == {Thread.Source.IMPORT}


def test_it_reports_duplicates_and_never_doubles_them(credential):
    importing.import_threads("thread_aaaaaa111", credential=credential)
    report = importing.import_threads(
        "thread_aaaaaa111\nthread_bbbbbb222\nthread_bbbbbb222\n", credential=credential
    )
    assert (report.added, report.already_tracked, report.duplicates) == (1, 1, 1)
    assert report.already_tracked_sample == ["thread_aaaaaa111"]
    assert report.duplicates_sample == ["thread_bbbbbb222"]
    assert Thread.objects.count() == 2


def test_it_leaves_threads_tracked_under_another_credential_alone(credential):
    other = Credential(name="beta", project_id="proj_beta")
    other.api_key = "sk-test-beta-key-9999"
    other.save()
    importing.import_threads("thread_aaaaaa111", credential=other)
    report = importing.import_threads("thread_aaaaaa111 thread_bbbbbb222", credential=credential)
    assert report.added == 1
    assert report.tracked_elsewhere == [("thread_aaaaaa111", "beta")]
    assert Thread.objects.get(remote_id="thread_aaaaaa111").credential == other


def test_it_refuses_run_and_message_ids_but_imports_the_threads_beside_them(credential):
    report = importing.import_threads("run_aaaaaa111 thread_bbbbbb222 msg_cccccc333", credential=credential)
    assert report.added == 1
    assert report.refused_count == 2
    assert "a run of an Assistants thread" in report.refused[0][1]
    assert report.refused[0][0] == 1


def test_an_input_of_only_run_ids_is_refused_whole(credential):
    with pytest.raises(importing.ImportRefused) as excinfo:
        importing.import_threads("run_aaaaaa111\nasst_bbbbbb222", credential=credential)
    assert "only IDs of other objects" in excinfo.value.errors[0]
    assert any("an assistant" in error for error in excinfo.value.errors)
    assert not Thread.objects.exists()


@pytest.mark.parametrize("text", ["", "   \n\n", "no ids here at all", "thread_ab"])
def test_an_input_without_ids_is_refused_with_a_clear_message(credential, text):
    with pytest.raises(importing.ImportRefused, match="holds no thread IDs"):
        importing.import_threads(text, credential=credential)
    assert not Thread.objects.exists()


def test_it_reads_csv_with_a_header(credential, alice, bob):
    text = (
        "id,title,owner,end_user,metadata\n"
        'thread_aaaaaa111,Support chat,alice,customer-1,"{""team"": ""support""}"\n'
        "conv_bbbbbb222,Refunds,bob,,\n"
        "\n"
    )
    report = importing.import_threads(text, credential=credential)
    assert report.added == 2
    first = Thread.objects.get(remote_id="thread_aaaaaa111")
    assert (first.title, first.owner, first.end_user, first.metadata) == (
        "Support chat",
        alice,
        "customer-1",
        {"team": "support"},
    )
    assert Thread.objects.get(remote_id="conv_bbbbbb222").owner == bob


def test_it_reads_json_lines(credential, alice):
    lines = [
        json.dumps({"id": "cthr_aaaaaa111", "title": "Widget", "user": "end-user-7", "owner": "alice"}),
        json.dumps({"thread_id": "thread_bbbbbb222", "metadata": {"k": "v"}}),
        "not json but has conv_cccccc333 in it",
    ]
    report = importing.import_threads("\n".join(lines), credential=credential)
    assert report.added == 3
    chatkit = Thread.objects.get(remote_id="cthr_aaaaaa111")
    assert (chatkit.title, chatkit.end_user, chatkit.owner) == ("Widget", "end-user-7", alice)
    assert Thread.objects.get(remote_id="thread_bbbbbb222").metadata == {"k": "v"}


def test_an_unknown_owner_refuses_the_whole_import(credential):
    text = "id,owner\nthread_aaaaaa111,alice\nthread_bbbbbb222,nobody\n"
    with pytest.raises(importing.ImportRefused, match="Unknown owner “nobody” \\(line 3\\)"):
        importing.import_threads(text, credential=credential)
    assert not Thread.objects.exists()


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({f"k{i}": "v" for i in range(17)}, "at most 16 pairs"),
        ({"k" * 65: "v"}, "longer than 64 characters"),
        ({"k": "v" * 513}, "longer than 512 characters"),
        ({"k": 5}, "must be text"),
        (["not", "an", "object"], "key-value pairs"),
    ],
)
def test_metadata_the_api_would_refuse_refuses_the_import(credential, metadata, problem):
    line = json.dumps({"id": "thread_aaaaaa111", "metadata": metadata})
    with pytest.raises(importing.ImportRefused, match=problem):
        importing.import_threads(line, credential=credential)
    assert not Thread.objects.exists()


def test_bad_csv_metadata_is_refused(credential):
    with pytest.raises(importing.ImportRefused, match="not a JSON object"):
        importing.import_threads("id,metadata\nthread_aaaaaa111,{oops\n", credential=credential)


def test_binary_input_is_refused(credential):
    with pytest.raises(importing.ImportRefused, match="binary"):
        importing.import_threads("thread_aaaaaa111\x00\x01", credential=credential)
    with pytest.raises(importing.ImportRefused, match="not UTF-8"):
        importing.decode(b"\xff\xfe\xfa thread_aaaaaa111")


def test_add_thread_refuses_what_is_tracked_and_what_is_not_a_thread(credential):
    importing.add_thread("thread_aaaaaa111", credential=credential, title="First")
    with pytest.raises(importing.AlreadyTracked, match="already tracked"):
        importing.add_thread("thread_aaaaaa111", credential=credential)
    with pytest.raises(importing.ids.InvalidId, match="a run"):
        importing.add_thread("run_aaaaaa111", credential=credential)
    assert list(Thread.objects.values_list("remote_id", "title", "source")) == [
        ("thread_aaaaaa111", "First", Thread.Source.MANUAL)
    ]


def test_a_large_import_is_kept_and_imported_in_the_background_with_progress(
    admin_client, credential, settings, django_capture_on_commit_callbacks
):
    from threads_app.models import ImportRun

    settings.THREADSITE_INPROCESS_WORKERS = 0
    settings.IMPORT_INLINE_BYTES = 100
    text = "\n".join(f"thread_large{n:08d}" for n in range(3000)) + "\nrun_abcdef123\n"
    with django_capture_on_commit_callbacks(execute=False) as started:
        response = admin_client.post("/threads/import/", {"credential": credential.pk, "text": text})
    run = ImportRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/threads/import/{run.pk}/"
    assert run.state == "queued" and not Thread.objects.exists(), "the page answered before importing"
    polling = admin_client.get(response["Location"], headers={"HX-Request": "true"})
    assert polling.status_code == 200 and 'hx-trigger="every 1s"' in polling.content.decode()

    for callback in started:  # the background task
        callback()

    run.refresh_from_db()
    assert run.state == "finished" and run.text == "" and Thread.objects.count() == 3000
    done = admin_client.get(response["Location"], headers={"HX-Request": "true"})
    body = done.content.decode()
    assert done.status_code == 286, "the fragment stops polling"
    assert "Imported 3,000 threads" in body and "run_abcdef123 is a run" in body


def test_a_large_import_that_is_refused_says_why(
    admin_client, credential, settings, django_capture_on_commit_callbacks
):
    from threads_app.models import ImportRun

    settings.IMPORT_INLINE_BYTES = 10
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/threads/import/", {"credential": credential.pk, "text": "no ids at all in this text"}
        )
    assert ImportRun.objects.get().state == "failed"
    page = admin_client.get(response["Location"]).content.decode()
    assert "Nothing was imported" in page and "holds no thread IDs" in page
