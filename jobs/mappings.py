"""Sub-job parameter mappings: a step's ``params``, from the parent's values to the child job's parameters. Pure functions.

A step whose task runs another job maps values to that job's parameters by
REST name: ``params: {count_n: "$INDEX + 1", count_word: "$ITEM", count_mode: "'fast'"}``.
Text is an expression of the safe language (``jobs.expressions``), never
code: it may read the parent submission's parameters by REST name, the
outputs of earlier steps as ``<step key>.<output name>``, and, in a foreach
instance, ``$ITEM`` and ``$INDEX``. A number or true/false stands for itself.
The value is typed and checked later by the child job's own parameter rules,
as a submitted value would be.
"""
import ast

from . import expressions

__all__ = ["PLACEHOLDERS", "MappingError", "evaluate", "names", "shape_problem", "translate"]

# $ITEM and $INDEX are not Python names; they are read under names no step key or REST name can have.
PLACEHOLDERS = {"$ITEM": "_ITEM", "$INDEX": "_INDEX"}
SCALARS = (str, int, float, bool)


class MappingError(ValueError):
    """A mapped value cannot be worked out; the message names the child parameter."""


def shape_problem(params):
    """What is wrong with the form of a step's ``params`` (a mapping of names to expressions or values), or None."""
    if not isinstance(params, dict):
        return 'give a mapping of the child job\'s parameters (REST names) to values, e.g. {"count_n": "$INDEX + 1"}'
    for name, value in params.items():
        if not isinstance(value, SCALARS):
            return f"'{name}': give an expression as text, a number or true/false, not {type(value).__name__}"
        if isinstance(value, str):
            try:
                expressions.parse(translate(value))
            except expressions.ExpressionError as error:
                return f"'{name}': {_shown(error)}"
    return None


def translate(text):
    """Return ``text`` with ``$ITEM`` and ``$INDEX`` outside quoted strings replaced by the names they are read as."""
    out, quote, index = [], None, 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                out.append(text[index:index + 2])
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "$":
            placeholder = next((p for p in PLACEHOLDERS if text.startswith(p, index) and not _word(text, index + len(p))), None)
            if placeholder:
                out.append(PLACEHOLDERS[placeholder])
                index += len(placeholder)
                continue
        out.append(char)
        index += 1
    return "".join(out)


def names(value):
    """The names an entry reads (``split.count`` reads ``split``; ``$ITEM`` reads ``$ITEM``); none for a plain value."""
    if not isinstance(value, str):
        return set()
    try:
        tree = expressions.parse(translate(value))
    except expressions.ExpressionError:  # reported by shape_problem; nothing is read
        return set()
    read = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    back = {name: placeholder for placeholder, name in PLACEHOLDERS.items()}
    return {back.get(name, name) for name in read} - set(expressions.WORDS)


def evaluate(params, context, item=None, index=None):
    """Return ``{child REST name: value}`` for a step's ``params``; a null value is left out, so the child's default holds.

    ``context`` maps the parent's parameter REST names and step keys (to
    their outputs); ``item`` and ``index`` are a foreach instance's, or None.

    Raises:
        MappingError: an entry cannot be evaluated, or gives a list or a mapping.
    """
    names_in = dict(context)
    if index is not None:
        names_in.update({PLACEHOLDERS["$ITEM"]: item, PLACEHOLDERS["$INDEX"]: index})
    values = {}
    for name, entry in params.items():
        if isinstance(entry, str):
            try:
                value = expressions.evaluate(translate(entry), names_in)
            except expressions.ExpressionError as error:
                raise MappingError(f"params: '{name}': {_shown(error)}") from None
        else:
            value = entry
        if value is None:
            continue
        if not isinstance(value, SCALARS):
            kind = "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else type(value).__name__
            raise MappingError(f"params: '{name}': {entry!r} gives {kind}; a parameter takes text, a number or true/false")
        values[name] = value
    return values


def _word(text, index):
    """Does an identifier character stand at ``index`` (so ``$ITEMS`` is not ``$ITEM``)?"""
    return index < len(text) and (text[index].isalnum() or text[index] == "_")


def _shown(error):
    """The expression error in the author's words: ``$ITEM``, not the name it is read as."""
    text = str(error)
    for placeholder, name in PLACEHOLDERS.items():
        text = text.replace(name, placeholder)
    return text
