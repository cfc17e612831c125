"""Figures about past runs."""
import statistics

from .models import Submission
from .states import SubmissionStatus


def job_times():
    """Mean and median run time (seconds, start to finish) of each job's completed submissions."""
    durations = {}
    finished = Submission.objects.filter(status=SubmissionStatus.COMPLETE, started_at__isnull=False, finished_at__isnull=False)
    for job, started, ended in finished.values_list("job__name", "started_at", "finished_at").order_by("job__name"):
        durations.setdefault(job, []).append((ended - started).total_seconds())
    return [
        {"job": job, "count": len(times), "mean_seconds": round(statistics.fmean(times), 3), "median_seconds": round(statistics.median(times), 3)}
        for job, times in durations.items()
    ]


def typical_seconds(job, last=50):
    """The median run time (seconds) of ``job``'s last ``last`` completed submissions, or None when it has none.

    The figure ``job_times`` gives for all of them, kept to the recent ones: what a running submission is
    likely to take.
    """
    finished = Submission.objects.filter(job=job, status=SubmissionStatus.COMPLETE, started_at__isnull=False, finished_at__isnull=False)
    times = [(ended - started).total_seconds() for started, ended in finished.order_by("-finished_at").values_list("started_at", "finished_at")[:last]]
    return statistics.median(times) if times else None
