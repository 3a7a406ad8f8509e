"""The API's metadata rules, checked before anything is sent or stored."""

import json

import pytest

from threads_app import importing
from threads_app.metadata import InvalidMetadata
from threads_app.metadata import validate as validate_metadata
from threads_app.models import Thread


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({f"k{i}": "v" for i in range(17)}, "Metadata holds at most 16 pairs; this has 17."),
        ({"k" * 65: "v"}, "The metadata key “kkkkkkkkkkkkkkkkkkkk…” is longer than 64 characters."),
        ({"k": "v" * 513}, "The value of “k” is longer than 512 characters."),
        ({"k": 5}, "The value of “k” must be text."),
        ({"k": None}, "The value of “k” must be text."),
        (["k", "v"], "Metadata must be a set of key-value pairs."),
        ("k=v", "Metadata must be a set of key-value pairs."),
    ],
)
def test_metadata_the_api_would_refuse_is_refused_with_a_clear_message(metadata, message):
    with pytest.raises(InvalidMetadata) as refused:
        validate_metadata(metadata)
    assert str(refused.value) == message


@pytest.mark.parametrize("key", ["", 5, None, ("k",)], ids=["empty", "number", "none", "tuple"])
def test_a_metadata_key_must_be_non_empty_text(key):
    with pytest.raises(InvalidMetadata) as refused:
        validate_metadata({"fine": "v", key: "v"})
    assert str(refused.value) == "Metadata keys must be non-empty text."


def test_a_long_key_is_named_by_its_first_twenty_characters():
    key = "abcdefghijklmnopqrstuvwxyz" * 3
    with pytest.raises(InvalidMetadata) as refused:
        validate_metadata({key: "v"})
    assert str(refused.value).startswith("The metadata key “abcdefghijklmnopqrst…” ")


def test_metadata_at_the_limits_is_accepted():
    metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    assert validate_metadata(metadata) is metadata


@pytest.mark.parametrize("metadata", [{}, {"k": ""}, {"k": "v"}])
def test_small_metadata_and_empty_values_are_accepted(metadata):
    assert validate_metadata(metadata) is metadata


def test_an_import_whose_metadata_has_an_empty_key_is_refused_and_imports_nothing(credential):
    lines = "\n".join(
        json.dumps({"id": remote_id, "metadata": metadata})
        for remote_id, metadata in (("thread_aaaaaa111", {"k": "v"}), ("thread_bbbbbb222", {"": "v"}))
    )
    with pytest.raises(
        importing.ImportRefused, match="thread_bbbbbb222.*Metadata keys must be non-empty text"
    ):
        importing.import_threads(lines, credential=credential)
    assert not Thread.objects.exists()
