"""The API's metadata rules, checked before anything is sent or stored."""

import pytest

from threads_app.metadata import InvalidMetadata
from threads_app.metadata import validate as validate_metadata


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({f"k{i}": "v" for i in range(17)}, "at most 16 pairs"),
        ({"k" * 65: "v"}, "longer than 64"),
        ({"k": "v" * 513}, "longer than 512"),
        ({"k": 5}, "must be text"),
        (["k", "v"], "key-value pairs"),
    ],
)
def test_metadata_the_api_would_refuse_is_refused_with_a_clear_message(metadata, message):
    with pytest.raises(InvalidMetadata, match=message):
        validate_metadata(metadata)


def test_metadata_at_the_limits_is_accepted():
    metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    assert validate_metadata(metadata) is metadata
