"""The sub-job executor: a node of a ``job`` queue type runs another job as a child submission.

Its handle is ``submission:<child uuid>``. Starting submits the child and
returns at once; the node then waits (holding no worker and no lease) until
the child ends, when the engine finishes it (``engine._return_to_parent``).
"""
from .executors import Executor, ExecutorError, Finished, Outcome, register

__all__ = ["SubJobExecutor"]


class SubJobExecutor(Executor):
    behaviour = "job"
    attached = False

    def start(self, run):
        """Submit the child; ``run.extra`` holds the parent node, user, priority, values, mapped values and upload.

        The child takes the parent's values of the parameters it shares with
        the parent, then the values the step's ``params`` map (``mapped``),
        and types and checks them all by its own rules, as a submission.

        Raises:
            ExecutorError: there is no such job, or it refuses the submission.
        """
        from jobs.models import Job

        from . import engine
        from .errors import SubmissionInvalid

        name = run.executable.strip()
        child_job = Job.objects.filter(name=name).first()
        if child_job is None:
            raise ExecutorError(f"sub-job: there is no job '{name}'")
        names = {parameter.rest_name for parameter in child_job.parameters()}
        values = {key: value for key, value in run.extra["values"].items() if key in names and value is not None}
        values.update(run.extra.get("mapped", {}))
        try:
            child = engine.submit(
                child_job, params=values, input_data=run.extra["upload"], user=run.extra["user"], priority=run.extra["priority"],
                parent_node=run.extra["node"],
            )
        except SubmissionInvalid as error:
            raise ExecutorError(f"sub-job '{child_job.name}': {_refusal(error, run.extra.get('mapping', {}))}") from None
        run.extra["ready"] = child.ready
        run.extra["child"] = child
        return f"submission:{child.uuid}"

    def poll(self, handle):
        from .models import Submission
        from .states import SubmissionStatus

        status = Submission.objects.filter(uuid=_uuid(handle)).values_list("status", flat=True).first()
        if status is None:
            return Finished(None, reason="the sub-job is gone")
        if status in SubmissionStatus.TERMINAL:
            return Finished(0 if status == SubmissionStatus.COMPLETE else 1, reason=f"the sub-job ended {status}")
        return None

    def cancel(self, handle, reason="its parent submission stopped"):
        from . import engine
        from .models import Submission

        child_id = Submission.objects.filter(uuid=_uuid(handle)).values_list("pk", flat=True).first()
        return bool(child_id) and engine.stop(child_id, "cancelled", reason)

    def collect(self, run, handle, finished):
        # The child's results reach the parent when it completes (engine._return_to_parent).
        return Outcome(command=handle, exit_code=finished.exit_code, timed_out=False, duration=0.0, outputs=[], missing=[], stderr_tail=finished.reason)


def _refusal(error, mapping):
    """The child's refusal, saying which values came from the step's ``params`` and from what."""
    parts = []
    for field, messages in error.errors.items():
        text = " ".join(messages)
        if field in mapping:
            text += f" (mapped by the step's params from {mapping[field]!r})"
        parts.append(f"{field}: {text}")
    return "; ".join(parts)


def _uuid(handle):
    prefix, _, value = (handle or "").partition(":")
    if prefix != "submission" or not value:
        raise ExecutorError(f"{handle!r} is not a sub-job handle")
    return value


register(SubJobExecutor())
