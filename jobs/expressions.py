"""A small, safe expression language for ``when`` conditions and QC checks. Never ``eval``.

Expressions are parsed with Python's ``ast`` and only these forms are allowed:
literals (numbers, strings, true/false/null, lists), names, dotted names
(``check.reads``: a step's output, or a key of a JSON object), ``a[0]`` /
``a['k']`` subscripts with literal indices, comparisons (``== != < <= > >=
in``, ``not in``), ``and or not``, unary minus and the arithmetic operators
``+ - * /``. Anything else (calls, attributes of Python objects, lambdas,
comprehensions) is refused when the expression is parsed.
"""
import ast
import operator

__all__ = ["WORDS", "ExpressionError", "evaluate", "parse"]

_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
WORDS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
MAX_LENGTH = 500


class ExpressionError(ValueError):
    """The expression is not allowed, or cannot be evaluated."""


def parse(text):
    """Parse and check ``text``; return the tree.

    Raises:
        ExpressionError: syntax errors and forbidden forms, naming them.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ExpressionError(f"{text!r} is not a valid expression: {error.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.Compare, ast.Name,
                                 ast.Load, ast.Constant, ast.Attribute, ast.Subscript, ast.List, ast.Tuple, ast.BinOp,
                                 *_COMPARE, *_ARITHMETIC)):
            raise ExpressionError(f"{text!r} uses {type(node).__name__}, which conditions may not use")
        if isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Constant):
            raise ExpressionError(f"{text!r}: subscripts must be literal, like a[0] or a['key']")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"{text!r}: names may not start with '_'")
    return tree


def evaluate(text, context):
    """Evaluate ``text`` with names looked up in the ``context`` mapping (nested dicts for dotted names).

    Raises:
        ExpressionError: a name is unknown, or the operation fails (e.g. comparing a number with a string).
    """
    tree = parse(text)
    try:
        return _eval(tree.body, context)
    except ExpressionError:
        raise
    except (TypeError, ZeroDivisionError, KeyError, IndexError) as error:
        raise ExpressionError(f"{text!r} cannot be evaluated: {error}") from None


def _eval(node, context):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in context:
            return context[node.id]
        if node.id in WORDS:
            return WORDS[node.id]
        raise ExpressionError(f"unknown name '{node.id}'; known: {', '.join(sorted(context)) or 'none'}")
    if isinstance(node, ast.Attribute):
        value = _eval(node.value, context)
        if not isinstance(value, dict) or node.attr not in value:
            raise ExpressionError(f"no '{node.attr}' in {_name(node.value)}")
        return value[node.attr]
    if isinstance(node, ast.Subscript):
        return _eval(node.value, context)[node.slice.value]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(item, context) for item in node.elts]
    if isinstance(node, ast.BoolOp):
        values = (_eval(item, context) for item in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, context)
        return (not value) if isinstance(node.op, ast.Not) else -value
    if isinstance(node, ast.BinOp):
        return _ARITHMETIC[type(node.op)](_eval(node.left, context), _eval(node.right, context))
    if isinstance(node, ast.Compare):
        left = _eval(node.left, context)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, context)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    raise ExpressionError(f"cannot evaluate {type(node).__name__}")


def _name(node):
    return ast.unparse(node)
