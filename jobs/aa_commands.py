"""Translate an Analytics Automated (A_A) task's executable into a Sluice one.

Plain data in, plain data out, no database. A_A's interpolation is its
``commandRunner`` library's: each ``$P<n>``, ``$I<n>``, ``$O<n>``, ``$VALUE``,
``$ID`` and ``$TMP`` is replaced wherever it stands, glued to other text or not;
older versions had ``$INPUT``, ``$OUTPUT``, ``$FLAGS`` and ``$OPTIONS`` and wrote
the parameters after the program's name. Sluice's placeholders are read by
``jobs.templating``. What means the same is kept, what has a faithful
translation is translated, and the rest is returned as a problem: the importer
then reports it and keeps the task's jobs from running.
"""
import re
import shlex
from dataclasses import dataclass, field

__all__ = ["ParameterOrder", "Translation", "translate"]

SHELL_BEHAVIOURS = ("localhost", "slurm")
# Characters a shell reads as syntax; A_A passed a GridEngine command to DRMAA as plain words.
SHELL_SYNTAX = re.compile(r"[|&;<>()`'\"*?\[\]{}~#\\]")
# A_A's placeholders, found in one pass so that nothing written is read again.
AA_PLACEHOLDER = re.compile(r"\$(INPUT|OUTPUT|FLAGS|OPTIONS|VALUE|TMP/\$ID(?=/|\s|$|[;|&)])|TMP|ID|[PIO]\d+)")
WORD_CHAR = re.compile(r"[A-Za-z0-9_]")
LEGACY_MARKER = re.compile(r"\$(FLAGS|OPTIONS)(?![A-Za-z0-9_])")


@dataclass
class ParameterOrder:
    """Which Sluice ``$P`` numbers the task's A_A parameters got."""

    flags: list = field(default_factory=list)  # bool-valued ones
    options: list = field(default_factory=list)  # the others
    value: list = field(default_factory=list)  # A_A's $VALUE parameter (a flag holding VALUE)
    count: int = 0  # how many $P numbers A_A itself knows


@dataclass
class Translation:
    """The Sluice executable, what was changed, and what could not be carried."""

    text: str
    changes: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    gathered: list = field(default_factory=list)  # (file name after $ID, out-glob ending) A_A gathered by ending


def translate(executable, behaviour, legacy, order, in_endings, out_endings, root):
    """Return the Translation of an A_A ``executable`` run by a Sluice ``behaviour``.

    ``legacy``: the dump is from an older A_A. ``root``: the A_A backend's root path.
    """
    if behaviour not in SHELL_BEHAVIOURS:
        # Code runs as written: a compat "aa" job defines A_A's I1.., O1.., P1.. for it (execution/aa_compat.py).
        return Translation(executable)
    return _Translator(executable, legacy, order, in_endings, out_endings, root).run(behaviour)


class _Translator:
    """One pass over one shell executable."""

    def __init__(self, executable, legacy, order, in_endings, out_endings, root):
        self.executable, self.legacy, self.order, self.root = executable, legacy, order, root
        self.endings = {"I": in_endings, "O": out_endings}
        # Older A_A placed the parameters itself; a line with $P placeholders places them where they stand.
        self.places_parameters = bool(legacy or LEGACY_MARKER.search(executable)) and not re.search(r"\$P\d", executable)
        self.placed = set()
        self.result = Translation(executable)

    def run(self, behaviour):
        if behaviour == "slurm":
            syntax = sorted(set(SHELL_SYNTAX.findall(self.executable)))
            if syntax:
                self.result.problems.append(
                    f"A_A ran a GridEngine command through DRMAA as plain words, Sluice's slurm runs it as a shell line, which reads {' '.join(syntax)} as syntax"
                )
        text = AA_PLACEHOLDER.sub(self.replace, self.executable)
        if self.places_parameters:
            text = self.write_after_program(text)
        self.result.text = text
        self.result.changes = list(dict.fromkeys(self.result.changes))
        return self.result

    def replace(self, match):
        token = match.group(1)
        after = self.executable[match.end():match.end() + 1]
        if token in ("INPUT", "OUTPUT"):
            return self.file(token, after)
        if token in ("FLAGS", "OPTIONS"):
            return self.parameter_list(token)
        if token == "VALUE":
            return self.value(after)
        if token.startswith("TMP"):
            return self.tmp(token)
        if token == "ID":
            return self.file_id(match, after)
        return self.numbered(token)

    def change(self, text):
        self.result.changes.append(text)

    def problem(self, text):
        self.result.problems.append(text)

    def file(self, token, after):
        """``$INPUT``/``$OUTPUT``: ``<ID>.<first ending without its dot>``, which is $I1/$O1 when the ending has its dot."""
        kind = "I" if token == "INPUT" else "O"
        endings = self.endings[kind]
        if not endings or not endings[0].startswith("."):
            self.problem(f"${token} names <ID>.<ending>, but the first {'in' if kind == 'I' else 'out'}_glob ending does not begin with '.'")
            return f"${token}"
        return self.glued_safe(f"${token}", f"${kind}1", after)

    def parameter_list(self, token):
        if not self.places_parameters:
            self.change(f"${token} removed (A_A left it to the shell, where it is empty)")
            return ""
        numbers = self.order.flags if token == "FLAGS" else self.order.options
        self.placed.update(numbers)
        written = " ".join(f"$P{number}" for number in numbers)
        self.change(f"${token} -> {written or 'nothing (no such parameters)'}")
        return written

    def value(self, after):
        if self.order.value and not self.legacy:
            return self.glued_safe("$VALUE", f"$P{self.order.value[0]}", after)
        self.problem(
            "it uses $VALUE, which A_A fills from a parameter whose flag is VALUE; the task has none (A_A refuses to run it), and Sluice's $VALUE is the upload"
        )
        return "$VALUE"

    def tmp(self, token):
        if token != "TMP":
            self.change("$TMP/$ID -> $TMP (the step's working directory)")
            return "$TMP"
        root = self.root.rstrip("/")
        if not root.startswith("/"):
            self.problem("it uses $TMP, which A_A fills with the backend's root path, and the backend has no absolute root path")
            return "$TMP"
        self.change(f"$TMP -> {root} (A_A's $TMP is the backend's root path; Sluice's $TMP is the step's working directory)")
        return shlex.quote(root)

    def file_id(self, match, after):
        """``$ID``: the same in Sluice, unless text is glued to it, which Sluice would read as another name."""
        if not WORD_CHAR.match(after):
            return "$ID"
        if _single_quoted(self.executable, match.start()):
            self.problem(f"$ID{after}... stands glued to text inside single quotes, where Sluice cannot write the id")
            return "$ID"
        self.change(f"$ID{after}... -> ${{SLUICE_ID}}{after}..., as Sluice reads $ID only when no letter, digit or '_' follows")
        written = re.match(r"[^\s;|&)]*", self.executable[match.end():]).group(0)
        self.result.gathered.extend((written, ending) for ending in self.endings["O"] if written.endswith(ending))
        return "${SLUICE_ID}"

    def numbered(self, token):
        """``$P<n>``, ``$I<n>``, ``$O<n>``: kept; beyond what the task has, A_A left them to the shell, which reads them as empty."""
        kind, number = token[0], int(token[1:])
        limit = self.order.count if kind == "P" else len(self.endings[kind])
        if number <= limit:
            return f"${token}"
        if len(token) > 2:
            self.problem(f"${token}: A_A reads it as ${token[:2]} followed by {token[2:]}, Sluice as ${token}")
            return f"${token}"
        self.change(f"${token} removed (there is no such {'parameter' if kind == 'P' else 'ending'}; A_A left it to the shell, where it is empty)")
        return ""

    def glued_safe(self, old, new, after):
        """Write ``new`` for ``old``, unless a digit follows, which Sluice would read as part of ``new``."""
        if after.isdigit():
            self.problem(f"{old} is followed by the digit {after}, which Sluice would read as part of {new}")
            return old
        self.change(f"{old} -> {new}")
        return new

    def write_after_program(self, text):
        """Older A_A wrote the parameters it had not placed right after the command's first word."""
        rest = [number for number in range(1, self.order.count + 1) if number not in self.placed]
        if not rest:
            return text
        first = re.match(r"\s*\S+", text)
        at = first.end() if first else len(text)
        written = " ".join(f"$P{number}" for number in rest)
        self.change(f"parameters written after the program's name, as older A_A did: {written}")
        return f"{text[:at]} {written}{text[at:]}"


def _single_quoted(text, position):
    """Is ``position`` of shell ``text`` inside single quotes?"""
    state, index = None, 0
    while index < position:
        char = text[index]
        if char == "\\" and state != "'":
            index += 1
        elif state is None and char in "'\"":
            state = char
        elif char == state:
            state = None
        index += 1
    return state == "'"
