from django import template

from execution import sandbox

register = template.Library()


@register.simple_tag
def sandbox_warning():
    """The operators' warning when steps are not (fully) isolated, "" when they are."""
    plan = sandbox.current()
    if plan.mode == "require" and not plan.isolated:
        return sandbox.refusal(plan)
    return plan.warning()
