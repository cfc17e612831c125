"""Upload validators: plain functions that look at submitted bytes.

Each takes the uploaded data (``bytes``) and returns ``None`` when it is
acceptable, or raises ``UploadInvalid`` with a message a submitter can act on.
``VALIDATORS`` maps the names used in job configuration to the functions;
``seq`` is the seed service's name for ``fasta``. ``aa_seq`` and
``aa_pdb_file`` keep the rules of Analytics Automated's ``seq`` and
``pdb_file``, which ``importaa`` selects for the jobs it imports.
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


# Analytics Automated's rules (its validators.py): a protein sequence of 30 to 1500 residues,
# not nucleotides, in the 20 amino acids plus X and '-'; an alignment's sequences all of one length.
AA_SEQ_MIN, AA_SEQ_MAX = 30, 1500
_AA_RESIDUES = re.compile(r"[ACDEFGHIKLMNPQRSTVWYX-]*", re.IGNORECASE)
_NUCLEOTIDES = set("ATCGUNatcgun")


def aa_seq(data):
    """A protein sequence or alignment, by Analytics Automated's ``seq`` rules.

    One header at most: the lines that are not headers (``>``) or comments
    (``;``) make one sequence. More headers: an alignment, whose sequences
    must each pass and all be as long as the first.
    """
    text = _decode(data, "a protein sequence in FASTA")
    lines = text.splitlines()
    if text.count(">") <= 1:
        residues = "".join(line for line in lines if not line.startswith((">", ";")))
        if not residues:
            raise UploadInvalid("expected a protein sequence but the upload holds none")
        _aa_check_sequence(residues, "the sequence")
        return
    sequences = []
    for number, line in enumerate(lines, start=1):
        if line.startswith(">"):
            sequences.append("")
        elif not sequences:
            raise UploadInvalid(f"expected an alignment in FASTA but line {number} comes before the first '>' header")
        else:
            sequences[-1] += line
    # A_A compares the alignment's total residues with the first sequence's length times the count.
    total = sum(len(residues) for residues in sequences)
    if total != len(sequences[0]) * len(sequences):
        raise UploadInvalid(
            f"expected an alignment of equally long sequences but its {len(sequences)} sequences hold {total} residues, "
            f"not {len(sequences)} x {len(sequences[0])} (the first one's length)"
        )
    for number, residues in enumerate(sequences, start=1):
        _aa_check_sequence(residues, f"sequence {number}")


def _aa_check_sequence(residues, which):
    if not AA_SEQ_MIN <= len(residues) <= AA_SEQ_MAX:
        raise UploadInvalid(f"expected {AA_SEQ_MIN} to {AA_SEQ_MAX} residues but {which} has {len(residues)}")
    if sum(residue in _NUCLEOTIDES for residue in residues) / len(residues) >= 0.95:
        raise UploadInvalid(f"expected a protein sequence but {which} looks like nucleotides (95% or more A, C, G, T, U, N)")
    if not _AA_RESIDUES.fullmatch(residues):
        bad = sorted(set(re.sub(r"[ACDEFGHIKLMNPQRSTVWYX-]", "", residues, flags=re.IGNORECASE)))
        raise UploadInvalid(f"expected amino-acid letters (ACDEFGHIKLMNPQRSTVWY, X, '-') but {which} holds {''.join(bad)[:20]!r}")


def aa_pdb_file(data):
    """A PDB file by Analytics Automated's ``pdb_file`` rule: some ``ATOM <number>`` anywhere, in any case."""
    if not re.search(r"ATOM\s+\d+", _decode(data, "PDB"), re.IGNORECASE):
        raise UploadInvalid("expected a PDB file but found no 'ATOM <serial number>' record")


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
    "aa_seq": aa_seq,
    "aa_pdb_file": aa_pdb_file,
}


def validate(name, data):
    """Run the validator called ``name`` on ``data``.

    Raises:
        UploadInvalid: the data is rejected; the message says why.
        KeyError: no validator has that name.
    """
    VALIDATORS[name](data)
