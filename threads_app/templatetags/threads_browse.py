"""Filters for showing threads and their messages."""

import json

from django import template
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from .. import kinds, transcripts
from ..models import Thread

register = template.Library()


@register.filter
def message_html(text):
    """Message text, escaped, with fenced code blocks as <pre><code> and line breaks kept."""
    return transcripts.message_html(text or "")


@register.simple_tag
def cited_text(part) -> dict:
    """A text part as the thread page shows it: {"html", "footnotes", "annotations"} (see
    transcripts.cited_html)."""
    html, footnotes, annotations = transcripts.cited_html(part.text or "", part.annotations)
    return {"html": html, "footnotes": footnotes, "annotations": annotations}


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


@register.simple_tag
def local_time(moment, seconds=False):
    """A moment as `<time>` in the local date and time ("2026-11-23 20:05", with `seconds` ":41"). Written
    in Python: Django's date filter twice per history line was most of the thread page's rendering."""
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}">{}</time>',
        local.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"),
    )


@register.simple_tag
def age_time(moment, now, label):
    """A moment as a list's cell shows it: its age, in a <time> whose title is the label and the local
    date and time. Written in Python: a page of rows asked Django's date filters for it 200 times."""
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}" title="{} {}">{}</time>',
        local.isoformat(),
        label,
        local.strftime("%Y-%m-%d %H:%M"),
        age(moment, now),
    )


BAR_ITEM = (
    '<li><a href="{}{}" class="bar-label" title="{}">{}</a>'
    '<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label="{}: {}">'
    '<rect x="0" y="0" height="10" width="{}"></rect></svg><span class="bar-value">{}</span></li>'
)


@register.simple_tag
def bar_items(bars, list_url):
    """The items of a bar chart (`overview.Bar`s), each labelled with a link to its threads in the list.
    Written in Python: the chart of owners has a row per person, and Django's variable lookups for them
    were the overview's largest cost."""
    return format_html_join(
        "\n",
        BAR_ITEM,
        (
            (
                list_url,
                bar.url,
                bar.label,
                bar.label,
                bar.label,
                bar.value,
                f"{bar.share:.1f}",
                f"{bar.value:,}",
            )
            for bar in bars
        ),
    )


@register.filter
def middle(text, length=16):
    """Text cut in its middle to `length` characters, keeping its start (an ID's prefix) and its last four
    characters, which is how people compare IDs: "thread_abcd…wxyz"."""
    text, length = str(text or ""), int(length)
    if len(text) <= length:
        return text
    return text[: length - 5] + "…" + text[-4:]


KIND_SHORT = {"assistants_thread": "Asst", "conversation": "Conv", "chatkit_thread": "ChatKit"}


@register.filter
def kind_short(kind):
    """A kind in the few letters of a list's badge; the full name goes in its title."""
    return KIND_SHORT.get(kind, kind)


@register.filter
def days_until(moment, now=None):
    if not moment:
        return None
    return int(((moment - (now or timezone.now())).total_seconds()) // 86400)


@register.simple_tag
def removal_words(removal, now=None) -> dict:
    """What removal.html says of a `retention.Removal`: {"tone": "warn" | "muted", "text": the sentence the
    thread page shows, "short": the few words a list row has room for}. One place for both, so the row and
    the page never disagree."""
    days = days_until(removal.at, now)
    window = removal.window_days
    if removal.exempt:
        return {
            "tone": "muted",
            "text": f"Kept: exempt from the {window}-day retention policy ({removal.exempt})",
            "short": f"Kept: {removal.exempt}",
        }
    if removal.how == "sunset":
        date = removal.at.strftime("%Y-%m-%d")
        if days < 0:
            return {
                "tone": "warn",
                "text": f"Removed with the Assistants API’s sunset on {date}",
                "short": f"Gone at the API’s sunset, {date}",
            }
        return {
            "tone": "warn",
            "text": f"Goes with the Assistants API’s sunset on {date}",
            "short": f"Goes at the API’s sunset, {date}",
        }
    if removal.at is None:
        if removal.how == "expires":
            text = f"Activity unknown: expires {window} days after its last activity"
        else:
            text = f"Activity unknown: the {window}-day retention window counts from its last activity"
        return {"tone": "muted", "text": text, "short": "Activity unknown"}
    in_days = f"in about {days} day{'' if days == 1 else 's'}"
    # The short words keep a count and its unit on one line ("~49 d"), however narrow the column.
    if removal.how == "expires":
        if days >= 0:
            text, short = f"Expires {in_days} without activity", f"Expires in ~{days}\u00a0d"
        else:
            text, short = f"Past the API’s {window}-day expiry", "Past its expiry"
        return {"tone": "warn" if days < 8 else "muted", "text": text, "short": short}
    if removal.how == "deleted":
        if days >= 0:
            text, short = (
                f"Deleted by the retention policy {in_days} without activity",
                f"Deleted in ~{days}\u00a0d",
            )
        else:
            text = f"Past the {window}-day retention window: the next sweep deletes it"
            short = "Deleted by the next sweep"
        return {"tone": "warn" if days < 8 else "muted", "text": text, "short": short}
    if days >= 0:
        text, short = f"Reaches the {window}-day retention window {in_days}", f"Flagged in ~{days}\u00a0d"
    else:
        text, short = f"Past the {window}-day retention window (flagged)", "Flagged: past the window"
    return {"tone": "warn" if days < 0 else "muted", "text": text, "short": short}


@register.simple_tag
def not_found_words(thread, now=None) -> str:
    """Why the API may answer 404 for `thread`, in the sentence the thread page shows under that answer:
    only what applies to its kind and its history. A thread Threadsite deleted is said to be so; the API's
    expiry or sunset is named only when the thread is past it; another project only while no answer of the
    API for this credential ever named the thread."""
    now = now or timezone.now()
    if thread.status == Thread.Status.DELETED:
        change = (
            thread.status_changes.filter(new_status=Thread.Status.DELETED)
            .select_related("changed_by")
            .order_by("-changed_at")
            .first()
        )
        if change is None:
            return "Threadsite recorded it as deleted."
        by = f" by {change.changed_by.get_username()}" if change.changed_by else ""
        reason = f" ({change.reason})" if change.reason else ""
        return f"Threadsite deleted it on {change.changed_at:%Y-%m-%d}{by}{reason}."
    adapter = kinds.adapter_for(thread)
    reasons = ["deleted outside Threadsite"]
    expiry = adapter.expiry(thread)
    if expiry is not None and expiry <= now:
        if adapter.sunset is not None and expiry == adapter.sunset:
            reasons.append(f"removed with the {adapter.label}s’ sunset on {expiry:%Y-%m-%d}")
        else:
            days = adapter.expires_after.days
            reasons.append(f"expired on {expiry:%Y-%m-%d}, {days} days after its last activity")
    if thread.remote_created_at is None and not thread.newest_entry_id:
        reasons.append(f"created under another project than {thread.credential.scope_label}")
    listed = ", ".join(reasons[:-1]) + " or " + reasons[-1] if len(reasons) > 1 else reasons[0]
    return f"It may have been {listed}."
