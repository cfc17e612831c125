"""Promise definitions: what a workflow promises about how its graph may grow.

A promise is a plain mapping with a ``kind`` and the fields that kind needs,
as written in job YAML under ``promises:`` or sent on the control channel.
This module only parses and validates them; the orchestrator checks graph
mutations against them.
"""
import re

__all__ = ["KINDS", "PromiseError", "alternatives_pattern", "parse_promise"]


class PromiseError(ValueError):
    """A promise is malformed."""


def _names(value, field):
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise PromiseError(f"'{field}' must be a non-empty list of names")
    return value


def _count(value, field):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PromiseError(f"'{field}' must be a positive integer")
    return value


def _pattern(value, field):
    if not isinstance(value, str) or not value:
        raise PromiseError(f"'{field}' must be a regular expression")
    try:
        re.compile(value)
    except re.error as error:
        raise PromiseError(f"'{field}' is not a valid regular expression: {error}") from None
    return value


def _name(value, field):
    if not isinstance(value, str) or not value:
        raise PromiseError(f"'{field}' must be a node key")
    return value


def _pairs(value, field):
    if not isinstance(value, list) or not value or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(name, str) and name for name in pair) for pair in value
    ):
        raise PromiseError(f"'{field}' must be a non-empty list of [from_task, to_task] pairs")
    return value


def _patterns(value, field):
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise PromiseError(f"'{field}' must be a non-empty list of regular expressions")
    for item in value:
        _pattern(item or "(?:)", field)  # "" stands for "nothing between": a direct edge
    return value


def alternatives_pattern(alternatives):
    """One regular expression that matches what any of a component's alternatives matches."""
    return "|".join(f"(?:{item})" for item in alternatives)


# kind -> {field: parser}
KINDS = {
    "no_new_nodes": {},
    "no_new_edges": {},
    "only_tasks": {"tasks": _names},
    "no_edges_from": {"nodes": _names},
    "no_edges_to": {"nodes": _names},
    "max_nodes": {"value": _count},
    "shape": {"pattern": _pattern},
    "only_edges": {"edges": _pairs},
    "component": {"from": _name, "to": _name, "alternatives": _patterns},
    "fixed_style": {"nodes": _names},
}


def parse_promise(data):
    """Return a validated promise dict ``{"kind": .., <fields>}``.

    Raises:
        PromiseError: unknown kind, missing or extra fields, or a bad value.
    """
    if not isinstance(data, dict):
        raise PromiseError("a promise must be a mapping with a 'kind'")
    kind = data.get("kind")
    if kind not in KINDS:
        raise PromiseError(f"unknown promise kind {kind!r}; expected one of {', '.join(KINDS)}")
    fields = KINDS[kind]
    extra = set(data) - set(fields) - {"kind"}
    if extra:
        raise PromiseError(f"promise '{kind}' does not take {', '.join(sorted(extra))}")
    result = {"kind": kind}
    for name, parser in fields.items():
        if name not in data:
            raise PromiseError(f"promise '{kind}' needs '{name}'")
        result[name] = parser(data[name], name)
    return result
