"""The response documents of A_A's API, built from Sluice's models.

A_A's names are kept field for field (``UUID``, ``job_name``, ``state`` with
capitalised state names, ``data_path``); what A_A returned but should not
(the submitter's e-mail) is always null.
"""
from urllib.parse import quote

from execution.states import SubmissionStatus

__all__ = ["STATES", "batch_document", "data_path", "job_detail", "state", "submission_document"]

# A_A has five states (its models.py, Submission.STATUS_CHOICES); Sluice's others fold into them.
STATES = {
    SubmissionStatus.SUBMITTED: "Submitted",
    SubmissionStatus.RUNNING: "Running",
    SubmissionStatus.PAUSED: "Running",  # still in progress; A_A has no pause
    SubmissionStatus.WAITING: "Running",  # waiting for an input answer: still in progress
    SubmissionStatus.COMPLETE: "Complete",
    SubmissionStatus.ERROR: "Error",
    SubmissionStatus.CRASH: "Crash",
    SubmissionStatus.CANCELLED: "Error",  # stopped before the end; last_message says it was cancelled
}


def state(status):
    return STATES.get(status, "Error")


def data_path(result):
    """Where a file is served, relative to ``/analytics_automated`` as A_A's ``data_path`` and ``input_file`` are.

    A_A's clients fetch ``<server>/analytics_automated`` + ``data_path``.
    """
    return f"/submissions/{result.submission.uuid}/results/{result.pk}/{quote(result.name, safe='')}"


def submission_document(submission):
    """A_A's ``SubmissionOutputSerializer`` shape for one submission."""
    current = list(submission.results.filter(superseded=False).select_related("submission", "node__task", "node__step"))
    upload = next((result for result in current if result.node_id is None), None)
    return {
        "submission_name": submission.submission_name,
        "job_name": submission.job.aa_label,
        "UUID": str(submission.uuid),
        "state": state(submission.status),
        "last_message": submission.last_message or state(submission.status),
        "email": None,  # A_A returned it to anyone holding the UUID; Sluice never does
        "input_file": data_path(upload) if upload is not None else None,
        "results": [
            {
                "task": result.node.task_id,
                "name": result.name,
                "message": result.node.message,
                "step": result.node.step.ordering if result.node.step_id else 0,
                "data_path": data_path(result),
            }
            for result in current
            if result.node_id is not None
        ],
    }


def batch_state(submissions):
    """A_A's batch state: Error or Crash once any submission failed, Running while any runs, Complete when all are."""
    statuses = {submission.status for submission in submissions}
    for failed in (SubmissionStatus.CRASH, SubmissionStatus.ERROR, SubmissionStatus.CANCELLED):
        if failed in statuses:
            return state(failed)
    if statuses & SubmissionStatus.ACTIVE:
        return "Submitted" if statuses == {SubmissionStatus.SUBMITTED} else "Running"
    return "Complete"


def batch_document(batch, submissions):
    """A_A's ``BatchSerializer`` shape: the batch and the given (visible) submissions."""
    return {"UUID": str(batch.uuid), "state": batch_state(submissions), "submissions": [submission_document(sub) for sub in submissions]}


def job_detail(job):
    """A_A's ``JobDetailSerializer`` shape: the job's steps in order, each with its task's configuration."""
    steps = job.steps.select_related("task").prefetch_related("task__configurations").order_by("ordering", "id")
    return {
        "name": job.aa_label,
        "steps": [
            {
                "task": {
                    "configuration": [
                        {"type": config.get_kind_display(), "name": config.name, "parameters": "", "version": config.version}
                        for config in step.task.configurations.all()
                    ],
                },
                "ordering": step.ordering,
            }
            for step in steps
        ],
    }
