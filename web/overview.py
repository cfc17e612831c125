"""What the submission page says about a submission, read in a bounded number of queries whatever its size.

The nodes of one task that one node added at run time (a foreach step's instances, a dynamic
step's additions) are summarised as one ``Group`` when there are more than ``GROUP_ABOVE`` of
them, as the diagram draws them as one box: the page lists the group's counts by status and
links to a paged list of its members (``/submissions/<uuid>/nodes/?by=<key>&task=<task>``).
Nodes of the job's own steps are always listed one by one.
"""
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlencode

from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from execution import controls, stats
from execution.models import Result
from execution.states import NodeStatus
from jobs.diagrams import COLLAPSE_ABOVE, STATUS_PRIORITY

__all__ = ["GROUP_ABOVE", "LOG_PAGE", "Group", "answers", "bars", "groups", "log_page", "parameters", "progress", "readable_name", "results", "rows", "timing"]

GROUP_ABOVE = COLLAPSE_ABOVE
LOG_PAGE = 50  # messages per page of the log, newest first


@dataclass
class Group:
    """The nodes of task ``task`` that node ``by`` added ("" for none), counted by status (most pressing first)."""

    by: str
    task: str
    count: int = 0
    statuses: dict = field(default_factory=dict)
    started_at: object = None
    finished_at: object = None
    results: int = 0

    @property
    def status(self):
        return next(iter(self.statuses), "pending")

    @property
    def summary(self):
        return ", ".join(f"{count} {status}" for status, count in self.statuses.items())

    @property
    def done(self):
        return sum(count for status, count in self.statuses.items() if status in NodeStatus.TERMINAL)


    @property
    def query(self):
        """The query string of the group's list page."""
        return urlencode({"by": self.by, "task": self.task})

    def members(self, nodes):
        """The group's nodes among ``nodes`` (a queryset)."""
        return nodes.filter(step__isnull=True, added_by=self.by, task__name=self.task)


def groups(submission):
    """The groups of the submission too big to list node by node: ``{(added by, task): Group}``, in one query (and one for their results)."""
    found = {}
    rows = (submission.nodes.filter(step__isnull=True).values_list("added_by", "task__name", "status")
            .annotate(n=Count("id"), first=Min("started_at"), last=Max("finished_at")).order_by())
    for by, task, status, count, first, last in rows:
        group = found.setdefault((by, task), Group(by, task))
        group.count += count
        group.statuses[status] = group.statuses.get(status, 0) + count
        group.started_at = min(filter(None, (group.started_at, first)), default=None)
        group.finished_at = max(filter(None, (group.finished_at, last)), default=None)
    big = {key: group for key, group in found.items() if group.count > GROUP_ABOVE}
    for group in big.values():
        group.statuses = {status: group.statuses[status] for status in STATUS_PRIORITY if status in group.statuses}
    if big:
        made = Result.objects.filter(submission=submission, superseded=False, node__step__isnull=True).values_list("node__added_by", "node__task__name")
        for by, task, count in made.annotate(n=Count("id")).order_by():
            if (by, task) in big:
                big[by, task].results = count
    return big


def _outside(nodes, big):
    """``nodes`` (a queryset) without the members of the big groups."""
    for group in big.values():
        nodes = nodes.exclude(step__isnull=True, added_by=group.by, task__name=group.task)
    return nodes


def rows(submission, big):
    """The steps table: every node not in a big group, each group right after the node that added it."""
    nodes = list(_outside(submission.nodes.all(), big).select_related("task", "step"))
    after = {}
    for group in big.values():
        after.setdefault(group.by, []).append(group)
    placed, listed = set(), []
    for node in nodes:
        node.not_taken = node.status == NodeStatus.SKIPPED and node.message.startswith("skipped: when")
        listed.append(node)
        listed.extend(after.get(node.key, ()))
        placed.add(node.key)
    listed.extend(group for group in big.values() if group.by not in placed)
    return listed


def progress(listed):
    """``(done, total)`` over every node of the submission, from the table's rows."""
    done = total = 0
    for row in listed:
        if isinstance(row, Group):
            done, total = done + row.done, total + row.count
        else:
            done, total = done + (row.status in NodeStatus.TERMINAL), total + 1
    return done, total


def timing(submission, now=None):
    """Total or elapsed time, and while running the typical run time of the job and what is likely left."""
    now = now or timezone.now()
    started = submission.started_at
    ended = submission.finished_at if not submission.is_active else None
    figures = {"started": started, "ended": ended, "elapsed": (ended or now) - started if started else None}
    if submission.is_active:
        typical = stats.typical_seconds(submission.job)
        if typical is not None:
            figures["typical"] = timedelta(seconds=typical)
            if figures["elapsed"] is not None:
                figures["left"] = max(figures["typical"] - figures["elapsed"], timedelta(0))
    return figures


def bars(submission, listed, now=None):
    """A timeline bar per row that has started: ``(row, x, width)`` in thousandths of the run's span."""
    now = now or timezone.now()
    begin = submission.started_at or submission.created_at
    end = (submission.finished_at if not submission.is_active else None) or now
    span = max((end - begin).total_seconds(), 0.001)
    drawn = []
    for row in listed:
        if row.started_at is None:
            continue
        finish = row.finished_at or now
        x = min(max((row.started_at - begin).total_seconds() / span * 1000, 0), 1000)
        width = min(max((finish - row.started_at).total_seconds() / span * 1000, 4), 1000 - x)
        drawn.append({"row": row, "x": round(x, 1), "width": round(max(width, 0), 1)})
    return drawn


def results(submission, big):
    """The results not in a big group, grouped by the node that made them (the upload first): ``[(node or None, [result])]``."""
    grouped = {}
    shown = _outside(submission.nodes.all(), big).values("pk")
    found = submission.results.filter(superseded=False).filter(Q(node__isnull=True) | Q(node__in=shown)).select_related("node").order_by("node_id", "id")
    for result in found:
        result.readable = readable_name(submission, result)
        grouped.setdefault(result.node_id, (result.node, []))[1].append(result)
    return sorted(grouped.values(), key=lambda item: -1 if item[0] is None else item[0].pk)


def readable_name(submission, result):
    """What a person calls a result: the step's key and the ending (``tally.count``), or the upload's own name."""
    if result.node_id is None:
        return submission.upload_name or f"upload{result.ending}"
    return f"{result.node.key}{result.ending}" if result.ending else result.name


def parameters(submission):
    """``[(label, REST name, value)]`` of the values the submission ran with, labelled as the form labels them."""
    labels = {parameter.rest_name: parameter.label for parameter in submission.job.parameters()}
    return [(labels.get(name) or name, name, value) for name, value in submission.params.items()]


def answers(nodes):
    """``{node key: (answer, who)}`` for the answered steps among ``nodes``."""
    return {
        node.key: (node.outputs["input"], controls.answerer(node))
        for node in nodes if not isinstance(node, Group) and node.task.input_prompt and "input" in (node.outputs or {})
    }


def log_page(submission, before=None):
    """One page of the message log, newest first: ``(messages, id to pass as before= for older ones or None)``."""
    found = submission.messages.select_related("node").order_by("-id")
    if before is not None:
        found = found.filter(id__lt=before)
    page = list(found[:LOG_PAGE + 1])
    older = page[LOG_PAGE - 1].pk if len(page) > LOG_PAGE else None
    return page[:LOG_PAGE], older
