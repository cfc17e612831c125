"""Quality checks: a task's ``qc`` condition on one of its JSON outputs."""
import json
from dataclasses import dataclass

from jobs import expressions

from .models import Result


@dataclass(frozen=True)
class QC:
    failed: bool = False
    terminate: bool = False  # stop the submission as complete rather than failing it
    message: str = ""


def check(node):
    """Run the node task's QC check on its JSON output; a missing or unreadable output fails the check."""
    spec = node.task.qc
    if not spec:
        return QC()
    terminate = spec.get("on_fail", "fail") == "terminate"
    result = Result.objects.filter(node=node, ending=spec["output"], superseded=False).first()
    if result is None:
        return QC(True, terminate, f"QC check failed: no {spec['output']} output to check")
    try:
        with result.file.open("rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
        if not isinstance(data, dict):
            return QC(True, terminate, f"QC check failed: {spec['output']} is not a JSON object")
        passed = bool(expressions.evaluate(spec["check"], data))
    except (ValueError, expressions.ExpressionError) as error:
        return QC(True, terminate, f"QC check failed: {error}")
    if passed:
        return QC(message=f"QC passed: {spec['check']}")
    return QC(True, terminate, f"QC check failed: {spec['check']} is false")
