"""Render a task's executable line: the seed service's placeholder language.

Pure functions over plain data, no Django. The placeholders are:

``$I1, $I2, ..``  the file for the 1st, 2nd.. ending of the task's ``in_glob``
``$O1, $O2, ..``  the file for the 1st, 2nd.. ending of the task's ``out_glob``
``$P1, $P2, ..``  the 1st, 2nd.. parameter, rendered with its flag rules
``$VALUE``        the submitted input data as one quoted word (small inputs)
``$TMP``          the node's working directory
``$ID``           the file-name id; files are named ``<ID><ending>``
``$ITEM``         the item of a ``foreach`` instance, quoted
``$INDEX``        the 0-based index of a ``foreach`` instance

Anything else that looks like ``$NAME`` (``$HOME``, ``${X}``, ``$1``) is left for
the shell. Every value a submitter controls is passed through ``shlex.quote``;
the executable itself and parameter flags are written by administrators.

Code tasks (Python, R) are rendered with ``language="code"``: file names,
``$ID`` and ``$TMP`` are written bare (they are built from ids and validated
endings), and ``$P``/``$VALUE``/``$ITEM``/``$INDEX`` become double-quoted
string literals that both Python and R read (``code_literal``), so
``n <- as.integer($P1)`` works and no submitted value can become code. That
holds only where the literal stands on its own: ``jobs.quoting`` refuses code
that puts one of these placeholders inside a string of its own.
"""
import json
import re
import shlex
from dataclasses import dataclass, field

__all__ = [
    "ParamSpec",
    "Placeholder",
    "RenderContext",
    "TemplateError",
    "placeholders",
    "render",
    "render_parameter",
    "split_endings",
    "as_text",
    "code_literal",
    "LITERAL_KINDS",
]

# $I<n>, $O<n>, $P<n>, or one of the named words not followed by a name character.
_PATTERN = re.compile(r"\$(?:(?P<kind>[IOP])(?P<index>[1-9][0-9]*)|(?P<word>VALUE|TMP|ID|ITEM|INDEX)(?![A-Za-z0-9_]))")


# Placeholders whose values a submitter controls: in code they become string literals.
LITERAL_KINDS = frozenset({"P", "VALUE", "ITEM", "INDEX"})


class TemplateError(ValueError):
    """A placeholder names something the task does not define."""

    def __init__(self, message, placeholder):
        super().__init__(message)
        self.placeholder = placeholder


@dataclass(frozen=True)
class Placeholder:
    text: str  # as written, e.g. "$I2"
    kind: str  # "I", "O", "P" or the word
    index: int = 0  # 1-based for I/O/P
    start: int = field(default=0, compare=False)  # where it stands in the executable: executable[start:end] == text
    end: int = field(default=0, compare=False)

    @property
    def literal(self):
        """Is this replaced by a string literal in code (a value a submitter controls)?"""
        return self.kind in LITERAL_KINDS


@dataclass(frozen=True)
class ParamSpec:
    """How one parameter is written on the command line."""

    flag: str = ""
    bool_valued: bool = False
    spacing: bool = True
    switchless: bool = False


@dataclass
class RenderContext:
    file_id: str
    in_endings: list = field(default_factory=list)
    out_endings: list = field(default_factory=list)
    params: list = field(default_factory=list)  # [(ParamSpec, value)], in $P order
    value: str = ""
    tmp: str = ""
    item: object = ""
    index: object = ""
    in_names: list = None  # per in-glob ending: a file name, or a list of names (a gathering "*" ending)


def split_endings(glob):
    """Split a comma-separated glob field (``".fa, .txt"``) into endings."""
    return [part.strip() for part in (glob or "").split(",") if part.strip()]


def placeholders(executable):
    """Return the placeholders used in an executable line, in order of appearance."""
    found = []
    for match in _PATTERN.finditer(executable or ""):
        if match["kind"]:
            found.append(Placeholder(match[0], match["kind"], int(match["index"]), match.start(), match.end()))
        else:
            found.append(Placeholder(match[0], match["word"], 0, match.start(), match.end()))
    return found


def render_parameter(spec, value):
    """Render one parameter as shell text, with the value quoted.

    A bool-valued parameter is its bare flag when true and nothing when false.
    A missing value (None or "") renders as nothing. A switchless parameter is
    its value alone; otherwise flag and value, with a space when ``spacing``.
    """
    if spec.bool_valued:
        return spec.flag if _truthy(value) else ""
    if value is None or value == "":
        return ""
    quoted = shlex.quote(as_text(value))
    if spec.switchless or not spec.flag:
        return quoted
    return f"{spec.flag} {quoted}" if spec.spacing else f"{spec.flag}{quoted}"


def render(executable, context, language="shell"):
    """Return the executable with every placeholder replaced.

    ``language`` is "shell" for command lines or "code" for Python and R.

    Raises:
        TemplateError: a placeholder's index is beyond what the task defines.
    """

    if language not in ("shell", "code"):
        raise ValueError(f"language must be 'shell' or 'code', got {language!r}")
    name = shlex.quote if language == "shell" else str
    literal = shlex.quote if language == "shell" else code_literal

    def replace(match):
        if match["word"] == "ID":
            return name(context.file_id)
        if match["word"] == "TMP":
            return name(context.tmp)
        if match["word"] == "VALUE":
            return literal(as_text(context.value))
        if match["word"] == "ITEM":
            return literal(as_text(context.item))
        if match["word"] == "INDEX":
            return literal(as_text(context.index))
        index = int(match["index"]) - 1
        if match["kind"] == "P":
            if index >= len(context.params):
                raise TemplateError(f"{match[0]} names parameter {index + 1} but the task has {len(context.params)}", match[0])
            spec, value = context.params[index]
            return render_parameter(spec, value) if language == "shell" else literal(as_text(value))
        endings = context.in_endings if match["kind"] == "I" else context.out_endings
        if index >= len(endings):
            glob = "in_glob" if match["kind"] == "I" else "out_glob"
            raise TemplateError(f"{match[0]} names ending {index + 1} of {glob} but it has {len(endings)}", match[0])
        if match["kind"] == "I" and context.in_names is not None:
            names = context.in_names[index]
            return " ".join(name(item) for item in names) if isinstance(names, list) else name(names)
        return name(f"{context.file_id}{endings[index]}")

    return _PATTERN.sub(replace, executable)


def as_text(value):
    """A value as the text a command or code sees (booleans as true/false, lists and mappings as JSON)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


# Escapes that Python and R read alike; any other character outside printable ASCII is written \u or \U.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def code_literal(text):
    """Return ``text`` as a double-quoted string literal that Python and R both read back exactly.

    The literal is plain ASCII, so the script's own encoding and the step's
    locale cannot change it. Characters beyond the Basic Multilingual Plane
    are written ``\\UXXXXXXXX`` (which both languages read as one character),
    not as the UTF-16 surrogate pair JSON would use: Python would read a pair
    as two lone surrogates, which cannot be printed or encoded.
    """
    parts = ['"']
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            parts.append(_ESCAPES[char])
        elif 0x20 <= code < 0x7F:
            parts.append(char)
        elif code <= 0xFFFF:
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(f"\\U{code:08x}")
    parts.append('"')
    return "".join(parts)


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)
