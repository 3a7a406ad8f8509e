"""Filters for showing threads and their messages."""

import json

from django import template
from django.utils import timezone

from .. import transcripts

register = template.Library()


@register.filter
def message_html(text):
    """Message text, escaped, with fenced code blocks as <pre><code> and line breaks kept."""
    return transcripts.message_html(text or "")


@register.filter
def link_url(url):
    """The URL if it may be linked (http/https), else ""."""
    return transcripts.link_url(url or "")


@register.filter
def pretty_json(value):
    if value is None or value == "":
        return ""
    text = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    # A widget or tool payload can be large: the page shows its start; the export has all of it.
    return text if len(text) <= 4000 else text[:4000] + "\n…"


@register.filter
def age(moment, now=None):
    """How long ago, compactly: "just now", "12 min ago", "5 h ago", "3 d ago", "2 y ago"."""
    if not moment:
        return ""
    seconds = ((now or timezone.now()) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


@register.filter
def days_until(moment, now=None):
    if not moment:
        return None
    return int(((moment - (now or timezone.now())).total_seconds()) // 86400)
