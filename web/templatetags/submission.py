"""Filters of the submission and step pages."""
from django import template
from django.utils import timezone

from .sluice import seconds_text

register = template.Library()


@register.filter
def first_line(text, limit=120):
    """The first line of ``text``, at most ``limit`` characters, with "…" when anything was left out."""
    text = (text or "").strip()
    line = text.split("\n", 1)[0]
    if len(line) > limit:
        return line[:limit - 1] + "…"
    return line + (" …" if len(line) < len(text) else "")


@register.filter
def span(delta):
    """A timedelta as "4.2 s", "3 min 4 s" or "2 h 5 min"; "—" for None."""
    if delta is None:
        return "—"
    return seconds_text(max(delta.total_seconds(), 0))


@register.filter
def elapsed(row):
    """How long a node or group ran (so far)."""
    if row.started_at is None:
        return None
    return (row.finished_at or timezone.now()) - row.started_at


@register.filter
def is_group(row):
    return not hasattr(row, "pk")


@register.filter
def get(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def last_lines(text, count=5):
    """The last ``count`` non-empty lines of ``text``: where a step's error output usually says what went wrong."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return "\n".join(lines[-count:])
