from django import template

register = template.Library()


@register.filter
def duration(node):
    """A node's run time as "1.2 s", "3 min 4 s" or "—"."""
    if not (node.started_at and node.finished_at):
        return "—"
    seconds = (node.finished_at - node.started_at).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
