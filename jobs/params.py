"""Parse submitted parameter values by type. Pure functions, no Django."""
import math

__all__ = ["TYPES", "ParameterValueError", "coerce"]

TYPES = ("string", "int", "float", "bool", "choice")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ParameterValueError(ValueError):
    """A submitted value does not fit its parameter's type."""


def coerce(kind, raw, choices=()):
    """Return ``raw`` converted to the parameter type ``kind``.

    Raises:
        ParameterValueError: with a message that shows the offending value.
    """
    if kind == "string":
        return raw if isinstance(raw, str) else str(raw)
    if kind == "int":
        if isinstance(raw, bool):
            raise ParameterValueError(f"must be an integer, got {raw!r}")
        try:
            return int(str(raw).strip())
        except ValueError:
            raise ParameterValueError(f"must be an integer, got {raw!r}") from None
    if kind == "float":
        try:
            number = float(str(raw).strip())
        except ValueError:
            raise ParameterValueError(f"must be a number, got {raw!r}") from None
        if not math.isfinite(number):  # "nan", "inf", "1e999": no JSON column (nor a command line) means them
            raise ParameterValueError(f"must be a finite number, got {raw!r}")
        return number
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ParameterValueError(f"must be true or false, got {raw!r}")
    if kind == "choice":
        text = str(raw)
        if text not in choices:
            raise ParameterValueError(f"must be one of {', '.join(choices)}; got {raw!r}")
        return text
    raise ParameterValueError(f"has unknown type {kind!r}")
