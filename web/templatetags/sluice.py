from django import template

register = template.Library()


@register.filter
def duration(node):
    """A node's run time as "1.2 s", "3 min 4 s" or "—"."""
    if not (node.started_at and node.finished_at):
        return "—"
    return seconds_text((node.finished_at - node.started_at).total_seconds())


def seconds_text(seconds):
    """Seconds as "4.2 s", "3 min 4 s" or "2 h 5 min"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
