"""A JSON parser that refuses what cannot be stored as text."""
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class TextJSONParser(JSONParser):
    """JSON, minus strings with lone surrogates (``"\\ud800"``).

    Python's ``json`` accepts such escapes, but the result is not Unicode text:
    it cannot be encoded as UTF-8, written to the database or put in a
    response. Refuse the body at once, naming where the bad string is.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        where = _bad_string(data, "")
        if where is not None:
            raise ParseError(f"JSON parse error - the string at {where or 'the top level'} is not valid Unicode text (it has a lone surrogate such as \\ud800)")
        return data


def _bad_string(value, path):
    """The path of the first string in ``value`` (keys too) that is not valid text, or None."""
    if isinstance(value, str):
        return None if _is_text(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if not _is_text(key):
                return path or "the top level"
            found = _bad_string(item, here)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _bad_string(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _is_text(value):
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
