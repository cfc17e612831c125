"""Request-body parsers that refuse, while they read, what cannot be stored or should not be held.

Every parser of the API refuses NUL in any name or value (PostgreSQL cannot
store it in text) and names the field it found it in. JSON is read by
``api.jsonstream`` straight from the request, never as one ``request.body``:
nesting is limited (SLUICE_JSON_MAX_DEPTH), numbers must be finite, and a
large ``input_data`` string goes to a temporary file as it is read, so that a
100 MB submission costs kilobytes of memory, as a multipart upload does.
"""
from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser, DataAndFiles, FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer

from . import jsonstream

__all__ = ["BodyInvalid", "BodyTooLarge", "TextFormParser", "TextJSONParser", "TextMultiPartParser", "UploadHandler"]

# JSON members read into a file rather than into memory (the upload's text).
SPOOLED = ("input_data",)


class BodyInvalid(exceptions.ParseError):
    """A body that does not parse, or holds what cannot be stored; ``field`` names where, when it is known."""

    def __init__(self, detail, field=None, message=None):
        super().__init__(detail)
        self.errors = {field: [message or detail]} if field else {}


class BodyTooLarge(exceptions.APIException):
    """A body over one of the size limits, refused before (or while) it is read."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class TextJSONParser(BaseParser):
    """JSON, read in pieces, refusing what cannot be stored as text or is too deep.

    Not a subclass of DRF's JSONParser on purpose: DRF reads the whole body
    into ``request.body`` before it calls a JSONParser.
    """

    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        length = _content_length(request)
        if length > settings.SLUICE_MAX_JSON_BYTES:
            raise BodyTooLarge(
                f"the JSON body is {length} bytes and the limit is {settings.SLUICE_MAX_JSON_BYTES} (SLUICE_MAX_JSON_BYTES); "
                "send a large input_data as a multipart file upload"
            )
        spool = {name: (lambda name=name: SpooledText(name)) for name in SPOOLED}
        try:
            value = jsonstream.parse(stream, max_depth=settings.SLUICE_JSON_MAX_DEPTH, max_held=settings.DATA_UPLOAD_MAX_MEMORY_SIZE, spool=spool)
        except jsonstream.TooLarge as error:
            raise BodyTooLarge(f"{error.message} (SLUICE_MAX_FORM_BYTES); send a large input_data as a multipart file upload") from None
        except jsonstream.Refused as error:
            raise BodyInvalid(f"JSON parse error - {error.message}", _field(error.path), error.message) from None
        if not isinstance(value, dict):
            return value
        files = {name: value.pop(name) for name in SPOOLED if isinstance(value.get(name), TemporaryUploadedFile)}
        return DataAndFiles(value, files)


class SpooledText:
    """Where a JSON string member such as ``input_data`` is written as it is read.

    The text stays in memory while it is small (up to FILE_UPLOAD_MAX_MEMORY_SIZE
    bytes), and is then moved to a temporary file, like a multipart upload. Past
    SLUICE_MAX_UPLOAD_BYTES it is counted but no longer kept: the view refuses
    it by its size.
    """

    def __init__(self, name):
        self.name, self.pieces, self.size, self.file = name, [], 0, None

    def write(self, text):
        data = text.encode("utf-8")  # the reader refused lone surrogates, so this cannot fail
        self.size += len(data)
        if self.size > settings.SLUICE_MAX_UPLOAD_BYTES:
            return
        if self.file is None and self.size > settings.FILE_UPLOAD_MAX_MEMORY_SIZE:
            self.file = TemporaryUploadedFile("upload", "text/plain", 0, "utf-8")
            self.file.write("".join(self.pieces).encode("utf-8"))
            self.pieces = []
        if self.file is None:
            self.pieces.append(text)
        else:
            self.file.write(data)

    def close(self):
        """The member's value: its text, or the temporary file (with ``size`` the text's full size in bytes)."""
        if self.file is None and self.size <= settings.SLUICE_MAX_UPLOAD_BYTES:
            return "".join(self.pieces)
        if self.file is None:
            self.file = TemporaryUploadedFile("upload", "text/plain", 0, "utf-8")
        self.file.seek(0)
        self.file.size = self.size
        return self.file


class TextFormParser(FormParser):
    """A URL-encoded form, minus NUL in names and values."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        refuse_nul(data)
        return data


class TextMultiPartParser(MultiPartParser):
    """A multipart form, minus NUL in field names and values (file contents may be anything)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        refuse_nul(parsed.data)
        refuse_nul({name: "" for name in parsed.files})
        return parsed


def refuse_nul(form):
    """Refuse a form (a QueryDict or a dict of strings) that has NUL in a name or a value.

    Raises:
        BodyInvalid: naming the first such field.
    """
    for name in form:
        values = form.getlist(name) if hasattr(form, "getlist") else [form[name]]
        if "\x00" in name or any(isinstance(value, str) and "\x00" in value for value in values):
            field = jsonstream.printable(name)
            message = f"the field '{field}' contains NUL (\\u0000), which cannot be stored as text"
            raise BodyInvalid(message, field, message)


class UploadHandler(TemporaryFileUploadHandler):
    """Spool uploaded files to disk, as Django does, but keep no more than SLUICE_MAX_UPLOAD_BYTES of each.

    A bigger file is still counted to its end, so that it is refused with its
    size, but the disk never holds more than the limit. The client's file name
    chooses nothing (results are named by ids): it is not even used for the
    temporary file, whose suffix Django would otherwise take from it.
    """

    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, "upload", *args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received <= settings.SLUICE_MAX_UPLOAD_BYTES:
            self.file.write(raw_data)


def _content_length(request):
    meta = getattr(request, "META", {})
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _field(path):
    """The request field a JSON problem at ``path`` concerns: its top-level member, or the body as a whole."""
    if path and isinstance(path[0], str):
        return jsonstream.printable(path[0])
    return "non_field_errors"
