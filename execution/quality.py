"""Quality checks: a task's ``qc`` condition on one of its JSON outputs."""
import json
from dataclasses import dataclass

from jobs import expressions


@dataclass(frozen=True)
class QC:
    failed: bool = False
    terminate: bool = False  # stop the submission as complete rather than failing it
    message: str = ""


def check(spec, outputs):
    """Run a task's QC ``spec`` on its JSON output among ``outputs`` ([(ending, path)]); a missing or unreadable output fails."""
    if not spec:
        return QC()
    terminate = spec.get("on_fail", "fail") == "terminate"
    path = next((path for ending, path in outputs if ending == spec["output"]), None)
    if path is None:
        return QC(True, terminate, f"QC check failed: no {spec['output']} output to check")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(data, dict):
            return QC(True, terminate, f"QC check failed: {spec['output']} is not a JSON object")
        passed = bool(expressions.evaluate(spec["check"], data))
    except (ValueError, expressions.ExpressionError) as error:
        return QC(True, terminate, f"QC check failed: {error}")
    if passed:
        return QC(message=f"QC passed: {spec['check']}")
    return QC(True, terminate, f"QC check failed: {spec['check']} is false")
