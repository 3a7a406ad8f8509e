"""Filters for the pages of deletion jobs."""

from django import template

register = template.Library()


@register.filter
def duration(seconds):
    """A time still to go, roughly: "under a minute", "about 12 min", "about 3 h 20 min", "about 2 days"."""
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"about {hours} h {minutes} min" if minutes else f"about {hours} h"
    return f"about {round(hours / 24)} days"


@register.filter
def per_second(rate):
    """A rate of threads per second, with the precision it deserves."""
    if rate is None:
        return ""
    if rate >= 10:
        return f"{rate:,.0f}"
    if rate >= 1:
        return f"{rate:.1f}"
    return f"{rate:.2f}"
