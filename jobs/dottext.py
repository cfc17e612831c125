"""What a diagram hands Graphviz: plain-text labels and checked colours. Pure, no Django.

Every attribute of a drawn graph that carries text from outside — task, step
and job names from the catalogue, labels and colours a running step sends on
its control channel — goes through this module, so that Graphviz only ever
sees it as plain text:

- never an HTML-like label (``<...>`` in DOT; these may carry links and
  would be drawn as ``<a href>`` in SVG),
- never an escString sequence (``\\N``, ``\\G``, ``\\l`` … are Graphviz's
  own placeholders and line ends),
- never a character entity (Graphviz decodes ``&amp;``, ``&#60;`` and the
  like in labels).

Shapes are always ``box``, never ``record``, so record syntax (``{|}``)
needs no escaping. Colours are a name (``purple``, ``grey50``) or
``#rrggbb`` / ``#rrggbbaa``; the control channel refuses anything else, and
drawing leaves out a colour that is not one (rows written before colours
were checked).
"""
import re

from graphviz import nohtml

__all__ = ["COLOUR_RULE", "identifier", "is_colour", "text", "tooltip"]

COLOUR = re.compile(r"#[0-9A-Fa-f]{6}(?:[0-9A-Fa-f]{2})?|[A-Za-z]{3,32}[0-9]{0,3}")
COLOUR_RULE = "a colour name such as 'purple' or 'grey50', or '#rrggbb' or '#rrggbbaa'"
# What XML 1.0 or UTF-8 cannot hold (it would make the SVG unreadable, or the drawing fail):
# control characters other than line breaks and tabs, lone surrogates, the two non-characters.
UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def is_colour(value):
    """Is ``value`` a colour a diagram may use? (A name, ``#rrggbb`` or ``#rrggbbaa``; not a list, scheme or HSV.)"""
    return isinstance(value, str) and COLOUR.fullmatch(value) is not None


def text(value):
    """Return ``value`` as DOT text that Graphviz draws exactly as written, "\\n" as a line break.

    Characters that no SVG can hold are left out; a tab is drawn as a space.
    """
    value = UNPRINTABLE.sub("", str(value).replace("\r\n", "\n").replace("\t", " "))
    # Backslashes first, then the line breaks this adds; "&" so that no entity is decoded.
    value = value.replace("\\", "\\\\").replace("&", "&amp;").replace("\n", "\\n")
    return nohtml(value)


def tooltip(value):
    """Return ``value`` as a DOT tooltip that Graphviz shows exactly as written (on one line).

    Graphviz reads a tooltip's backslashes twice (once as escapes, once for
    ``\\N`` and the like), where a label's are read once: so each is written four times.
    """
    value = UNPRINTABLE.sub("", str(value).replace("\t", " ").replace("\n", " "))
    return nohtml(value.replace("\\", "\\" * 4).replace("&", "&amp;"))


def identifier(value):
    """Return ``value`` as a DOT node or graph id: a string, never HTML-like.

    Its backslashes are doubled so that none can escape the closing quote: the
    id stays unique and the same in every statement, and is never drawn as a label.
    """
    return nohtml(UNPRINTABLE.sub("", str(value)).replace("\\", "\\\\").replace("\n", " "))
