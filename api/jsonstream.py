"""Read a JSON document from a stream in pieces, refusing what Sluice cannot store or should not hold.

``json.loads`` needs the whole body in memory (as bytes, then as text, then as
the values it makes), recurses once per level of nesting (a body nested a
thousand levels deep raises ``RecursionError``), accepts ``NaN`` and
``Infinity`` (which PostgreSQL's ``jsonb`` refuses) and strings with ``\\u0000``
or lone surrogates (which no text column can hold). This reader has none of
those failings:

- it reads the stream 64 KiB at a time and keeps an explicit stack, so nesting
  costs a list entry, and ``max_depth`` is checked as each level opens;
- it accepts finite numbers only;
- every string and key is checked for NUL and lone surrogates as it is decoded;
- the top-level members named in ``spool`` are handed, piece by piece, to a
  writer (a file, say) instead of being held as one string;
- everything else it holds is counted against ``max_held`` characters.

Strings are decoded by the C scanner of the ``json`` module, a run of whole
escapes at a time, so a large string costs about what ``json.loads`` costs.
Pure: no Django.
"""
import codecs
import re
from json.decoder import scanstring

__all__ = ["Refused", "TooLarge", "parse"]

CHUNK = 64 * 1024
# Python's int() refuses longer digit strings (sys.get_int_max_str_digits); so does this reader, by name.
MAX_DIGITS = 4300

_WHITESPACE = re.compile(r"[ \t\n\r]*")
# A run of whole string units: plain characters, simple escapes and \uXXXX escapes, a high
# surrogate only with its low half, so that neither an escape nor a pair is cut in two.
_UNITS = re.compile(
    r'(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u(?:[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|(?![dD][89abAB])[0-9a-fA-F]{4}))*+'
)
_HIGH_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = {"true": True, "false": False, "null": None}
_NOT_FINITE = ("NaN", "Infinity", "-Infinity")
_OPEN = object()  # what _start returns when it opened an object or an array


class Refused(ValueError):
    """The body is not JSON Sluice accepts.

    ``path`` is where: a tuple of member names and list indices from the top,
    empty for the document as a whole (or a syntax error).
    """

    def __init__(self, message, path=()):
        super().__init__(message)
        self.message = message
        self.path = tuple(path)


class TooLarge(Refused):
    """The body holds more than ``max_held`` characters outside the spooled members."""


def parse(stream, *, max_depth, max_held, spool=None):
    """Read one JSON value from ``stream`` (with ``read(n)`` giving UTF-8 bytes) and return it.

    ``spool`` maps top-level member names to a factory: when the document is
    an object and such a member's value is a string, ``factory()`` is called
    for a writer, each decoded piece of the string goes to ``writer.write(text)``
    and the member's value is what ``writer.close()`` returns.

    Raises:
        Refused: a syntax error, nesting deeper than ``max_depth``, a number
            that is not finite, a string or key with NUL or a lone surrogate.
        TooLarge: more than ``max_held`` characters held besides spooled members.
    """
    return _Reader(stream, max_depth, max_held, spool or {}).document()


def where(path):
    """``path`` as people write it: ``params.list[2]``; "the top level" when empty."""
    text = ""
    for part in path[:8]:
        text += f"[{part}]" if isinstance(part, int) else (f".{printable(part)}" if text else printable(part))
    return (text + ("…" if len(path) > 8 else "")) or "the top level"


def printable(text):
    """``text`` with NUL and lone surrogates written as ``\\uXXXX``, so that a message can show it."""
    return re.sub("[\x00\ud800-\udfff]", lambda match: f"\\u{ord(match.group()):04x}", text)


class _Reader:
    def __init__(self, stream, max_depth, max_held, spool):
        self.stream, self.max_depth, self.max_held, self.spool = stream, max_depth, max_held, spool
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text, self.pos, self.eof = "", 0, False
        self.base, self.lines, self.line_start = 0, 0, 0  # what was dropped from the front of the buffer
        self.held = 0
        self.stack = []  # [container, member name] frames; the name is None in lists

    # --- the document -------------------------------------------------------------------

    def document(self):
        value = self._start()
        while True:
            if value is _OPEN:
                value = self._first_item()
            else:
                if not self.stack:
                    break
                value = self._next_item(value)
        self._skip_whitespace()
        if self._peek():
            raise self._syntax("Extra data")
        return value

    def _first_item(self):
        """Just after ``{`` or ``[``: the container itself when it is empty, else its first value."""
        container = self.stack[-1][0]
        self._skip_whitespace()
        if self._peek() == ("}" if isinstance(container, dict) else "]"):
            self.pos += 1
            self.stack.pop()
            return container
        if isinstance(container, dict):
            self.stack[-1][1] = self._key()
        return self._start()

    def _next_item(self, value):
        """Store a finished ``value`` in the innermost container; return the next value, or the container once closed."""
        frame = self.stack[-1]
        container = frame[0]
        if isinstance(container, dict):
            container[frame[1]] = value
        else:
            container.append(value)
        self._skip_whitespace()
        char = self._peek()
        self.pos += 1
        if char == ("}" if isinstance(container, dict) else "]"):
            self.stack.pop()
            return container
        if char != ",":
            self.pos -= 1
            raise self._syntax("Expecting ',' delimiter")
        if isinstance(container, dict):
            self._skip_whitespace()
            frame[1] = self._key()
        return self._start()

    def _start(self):
        """Read a scalar value and return it, or open a container and return _OPEN."""
        self._skip_whitespace()
        char = self._peek()
        if char in ("{", "["):
            if len(self.stack) >= self.max_depth:
                raise Refused(f"the JSON is nested more than {self.max_depth} levels deep (at {where(self._path())})", self._path())
            self.pos += 1
            self._hold(8)
            self.stack.append([{} if char == "{" else [], None])
            return _OPEN
        if char == '"':
            self.pos += 1
            factory = self._spooled()
            if factory is not None:
                writer = factory()
                self._string(writer.write)
                return writer.close()
            pieces = []
            self._string(lambda piece: (self._hold(len(piece)), pieces.append(piece)))
            return "".join(pieces)
        return self._scalar()

    def _spooled(self):
        if len(self.stack) == 1 and isinstance(self.stack[0][0], dict):
            return self.spool.get(self.stack[0][1])
        return None

    def _key(self):
        if self._peek() != '"':
            raise self._syntax("Expecting property name enclosed in double quotes")
        self.pos += 1
        pieces = []
        self._string(lambda piece: (self._hold(len(piece)), pieces.append(piece)), key=True)
        key = "".join(pieces)
        self._check_text(key, self._path(self.stack[:-1]) + (key,), key=True)
        self._skip_whitespace()
        if self._peek() != ":":
            raise self._syntax("Expecting ':' delimiter")
        self.pos += 1
        return key

    # --- scalars --------------------------------------------------------------------------

    def _string(self, sink, key=False):
        """Decode a string whose opening quote was just read, sending it to ``sink`` in pieces."""
        start = self._offset() - 1
        while True:
            match = _UNITS.match(self.text, self.pos)
            units = match.group()
            if units:
                if "\\" in units:  # only an escape can make NUL or a lone surrogate here
                    units = scanstring(units + '"', 0)[0]
                    if not key:  # a key is checked whole, to name it
                        self._check_text(units)
                sink(units)
            self.pos = match.end()
            if self.pos < len(self.text):
                char = self.text[self.pos]
                if char == '"':
                    self.pos += 1
                    return
                if char == "\\" and len(self.text) - self.pos < 12 and self._more():
                    continue  # an escape cut by the end of the buffer: read on
                raise self._bad_in_string(char, key)
            if not self._more():
                raise self._syntax("Unterminated string starting at", start)

    def _bad_in_string(self, char, key):
        path = self._path(self.stack[:-1]) if key else self._path()
        what = f"a key of the object at {where(path)}" if key else f"the string at {where(path)}"
        if char == "\x00":
            return self._nul(what, path)
        if char != "\\":
            return self._syntax("Invalid control character at")
        if _HIGH_SURROGATE_ESCAPE.match(self.text, self.pos):
            return self._not_text(what, path)
        return self._syntax("Invalid \\escape")

    def _check_text(self, text, path=None, key=False):
        if "\x00" not in text and not _SURROGATE.search(text):
            return
        path = self._path() if path is None else path
        what = f"the key '{printable(text)}'" if key else f"the string at {where(path)}"
        raise self._nul(what, path) if "\x00" in text else self._not_text(what, path)

    def _nul(self, what, path):
        return Refused(f"{what} contains NUL (\\u0000), which cannot be stored as text", path)

    def _not_text(self, what, path):
        return Refused(f"{what} is not valid Unicode text (it has a lone surrogate such as \\ud800)", path)

    def _scalar(self):
        while len(self.text) - self.pos < 10 and self._more():
            pass
        for name, value in _LITERALS.items():
            if self.text.startswith(name, self.pos):
                self.pos += len(name)
                return value
        for name in _NOT_FINITE:
            if self.text.startswith(name, self.pos):
                raise Refused(f"the number at {where(self._path())} is {name}; only finite numbers are accepted", self._path())
        return self._number()

    def _number(self):
        match = _NUMBER.match(self.text, self.pos)
        while match and match.end() == len(self.text) and match.end() - self.pos <= MAX_DIGITS and self._more():
            match = _NUMBER.match(self.text, self.pos)
        if match is None:
            raise self._syntax("Expecting value")
        token = match.group()
        if len(token) > MAX_DIGITS:
            raise Refused(f"the number at {where(self._path())} has more than {MAX_DIGITS} digits", self._path())
        self.pos = match.end()
        self._hold(len(token) + 8)
        if match.group(1) is None and match.group(2) is None:
            return int(token)
        number = float(token)
        if number in (float("inf"), float("-inf")):
            raise Refused(f"the number at {where(self._path())} is too large for a 64-bit float; only finite numbers are accepted", self._path())
        return number

    # --- the buffer -----------------------------------------------------------------------

    def _path(self, frames=None):
        """Where the value being read sits: the member names and indices of the open containers."""
        frames = self.stack if frames is None else frames
        return tuple(len(container) if isinstance(container, list) else name for container, name in frames if name is not None or isinstance(container, list))

    def _hold(self, size):
        self.held += size
        if self.held > self.max_held:
            raise TooLarge(f"the JSON body holds more than {self.max_held} characters besides the upload", self._path())

    def _skip_whitespace(self):
        while True:
            self.pos = _WHITESPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text) or not self._more():
                return

    def _peek(self):
        if self.pos >= len(self.text) and not self._more():
            return ""
        return self.text[self.pos]

    def _more(self):
        """Read the next piece of the stream into the buffer; False at its end."""
        if self.eof:
            return False
        data = self.stream.read(CHUNK)
        try:
            text = self.decoder.decode(data or b"", final=not data)
        except UnicodeDecodeError as error:
            raise Refused(f"the body is not UTF-8 text (byte {self.base + self.pos + error.start} cannot be decoded)") from None
        if not data:
            self.eof = True
        dropped = self.text[:self.pos]
        newline = dropped.rfind("\n")
        if newline >= 0:
            self.lines += dropped.count("\n")
            self.line_start = self.base + newline + 1
        self.base += self.pos
        self.text, self.pos = self.text[self.pos:] + text, 0
        return bool(text) or not self.eof

    def _offset(self):
        return self.base + self.pos

    def _syntax(self, message, at=None):
        """A syntax error worded as ``json`` words it: ``Expecting value: line 1 column 9 (char 8)``."""
        at = self._offset() if at is None else at
        before = self.text[:max(0, at - self.base)]
        line = self.lines + before.count("\n") + 1
        newline = before.rfind("\n")
        column = len(before) - newline if newline >= 0 else at - self.line_start + 1
        return Refused(f"{message}: line {line} column {column} (char {at})")
