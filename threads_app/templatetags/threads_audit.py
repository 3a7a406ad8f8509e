"""Filters for showing audit events."""

from django import template

register = template.Library()


def _text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{k} {_text(v)}" for k, v in value.items()) or "—"
    if value in (None, ""):
        return "—"
    return str(value)


@register.filter
def audit_details(details) -> list[tuple[str, str]]:
    """An event's details as (label, text) pairs for a compact list (escaped by the template)."""
    if not isinstance(details, dict):
        return []
    return [(key.replace("_", " "), _text(value)) for key, value in details.items()]
