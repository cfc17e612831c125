"""Errors of the run layer. Each carries the data a caller needs to report it."""

__all__ = ["IdempotencyKeyInvalid", "IdempotencyKeyReused", "LoginRequired", "MissingInput", "QuotaExceeded", "SluiceError", "SubmissionInvalid", "UploadTooLarge"]


class SluiceError(Exception):
    """Base class for Sluice's own errors."""


class SubmissionInvalid(SluiceError):
    """A submission was refused; ``errors`` maps field names to messages."""

    def __init__(self, errors):
        self.errors = {field: messages if isinstance(messages, list) else [messages] for field, messages in errors.items()}
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in self.errors.items()))


class MissingInput(SluiceError):
    """No earlier step (nor the upload) provides a file a step reads."""

    def __init__(self, node_key, ending):
        self.node_key = node_key
        self.ending = ending
        where = "the submitter's upload" if ending == ".input" else f"an earlier step's '{ending}' file"
        super().__init__(f"step '{node_key}' reads {where} but there is none")


class LoginRequired(SluiceError):
    """The job only accepts submissions from logged-in users."""


class QuotaExceeded(SluiceError):
    """The submitter already has as many active submissions as allowed."""

    def __init__(self, active, limit, adding=1):
        self.active = active
        self.limit = limit
        more = "" if adding == 1 else f" and this request adds {adding}"
        super().__init__(f"you have {active} active submissions{more}; the limit is {limit}; wait for some to finish")


class UploadTooLarge(SluiceError):
    """The upload is bigger than SLUICE_MAX_UPLOAD_BYTES."""

    def __init__(self, size, limit):
        self.size = size
        self.limit = limit
        super().__init__(f"input_data is {size} bytes and the limit is {limit}")


class IdempotencyKeyInvalid(SluiceError):
    """The ``Idempotency-Key`` header is not a key Sluice can store."""


class IdempotencyKeyReused(SluiceError):
    """The ``Idempotency-Key`` was first used with a different request."""

    def __init__(self, key):
        self.key = key
        super().__init__(
            f"the Idempotency-Key {key[:80]!r} was used before with a different request (other fields, parameters or upload); "
            "send a new key for a new request"
        )
