"""The API's rules for metadata (16 pairs, keys up to 64 characters, string values up to 512), checked
before anything is sent or stored: by the metadata editor, by imports and by the kind adapters."""

MAX_PAIRS = 16
MAX_KEY = 64
MAX_VALUE = 512


class InvalidMetadata(ValueError):
    pass


def validate(metadata) -> dict:
    """The metadata if the API would accept it, else InvalidMetadata with a message a person can act on."""
    if not isinstance(metadata, dict):
        raise InvalidMetadata("Metadata must be a set of key-value pairs.")
    if len(metadata) > MAX_PAIRS:
        raise InvalidMetadata(f"Metadata holds at most {MAX_PAIRS} pairs; this has {len(metadata)}.")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidMetadata("Metadata keys must be non-empty text.")
        if len(key) > MAX_KEY:
            raise InvalidMetadata(f"The metadata key “{key[:20]}…” is longer than {MAX_KEY} characters.")
        if not isinstance(value, str):
            raise InvalidMetadata(f"The value of “{key}” must be text.")
        if len(value) > MAX_VALUE:
            raise InvalidMetadata(f"The value of “{key}” is longer than {MAX_VALUE} characters.")
    return metadata
