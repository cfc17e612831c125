"""Find value placeholders written where the quoting Sluice gives them does not hold.

The values a submitter controls (``$P1``…, ``$VALUE``, ``$ITEM``, ``$INDEX``)
reach a step already quoted: one ``shlex.quote``d word in a shell line, one
double-quoted string literal in Python or R code (``templating.code_literal``).
Written bare (``sort $P1 $I1``, ``v = $P1``) that holds. Written inside the
author's own quotes (``echo '$P1'``, ``v = '$P1'``) the value's quotes end the
author's string instead, and a value such as ``'; __import__('os').system('…'); '``
becomes code. The same goes for a placeholder glued to a name in code
(``f$P1`` in Python makes an f-string of the value; ``r$P1`` in R a raw
string), and in a shell line for comments, here-documents and arithmetic.

``problems(code, language)`` returns a message for each such placeholder, so
``Task.clean()`` can refuse the executable when it is saved (and the executor
when an older one runs). Python is read with the standard ``tokenize`` module
(and must then compile, so that the server and the step's interpreter agree
where strings end); R and bash with small scanners of their quoting. File
placeholders (``$I1``, ``$O1``, ``$ID``, ``$TMP``) are built from ids and
validated endings, and may stand inside quotes, as in ``open("$O1", "w")``.

Pure functions, no Django.
"""
import functools
import io
import re
import tokenize

from . import templating

__all__ = ["LANGUAGES", "arithmetic_safe", "problems"]

_MARKER = "__sluice_value_{}__"
_EXAMPLE = {"python": "v = {text}", "r": "v <- {text}"}
LANGUAGES = {"localhost": "shell", "container": "shell", "python": "python", "r": "r", "slurm": "shell"}


def problems(code, language, fixed=None):
    """Return messages for value placeholders ``code`` writes where their quoting does not hold.

    ``language`` is "shell", "python" or "r" (or a queue type's execution
    behaviour: "localhost" is "shell"); any other language has no such rule.
    ``fixed`` names the placeholders (``{"$P2"}``) whose values are numbers
    (or booleans, which render as the author's flag). Only they may stand in
    shell arithmetic; None means the types are not known yet, and arithmetic
    is then left for a later check. ``$INDEX`` is always a number.
    """
    return list(_problems(code or "", LANGUAGES.get(language, language), None if fixed is None else frozenset({*fixed, "$INDEX"})))


@functools.lru_cache(maxsize=256)
def _problems(code, language, fixed):
    # Cached: every start of a step checks its task's executable again (a few ms for long Python).
    found = templating.placeholders(code)
    if not any(placeholder.literal for placeholder in found):
        return ()
    if language == "python":
        return tuple(_python_problems(code, found))
    if language == "r":
        return tuple(_r_problems(code, found))
    if language == "shell":
        return tuple(_shell_problems(code, found, fixed))
    return ()


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def arithmetic_safe(value):
    """May bash arithmetic see ``value``: no value, a number, a bool, or text that is a number (``12``, ``-0.5``)?"""
    if value is None or value == "" or isinstance(value, (bool, int, float)):
        return True
    return isinstance(value, str) and _NUMBER.fullmatch(value) is not None


_LITERAL = "(Sluice writes the value as a quoted string literal)"


def _quoted(text, line, language):
    example = _EXAMPLE[language].format(text=text)
    return f"{text} is inside a string on line {line}; write the bare placeholder, e.g. {example} {_LITERAL}"


def _glued(text, line, language):
    example = _EXAMPLE[language].format(text=text)
    return (
        f"{text} is joined to the name next to it on line {line}; "
        f"write the bare placeholder as a word of its own, e.g. {example} {_LITERAL}"
    )


def _substitute(code, found, replace):
    """Return ``code`` with each placeholder replaced by ``replace(placeholder, number)``."""
    parts, offset = [], 0
    for number, placeholder in enumerate(found):
        parts += [code[offset:placeholder.start], replace(placeholder, number)]
        offset = placeholder.end
    return "".join(parts) + code[offset:]


# --- Python ------------------------------------------------------------------------------------


def _python_problems(code, found):
    """Tokenize the code with each value placeholder as a name of its own, and see where they land.

    A file placeholder becomes a plain name too: it is bare text in code.
    """
    markers = {_MARKER.format(number): placeholder.text for number, placeholder in enumerate(found) if placeholder.literal}
    marked = _substitute(code, found, lambda placeholder, number: _MARKER.format(number) if placeholder.literal else "_")
    messages = []
    try:
        for token, inside in _python_tokens(marked):
            if token.type == tokenize.COMMENT:
                continue  # a literal has no line break, so it cannot end a comment
            for marker, text in markers.items():
                at = token.string.find(marker)
                if at < 0:
                    continue
                line = token.start[0] + token.string.count("\n", 0, at)
                if inside:
                    messages.append(_quoted(text, line, "python"))
                elif token.string != marker:
                    messages.append(_glued(text, line, "python"))
    except (tokenize.TokenError, SyntaxError):
        pass  # compiling says what is wrong, and where
    return messages or _python_syntax(code, found)


def _python_tokens(code):
    """Yield ``(token, inside_a_string)``; f-strings count as strings, replacement fields included."""
    depth = 0  # open f-strings (Python 3.12 and later yield their parts as tokens of their own)
    start, end = getattr(tokenize, "FSTRING_START", None), getattr(tokenize, "FSTRING_END", None)
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == start:
            depth += 1
        elif token.type == end:
            depth -= 1
        yield token, depth > 0 or token.type in (tokenize.STRING, start, end)


def _python_syntax(code, found):
    """The code as it will run, with every value a string literal, must compile.

    Otherwise this Python and the step's could disagree on where a string ends
    (an unterminated quote, or an f-string only a newer Python reads).
    """
    stand_in = _substitute(code, found, lambda placeholder, number: '("")' if placeholder.literal else "_")
    try:
        compile(stand_in, "<executable>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        where = f" on line {error.lineno}" if getattr(error, "lineno", None) else ""
        reason = getattr(error, "msg", None) or str(error)
        uses = "code that uses $P, $VALUE, $ITEM or $INDEX must be, to check where they stand"
        return [f"the code is not valid Python{where} ({reason}); {uses}"]
    return []


# --- R -----------------------------------------------------------------------------------------

_R_NAME = "._"
_R_BRACKETS = {"(": ")", "[": "]", "{": "}"}


def _r_problems(code, found):
    regions = _r_regions(code)
    messages = []
    for placeholder in (placeholder for placeholder in found if placeholder.literal):
        line = code.count("\n", 0, placeholder.start) + 1
        kind = next((kind for begin, finish, kind in regions if begin <= placeholder.start < finish), None)
        if kind == "string":
            messages.append(_quoted(placeholder.text, line, "r"))
        elif kind is None and (_r_name_char(code, placeholder.start - 1) or _r_name_char(code, placeholder.end)):
            messages.append(_glued(placeholder.text, line, "r"))
    return messages


def _r_name_char(code, index):
    return 0 <= index < len(code) and (code[index].isalnum() or code[index] in _R_NAME)


def _r_regions(code):
    """Return ``[(start, end, kind)]`` of R's quoted text and comments, in order.

    ``kind`` is "string" for strings, raw strings, backquoted names and
    ``%op%`` operators (an unterminated one runs to the end of the code), or
    "comment". A quote inside a comment opens nothing, and a ``#`` inside a
    string starts no comment.
    """
    regions, index = [], 0
    while index < len(code):
        char = code[index]
        if char == "#":
            end = _line_end(code, index)
            regions.append((index, end, "comment"))
        elif char in "rR" and not _r_name_char(code, index - 1) and _r_raw_opening(code, index):
            end = _r_raw_end(code, index)
            regions.append((index, end, "string"))
        elif char in "'\"`":
            end = _r_quoted_end(code, index)
            regions.append((index, end, "string"))
        elif char == "%":
            close = code.find("%", index + 1, _line_end(code, index))
            end = _line_end(code, index) if close < 0 else close + 1
            regions.append((index, end, "string"))
        elif _r_name_char(code, index):
            end = index
            while _r_name_char(code, end):  # a whole name, so an 'r' inside one opens no raw string
                end += 1
        else:
            end = index + 1
        index = end
    return regions


def _line_end(code, index):
    newline = code.find("\n", index)
    return len(code) if newline < 0 else newline


def _r_quoted_end(code, index):
    """The offset after the string (or backquoted name) opening at ``index``; backslash escapes the next character."""
    return _escaped_end(code, index + 1, code[index])


def _escaped_end(code, index, quote):
    """The offset after the ``quote`` that closes a string whose text starts at ``index`` (a backslash escapes the next character)."""
    while index < len(code):
        if code[index] == "\\":
            index += 2
        elif code[index] == quote:
            return index + 1
        else:
            index += 1
    return len(code)


def _r_raw_opening(code, index):
    """Does ``r"(``, ``R'[``, ``r"---{``… open a raw string at ``index``?"""
    quote = index + 1
    if quote >= len(code) or code[quote] not in "'\"":
        return False
    dashes = quote + 1
    while dashes < len(code) and code[dashes] == "-":
        dashes += 1
    return dashes < len(code) and code[dashes] in _R_BRACKETS


def _r_raw_end(code, index):
    """The offset after the raw string opening at ``index``: its bracket, dashes and quote, closed in reverse."""
    quote = code[index + 1]
    dashes = index + 2
    while code[dashes] == "-":
        dashes += 1
    closing = _R_BRACKETS[code[dashes]] + "-" * (dashes - index - 2) + quote
    found = code.find(closing, dashes + 1)
    return len(code) if found < 0 else found + len(closing)


# --- Shell -------------------------------------------------------------------------------------
#
# A command line runs as ``bash -c``, and each value placeholder becomes one word quoted by
# ``shlex.quote``. That quoting holds only where bash reads words: inside the author's quotes
# or backquotes the value's own quotes toggle the author's (``echo '$P1'`` with ``a; touch x``
# runs ``touch x``); a comment or a here-document ends at the value's line break; and bash
# evaluates the text of ``$(( ))``, ``(( ))``, ``[[ ]]`` and ``${ }`` as arithmetic, where
# ``a[$(touch x)]`` runs a command, quotes or not. Everywhere else (at the top level, inside
# ``$( )``, braces and parentheses) a placeholder is a word of its own.

_WORD_START = " \t\n;&|()"
# Where bash evaluates text as arithmetic: a[$(…)] there runs a command, quoted or not.
_ARITHMETIC = {"arithmetic $(( ))", "arithmetic (( ))", "arithmetic $[ ]", "a [[ ]] test", "a ${…} expansion"}


def _shell_problems(code, found, fixed):
    watched = {placeholder.start: placeholder for placeholder in found if placeholder.literal}
    contexts = _ShellScanner(code, set(watched)).scan()
    messages = []
    for start, placeholder in watched.items():
        where, text, line = contexts.get(start, "plain"), placeholder.text, code.count("\n", 0, start) + 1
        if where == "plain" or (where in _ARITHMETIC and (fixed is None or text in fixed)):
            continue
        if where in _ARITHMETIC:
            messages.append(
                f"{text} is inside {where} on line {line}, where bash evaluates text as arithmetic and a value such as "
                f"a[$(…)] runs a command; give the parameter type int or float, or use the value outside it"
            )
        else:
            messages.append(
                f"{text} is inside {where} on line {line}, where its quoting does not hold; write it bare as a word of its own, "
                f"e.g. grep {text} $I1 (Sluice quotes the value for the shell)"
            )
    return messages


class _ShellScanner:
    """Walk a bash command line and note the context of each watched offset.

    Each ``_read_*`` method reads one construct from ``index`` and returns the
    offset after it. Contexts that nest a command (``$( )``) are read as the
    top level is; everything else is one opaque region.
    """

    def __init__(self, code, watched):
        self.code, self.watched, self.contexts, self.heredocs = code, watched, {}, []

    def scan(self):
        self._read_commands(0, closer=None)
        return self.contexts

    def _mark(self, start, end, where):
        for offset in self.watched:
            if start <= offset < end:
                self.contexts.setdefault(offset, where)

    def _at(self, index, text):
        return self.code.startswith(text, index)

    def _word_start(self, index):
        return index == 0 or self.code[index - 1] in _WORD_START

    def _read_commands(self, index, closer):
        """Read commands up to ``closer`` (")" for a ``$( )``, None for the whole line)."""
        code, depth = self.code, 0
        while index < len(code):
            char = code[index]
            if char == "\\":
                self._mark(index, index + 2, "a backslash escape")
                index += 2
            elif char == "\n":
                index = self._read_heredoc_bodies(index + 1)
            elif char == "#" and self._word_start(index):
                end = _line_end(code, index)
                self._mark(index, end, "a comment")
                index = end
            elif self._at(index, "<<<"):
                index += 3
            elif self._at(index, "<<"):
                index = self._read_heredoc_word(index + 2)
            elif self._at(index, "((") and self._word_start(index):
                index = self._read_region(index, self._arithmetic_end(index + 2), "arithmetic (( ))")
            elif self._at(index, "[[") and self._word_start(index) and code[index + 2:index + 3].isspace():
                index = self._read_region(index, self._test_end(index + 2), "a [[ ]] test")
            elif closer and char == "(":
                depth += 1
                index += 1
            elif closer and char == ")":
                if depth == 0:
                    return index + 1
                depth -= 1
                index += 1
            else:
                index = self._read_quoting(index) or index + 1
        return index

    def _read_quoting(self, index):
        """Read a quoted or expanded construct starting at ``index``; None when none starts there."""
        code = self.code
        if code[index] == "'":
            close = code.find("'", index + 1)
            return self._read_region(index, len(code) if close < 0 else close + 1, "single quotes")
        if self._at(index, "$'"):
            return self._read_region(index, _escaped_end(self.code, index + 2, "'"), "$'…' quotes")
        if code[index] == '"' or self._at(index, '$"'):
            return self._read_double(index + (2 if code[index] == "$" else 1))
        if code[index] == "`":
            return self._read_region(index, _escaped_end(self.code, index + 1, "`"), "backquotes")
        if self._at(index, "$(("):
            return self._read_region(index, self._arithmetic_end(index + 3), "arithmetic $(( ))")
        if self._at(index, "$["):
            close = code.find("]", index + 2)
            return self._read_region(index, len(code) if close < 0 else close + 1, "arithmetic $[ ]")
        if self._at(index, "$("):
            return self._read_commands(index + 2, closer=")")
        if self._at(index, "${"):
            return self._read_region(index, self._brace_end(index + 2), "a ${…} expansion")
        return None

    def _read_region(self, start, end, where):
        self._mark(start, end, where)
        return end

    def _read_double(self, index):
        """Read the rest of a double-quoted string; a ``$( )`` inside is read as commands."""
        code = self.code
        while index < len(code):
            if code[index] == '"':
                return index + 1
            if code[index] == "\\":
                self._mark(index, index + 2, "double quotes")
                index += 2
            elif code[index] in "$`" and code[index:index + 2] not in ('$"', "$'"):
                index = self._read_quoting(index) or self._read_region(index, index + 1, "double quotes")
            else:
                index = self._read_region(index, index + 1, "double quotes")
        return index

    def _arithmetic_end(self, index):
        """The offset after the ``))`` that closes an arithmetic expression opened before ``index``."""
        code, depth = self.code, 0
        while index < len(code):
            if code[index] == "(":
                depth += 1
            elif code[index] == ")":
                if depth == 0 and code[index + 1:index + 2] == ")":
                    return index + 2
                depth = max(depth - 1, 0)
            index += 1
        return len(code)

    def _test_end(self, index):
        """The offset after the ``]]`` word that closes a ``[[`` test."""
        code = self.code
        while index < len(code):
            if self._at(index, "]]") and code[index - 1].isspace():
                return index + 2
            index += 1
        return len(code)

    def _brace_end(self, index):
        code, depth = self.code, 0
        while index < len(code):
            if code[index] == "\\":
                index += 1
            elif code[index] == "{":
                depth += 1
            elif code[index] == "}":
                if depth == 0:
                    return index + 1
                depth -= 1
            index += 1
        return len(code)

    def _read_heredoc_word(self, index):
        """Read the delimiter after ``<<`` (or ``<<-``); its body starts after the line ends."""
        code = self.code
        strip_tabs = self._at(index, "-")
        index += 1 if strip_tabs else 0
        while index < len(code) and code[index] in " \t":
            index += 1
        start = index
        while index < len(code) and not code[index].isspace() and code[index] not in ";&|<>()":
            if code[index] in "'\"":
                close = code.find(code[index], index + 1)
                index = len(code) if close < 0 else close + 1
            else:
                index += 1
        delimiter = "".join(char for char in code[start:index] if char not in "'\"\\")
        if delimiter:
            self.heredocs.append((delimiter, strip_tabs))
        return index

    def _read_heredoc_bodies(self, index):
        """Read the bodies of the here-documents opened on the line that just ended."""
        code = self.code
        for delimiter, strip_tabs in self.heredocs:
            start = index
            while index < len(code):
                end = _line_end(code, index)
                line = code[index:end]
                index = end + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
            self._mark(start, min(index, len(code)), "a here-document")
        self.heredocs = []
        return min(index, len(code))
