"""Parse submitted parameter values by type. Pure functions, no Django."""
import math

__all__ = ["TYPES", "LeadingDash", "ParameterValueError", "coerce"]

TYPES = ("string", "int", "float", "bool", "choice")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ParameterValueError(ValueError):
    """A submitted value does not fit its parameter's type."""


class LeadingDash(ParameterValueError):
    """A string value begins with '-' and its parameter does not allow that."""


def coerce(kind, raw, choices=(), allow_dash=False):
    """Return ``raw`` converted to the parameter type ``kind``.

    A string that begins with '-' (after any spaces) is refused unless
    ``allow_dash``: a program given it as an argument could read it as an
    option, e.g. ``sort $P1 $I1`` with ``--output=/elsewhere``. Numbers keep
    their sign, and choices are the author's own words.

    Raises:
        ParameterValueError: with a message that shows the offending value.
    """
    if kind == "string":
        text = raw if isinstance(raw, str) else str(raw)
        if not allow_dash and text.lstrip().startswith("-"):
            raise LeadingDash(f"must not begin with '-' (a program could take it for an option), got {_shown(text)}")
        return text
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


def _shown(text, limit=80):
    """The value as a message shows it: quoted, and cut if long."""
    return repr(text if len(text) <= limit else text[:limit] + "…")
