"""Errors of the run layer. Each carries the data a caller needs to report it."""

__all__ = ["MissingInput", "SluiceError", "SubmissionInvalid"]


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
