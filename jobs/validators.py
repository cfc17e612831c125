"""Upload validators: plain functions that look at submitted bytes.

Each takes the uploaded data (``bytes``) and returns ``None`` when it is
acceptable, or raises ``UploadInvalid`` with a message a submitter can act on.
``VALIDATORS`` maps the names used in job configuration to the functions;
``seq`` is the seed service's name for ``fasta``.
"""
import csv
import io
import json
import re

__all__ = ["VALIDATORS", "UploadInvalid", "validate"]


class UploadInvalid(ValueError):
    """The uploaded data is not what the job expects."""


def none(data):
    """Accept anything."""


def fasta(data):
    """A FASTA file, or a bare sequence of residue letters."""
    text = _decode(data, "FASTA").strip()
    if not text:
        raise UploadInvalid("expected a FASTA sequence but the upload is empty")
    lines = text.splitlines()
    if not lines[0].startswith(">"):
        lines = [">"] + lines
    residues = 0
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if line.startswith(">") or line.startswith(";") or not line:
            continue
        if not re.fullmatch(r"[A-Za-z*\-.]+", line):
            raise UploadInvalid(f"expected FASTA but line {number} holds characters that are not residues: {line[:40]!r}")
        residues += len(line)
    if residues == 0:
        raise UploadInvalid("expected a FASTA sequence but found no residues")


_PDB_RECORDS = ("ATOM  ", "HETATM", "HEADER", "MODEL ", "REMARK", "CRYST1", "TITLE ", "COMPND", "SEQRES", "EXPDTA")


def pdb(data):
    """A PDB coordinate file: at least one ATOM or HETATM record."""
    text = _decode(data, "PDB")
    lines = text.splitlines()
    if not any(line.startswith(("ATOM", "HETATM")) for line in lines):
        raise UploadInvalid("expected a PDB file but found no ATOM or HETATM records")
    for number, line in enumerate(lines, start=1):
        if line.strip() and not line.startswith(_PDB_RECORDS) and not re.match(r"^[A-Z][A-Z0-9 ]{0,5}(\s|$)", line):
            raise UploadInvalid(f"expected a PDB file but line {number} is not a PDB record: {line[:40]!r}")


def png(data):
    """A PNG image (by its signature)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise UploadInvalid("expected a PNG image but the upload does not start with the PNG signature")


def gif(data):
    """A GIF image (by its signature)."""
    if not data.startswith((b"GIF87a", b"GIF89a")):
        raise UploadInvalid("expected a GIF image but the upload does not start with GIF87a or GIF89a")


def jpeg(data):
    """A JPEG image (by its start-of-image marker)."""
    if not data.startswith(b"\xff\xd8\xff"):
        raise UploadInvalid("expected a JPEG image but the upload does not start with a JPEG marker")


def json_(data):
    """A JSON document."""
    try:
        json.loads(_decode(data, "JSON"))
    except json.JSONDecodeError as error:
        raise UploadInvalid(f"expected JSON but it does not parse: {error.msg} at line {error.lineno} column {error.colno}") from None


def csv_(data):
    """A CSV table whose rows all have the header's number of columns."""
    text = _decode(data, "CSV")
    rows = list(csv.reader(io.StringIO(text)))
    rows = [row for row in rows if row]
    if not rows:
        raise UploadInvalid("expected CSV but the upload is empty")
    width = len(rows[0])
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise UploadInvalid(f"expected CSV with {width} columns but row {number} has {len(row)}")


def _decode(data, what):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UploadInvalid(f"expected {what} text but the upload is not UTF-8") from None


VALIDATORS = {
    "none": none,
    "fasta": fasta,
    "seq": fasta,
    "pdb": pdb,
    "png": png,
    "gif": gif,
    "jpeg": jpeg,
    "json": json_,
    "csv": csv_,
}


def validate(name, data):
    """Run the validator called ``name`` on ``data``.

    Raises:
        UploadInvalid: the data is rejected; the message says why.
        KeyError: no validator has that name.
    """
    VALIDATORS[name](data)
