"""The engine: create submissions, advance their graphs, run their nodes.

Every function takes ids or rows, works through ``states`` for status
changes and returns the ids of nodes that should now run, so the same code
serves the in-process runner and the broker actors.
"""
import functools
import logging
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from jobs import dag, expressions, templating
from jobs.models import Backend, Job, QueueType, Step, Task

from . import broker, caching, executors, foreach, graph, logs, mutations, notify, quality, statements, verdicts
from .errors import MissingInput, SubmissionInvalid
from .models import Edge, Message, Node, Priority, Result, Submission
from .states import Add, NodeStatus, SubmissionStatus, move_node, move_submission
from .watchdog import watchdog

log = logging.getLogger(__name__)

__all__ = ["advance", "cancel", "record", "run_node", "submit"]

# $VALUE carries the upload as one word only when it is this small.
VALUE_LIMIT = 64 * 1024


def submit(job, *, params=None, input_data=None, submission_name="", email="", user=None, ip=None, priority=Priority.NORMAL, batch=None, disabled=(), parent_node=None):
    """Validate and store a submission of ``job`` with its run graph.

    ``input_data`` is the upload as bytes (or None); ``params`` maps REST
    names to raw values; ``disabled`` names step keys to skip this time.

    Raises:
        SubmissionInvalid: the job is not runnable, a parameter is missing or
            ill-typed, or a validator refuses the upload.
    """
    if not job.runnable:
        raise SubmissionInvalid({"job": f"job '{job.name}' is not runnable"})
    steps = job.steps_with_tasks()
    unknown = set(disabled) - {step.key for step in steps}
    if unknown:
        raise SubmissionInvalid({"disabled": f"job '{job.name}' has no step {', '.join(sorted(unknown))}"})
    if not input_data:
        input_data = None  # an empty upload is no upload
    errors = {}
    reader = next((step.key for step in steps if step.enabled and step.key not in disabled and ".input" in step.task.in_endings), None)
    if reader and input_data is None:
        errors["input_data"] = [f"job '{job.name}' needs an upload: step '{reader}' reads it; send input_data"]
    try:
        values = job.resolve_params(params or {}, steps)
    except ValidationError as error:
        errors.update(error.message_dict)
    if input_data is not None:
        try:
            job.validate_upload(input_data)
        except ValidationError as error:
            errors.update(error.message_dict)
    if errors:
        raise SubmissionInvalid(errors)
    text = f"submitted to job '{job.name}'"
    with transaction.atomic():
        submission = Submission.objects.create(
            job=job, params=values, submission_name=submission_name, email=email, user=user, ip=ip, priority=priority, batch=batch,
            parent_node=parent_node, last_message=text,
        )
        if input_data is not None:
            result = Result(submission=submission, name=f"{submission.file_id}.input", ending=".input", size=len(input_data))
            result.file.save(result.name, ContentFile(input_data), save=True)
        ready = _instantiate(submission, job, steps, set(disabled))
        statements.insert(Message, submission_id=submission.pk, text=text)
    submission.ready = ready if ready is not None else advance(submission.pk)
    return submission


def _instantiate(submission, job, steps, disabled):
    """Create one node per step and the edges the steps imply; return the nodes queued, or None.

    When every first step is a plain one (enabled, no condition, no foreach,
    no input prompt) those are created queued, which is all the first
    ``advance`` would do; otherwise everything starts pending and None says
    that ``advance`` must decide.
    """
    edges = dag.step_edges(job.step_specs(steps))
    later = {after for _, after in edges}
    enabled = {step.key: step.enabled and step.key not in disabled for step in steps}
    first = [step for step in steps if step.key not in later]
    plain = bool(first) and all(enabled[step.key] and not step.when and not step.foreach and not step.task.input_prompt for step in first)
    now = timezone.now()
    nodes = Node.objects.bulk_create(
        Node(
            submission=submission, key=step.key, task=step.task, step=step, enabled=enabled[step.key],
            **({"status": NodeStatus.QUEUED, "queued_at": now} if plain and step.key not in later else {}),
        )
        for step in steps
    )
    by_key = {node.key: node for node in nodes}
    Edge.objects.bulk_create(Edge(submission=submission, source=by_key[before], target=by_key[after]) for before, after in edges)
    if not plain:
        return None
    return [Ready(node.pk, broker.queue_name(node.task.backend.queue_type.name, submission.priority)) for node in nodes if node.status == NodeStatus.QUEUED]


def advance(submission_id, finished=None):
    """Skip disabled nodes, start ready ones, finish the submission when nothing is left.

    A ready node is skipped when its step's ``when`` is false, expanded into
    instances when its step has ``foreach``, set waiting when its task asks
    for input, and queued otherwise. Nothing starts while the submission is
    paused. With ``finished`` (the node that just ended), first try the cheap
    way: only that node's successors can have become ready, and while other
    nodes are queued or running the submission can neither finish nor wait
    for people, so nothing else needs a look.
    Returns the ids of the nodes this call queued.
    """
    if finished is not None:
        queued = _advance_after(finished)
        if queued or (queued is not None and _busy(submission_id)):
            return queued
    submission = Submission.objects.select_related("job").get(pk=submission_id)
    if submission.status in SubmissionStatus.TERMINAL:
        return []
    queued = []
    for _ in range(100):  # each pass may expand a foreach, which makes new nodes ready
        loaded = nodes, statuses, edges = _load(submission_id)
        if submission.status == SubmissionStatus.PAUSED:
            break
        step_plan = graph.plan(statuses, edges, disabled={key for key, node in nodes.items() if not node["enabled"]})
        for key in step_plan.skip:
            move_node(nodes[key]["id"], NodeStatus.PENDING, NodeStatus.SKIPPED, message="disabled: skipped")
        replan = False
        for key in step_plan.ready:
            action = _start(submission, nodes[key], edges)
            if action == "queued":
                queued.append(nodes[key]["id"])
            if action in ("expanded", "failed", "skipped"):
                replan = True  # the graph or a status changed: what is ready may have too
                break
        if not replan and not step_plan.skip:
            if step_plan.ready:
                loaded = None  # statuses moved on since the load
            break
        loaded = None
    nodes, statuses, edges = loaded or _load(submission_id)
    final = graph.outcome(statuses)
    if final is not None:
        return queued + _finish(submission, final, statuses)
    _mark_waiting(submission, nodes)
    return queued


def _load(submission_id):
    rows = Node.objects.filter(submission_id=submission_id).values(
        "id", "key", "status", "enabled", "params", "task__name", "task__input_prompt", "step__when", "step__foreach"
    )
    nodes = {row["key"]: row for row in rows}
    return nodes, {key: row["status"] for key, row in nodes.items()}, edge_keys(submission_id)


def _start(submission, node, edges):
    """Decide what a ready node does now; return "queued", "waiting", "skipped", "expanded" or "failed"."""
    key, node_id = node["key"], node["id"]
    if node["step__when"]:
        try:
            go = bool(expressions.evaluate(node["step__when"], _context(submission)))
        except expressions.ExpressionError as error:
            _fail_now(submission.pk, node_id, f"step '{key}': when {node['step__when']!r}: {error}")
            return "failed"
        if not go:
            move_node(node_id, NodeStatus.PENDING, NodeStatus.SKIPPED, message=f"skipped: when {node['step__when']!r} is false")
            return "skipped"
    if node["step__foreach"] and "$INDEX" not in node["params"]:
        try:
            count = foreach.expand(submission, Node.objects.select_related("task", "submission__job").get(pk=node_id), edges)
        except (foreach.ForeachError, mutations.OperationError, mutations.PromiseBroken) as error:
            _fail_now(submission.pk, node_id, f"step '{key}': foreach: {error}")
            return "failed"
        move_node(node_id, NodeStatus.PENDING, NodeStatus.SKIPPED, message=f"expanded into {count} instances")
        return "expanded"
    if node["task__input_prompt"]:
        if move_node(node_id, NodeStatus.PENDING, NodeStatus.WAITING):
            record(submission.pk, f"step '{key}' is waiting for input: {node['task__input_prompt']}", node_id=node_id)
        return "waiting"
    if move_node(node_id, NodeStatus.PENDING, NodeStatus.QUEUED, queued_at=timezone.now()):
        return "queued"
    return "skipped"


def _context(submission):
    """Names a ``when`` condition may use: parameters by REST name, and each node's outputs by its key."""
    context = dict(submission.params)
    for key, outputs in Node.objects.filter(submission=submission).exclude(outputs={}).values_list("key", "outputs"):
        context[key] = outputs
    return context


def _fail_now(submission_id, node_id, text):
    """A node cannot start (a bad condition or expansion): fail it and end the submission."""
    if move_node(node_id, NodeStatus.PENDING, NodeStatus.FAILED, message=text):
        stop(submission_id, SubmissionStatus.ERROR, text)


def _mark_waiting(submission, nodes):
    """The submission waits when its only unfinished nodes wait for people (not for sub-jobs)."""
    values = {node["status"] for node in nodes.values()}
    for_people = any(node["status"] == NodeStatus.WAITING and node["task__input_prompt"] for node in nodes.values())
    if for_people and not values & {NodeStatus.QUEUED, NodeStatus.RUNNING} and not any(
        node["status"] == NodeStatus.WAITING and not node["task__input_prompt"] for node in nodes.values()
    ):
        move_submission(submission.pk, [SubmissionStatus.SUBMITTED, SubmissionStatus.RUNNING], SubmissionStatus.WAITING)
    elif submission.status == SubmissionStatus.WAITING and values & {NodeStatus.QUEUED, NodeStatus.RUNNING}:
        move_submission(submission.pk, SubmissionStatus.WAITING, SubmissionStatus.RUNNING)


def _advance_after(node_id):
    """Queue the successors of ``node_id`` whose predecessors are all done; None means "use the full rules".

    Falls back (returns None) whenever the general rules are needed: a
    disabled, conditional, expanding or input-waiting successor, or a
    submission that is not running. [] means the successors still wait for
    other predecessors, or there are none. Each id returned is a ``Ready``
    that knows its queue.
    """
    with connection.cursor() as cursor:
        cursor.execute(_successors_sql(), [*_DONE, node_id])
        successors = cursor.fetchall()
    if not successors:
        return []
    foreach_field = Step._meta.get_field("foreach")
    for _, _, enabled, status, prompt, when, each, source_status, _, _, _ in successors:
        each = foreach_field.from_db_value(each, None, connection) if each is not None else None
        if not enabled or prompt or when or each or status != SubmissionStatus.RUNNING or source_status not in NodeStatus.DONE:
            return None
    queued = []
    now = timezone.now()
    for target_id, status, *_, unfinished, queue_type, priority in successors:
        if status != NodeStatus.PENDING or unfinished:
            continue
        if move_node(target_id, NodeStatus.PENDING, NodeStatus.QUEUED, queued_at=now):
            queued.append(Ready(target_id, broker.queue_name(queue_type, priority)))
    return queued


def _busy(submission_id):
    """True while some node of the submission is queued or running."""
    return Node.objects.filter(submission_id=submission_id, status__in=(NodeStatus.QUEUED, NodeStatus.RUNNING)).exists()


class Ready(int):
    """The id of a node just queued to run at once, with the ``queue`` its message goes to."""

    def __new__(cls, node_id, queue):
        ready = super().__new__(cls, node_id)
        ready.queue = queue
        return ready


_DONE = sorted(NodeStatus.DONE)


@functools.cache
def _successors_sql():
    """One row per out-edge of a node: what ``_advance_after`` needs to know about its target."""
    quote = connection.ops.quote_name
    edge, node, submission = (quote(model._meta.db_table) for model in (Edge, Node, Submission))
    task, backend, queue_type, step = (quote(model._meta.db_table) for model in (Task, Backend, QueueType, Step))
    c = {name: quote(name) for name in ("id", "status", "enabled", "input_prompt", "when", "foreach", "name", "priority", "source_id", "target_id", "submission_id", "task_id", "backend_id", "queue_type_id", "step_id")}
    return (
        f"SELECT e.{c['target_id']}, t.{c['status']}, t.{c['enabled']}, s.{c['status']}, k.{c['input_prompt']}, p.{c['when']}, p.{c['foreach']}, "
        f"f.{c['status']}, "
        # How many predecessors of the target are not done yet.
        f"(SELECT COUNT(*) FROM {edge} i JOIN {node} n ON n.{c['id']} = i.{c['source_id']} "
        f"WHERE i.{c['target_id']} = e.{c['target_id']} AND n.{c['status']} NOT IN ({', '.join(['%s'] * len(_DONE))})), "
        f"q.{c['name']}, s.{c['priority']} "
        f"FROM {edge} e JOIN {node} t ON t.{c['id']} = e.{c['target_id']} JOIN {node} f ON f.{c['id']} = e.{c['source_id']} "
        f"JOIN {submission} s ON s.{c['id']} = t.{c['submission_id']} JOIN {task} k ON k.{c['id']} = t.{c['task_id']} "
        f"JOIN {backend} b ON b.{c['id']} = k.{c['backend_id']} JOIN {queue_type} q ON q.{c['id']} = b.{c['queue_type_id']} "
        f"LEFT JOIN {step} p ON p.{c['id']} = t.{c['step_id']} "
        f"WHERE e.{c['source_id']} = %s"
    )


def _finish(submission, status, statuses):
    done = sum(1 for value in statuses.values() if value in NodeStatus.DONE)
    text = f"{status}: {done} of {len(statuses)} steps done"
    if status == SubmissionStatus.COMPLETE:
        # A shape promise speaks of whole paths, so it is checked on the finished graph.
        promises = active_promises(submission)
        try:
            broken = mutations.broken_shape(promises, graph_state(submission.pk)) if any(p["kind"] == "shape" for p in promises) else None
        except mutations.OperationError as error:
            broken, status, text = None, SubmissionStatus.ERROR, f"a shape promise could not be checked: {error}"
        if broken:
            status, text = SubmissionStatus.ERROR, f"promise {mutations.describe(broken[0])} broken: path '{broken[1]}' does not match"
    # One transaction: nobody sees the submission finished without its last message, or a
    # sub-job finished while its parent's node still waits for it. The e-mail goes after.
    with transaction.atomic():
        if not move_submission(submission.pk, SubmissionStatus.ACTIVE, status, last_message=text):
            return []
        record(submission.pk, text, level=Message.Level.INFO if status == SubmissionStatus.COMPLETE else Message.Level.ERROR, last=False)
        queued = _return_to_parent(submission.pk, status, text) if submission.parent_node_id else []
    log.info("Submission %s finished as %s.", submission.pk, status)
    notify.submission_finished(submission.pk)
    return queued


def _return_to_parent(child_id, status, text):
    """A sub-job ended: finish the parent node that waits for it; return what the parent queued."""
    child = Submission.objects.select_related("parent_node__submission").get(pk=child_id)
    parent = child.parent_node
    if parent is None:
        return []
    if status != SubmissionStatus.COMPLETE:
        reason = f"step '{parent.key}': sub-job {child.uuid} ended {status}: {text}"
        if move_node(parent.pk, NodeStatus.WAITING, NodeStatus.FAILED, message=reason):
            stop(parent.submission_id, SubmissionStatus.ERROR, reason)
        return []
    parent_id = parent.submission.file_id
    for result in child.results.filter(node__isnull=False, superseded=False):
        name = result.name.replace(child.file_id, parent_id)  # the parent's steps look for <their ID><ending>
        copy = Result(submission_id=parent.submission_id, node=parent, name=name, ending=result.ending, size=result.size)
        with result.file.open("rb") as handle:
            copy.file.save(name, File(handle), save=True)
    if not move_node(parent.pk, NodeStatus.WAITING, NodeStatus.SUCCEEDED, message=f"sub-job {child.uuid} complete"):
        return []
    record(parent.submission_id, f"step '{parent.key}' succeeded: sub-job {child.uuid} complete", node=parent)
    return advance(parent.submission_id, finished=parent.pk)


def run_node(node_id, worker="", watch=False):
    """Run a queued node once and return the ids of nodes that should run next.

    A node that is no longer queued (a duplicate message, a cancel) is left
    alone. ``worker`` names the claimant (host:pid). With ``watch``, the
    process's watchdog renews the node's lease while it runs and kills its
    process group as soon as the node stops being ``running`` (a cancel), so
    a reconciler can tell live workers from dead ones.
    """
    lease = timezone.now() + timedelta(seconds=settings.SLUICE_LEASE_SECONDS)
    claimed = move_node(
        node_id, NodeStatus.QUEUED, NodeStatus.RUNNING,
        attempt=Add(1), exit_code=None, message="", worker=worker, pid=None, lease_expires_at=lease, not_before=None,
    )
    if not claimed:
        return []
    node = statements.load(Node, node_id, "submission__job", "task__backend__queue_type")
    submission = node.submission
    if submission.status in SubmissionStatus.TERMINAL:
        move_node(node_id, NodeStatus.RUNNING, NodeStatus.CANCELLED, message=f"submission is {submission.status}")
        return []
    if submission.status == SubmissionStatus.PAUSED:  # e.g. a retry that came due during a pause
        move_node(node_id, NodeStatus.RUNNING, NodeStatus.PENDING, attempt=Add(-1), worker="", lease_expires_at=None, started_at=None)
        return []
    if submission.status == SubmissionStatus.SUBMITTED:
        move_submission(submission.pk, SubmissionStatus.SUBMITTED, SubmissionStatus.RUNNING)
    if node.task.backend.queue_type.execution_behaviour == QueueType.ExecutionBehaviour.JOB:
        return _start_subjob(node)
    workdir = _workdir(node)
    if watch:
        watchdog.add(node.pk)
    try:
        released = []  # nodes of a parent submission that this one's early end lets run
        retry = _attempt(node, workdir, watch, released)
    finally:
        if watch:
            watchdog.remove(node.pk)
        if not settings.SLUICE_KEEP_WORK_DIRS:
            shutil.rmtree(workdir, ignore_errors=True)
    return ([node.pk] if retry else []) + released + advance(submission.pk, finished=node.pk)


def _start_subjob(node):
    """Run another job as a child submission; the node waits (no process) until it ends."""
    task, parent = node.task, node.submission
    child_job = Job.objects.filter(name=task.executable.strip()).first()
    if child_job is None:
        _fail(node, f"sub-job: there is no job '{task.executable.strip()}'", retryable=False)
        return advance(parent.pk)
    depth, ancestor = 1, parent
    while ancestor.parent_node_id:
        depth += 1
        ancestor = ancestor.parent_node.submission
    if depth > settings.SLUICE_MAX_SUBJOB_DEPTH:
        _fail(node, f"sub-job '{child_job.name}' would be nested {depth} deep; the limit is SLUICE_MAX_SUBJOB_DEPTH ({settings.SLUICE_MAX_SUBJOB_DEPTH})", retryable=False)
        return advance(parent.pk)
    names = {parameter.rest_name for parameter in child_job.parameters()}
    values = {name: value for name, value in {**parent.params, **node.params}.items() if name in names and value is not None}
    try:
        # The child's upload: the task's first in-glob file, or else the parent's own upload.
        if task.in_endings:
            used = _inputs(node, task.in_endings[:1])[2]
        else:
            used = list(Result.objects.filter(submission=parent, node__isnull=True, ending=".input"))
        upload = None
        if used:
            with used[0].file.open("rb") as handle:
                upload = handle.read()
        child = submit(child_job, params=values, input_data=upload, user=parent.user, priority=parent.priority, parent_node=node)
    except (MissingInput, SubmissionInvalid) as error:
        _fail(node, f"sub-job '{child_job.name}': {error}", retryable=False)
        return advance(parent.pk)
    move_node(node.pk, NodeStatus.RUNNING, NodeStatus.WAITING, message=f"running sub-job {child.uuid}", lease_expires_at=None)
    record(parent.pk, f"step '{node.key}' started sub-job {child.uuid} of job '{child_job.name}'", node=node)
    return child.ready


def _attempt(node, workdir, watch=False, released=None):
    """Run the node's process and record the verdict; return True when it should be retried.

    When the step ends its submission early and that submission is a sub-job,
    the parent's nodes that this lets run are appended to ``released``.
    """
    if node.attempt > 1:
        delete_results(Result.objects.filter(node=node))  # a retry replaces a failed attempt's files
    try:
        run, used = _prepare(node, workdir)
        key = caching.key_for(node, run, used) if node.task.cache and not node.task.dynamic else None
        if key and caching.reuse(node, key):
            return False
        outcome = executors.execute(run, on_start=(lambda pid: watchdog.started(node.pk, pid)) if watch else None)
    except (MissingInput, templating.TemplateError, OSError, ValueError) as error:
        return _fail(node, str(error), retryable=False)
    logs.keep(node, node.attempt, outcome.stdout, outcome.stderr)
    if outcome.outputs:
        if not Node.objects.filter(pk=node.pk, status=NodeStatus.RUNNING).update(command=outcome.command):
            return False  # cancelled (or taken over) while it ran: its outputs are not wanted
        _store_results(node, outcome.outputs)
    verdict = verdicts.judge(
        exit_code=outcome.exit_code,
        timed_out=outcome.timed_out,
        timeout=run.timeout,
        missing=outcome.missing,
        custom_statuses=node.task.exit_statuses,
        custom_behaviour=node.task.custom_exit_behaviour,
        incomplete_behaviour=node.task.incomplete_outputs_behaviour,
    )
    if not verdict.succeeded:
        detail = f"{verdict.message}\n{outcome.stderr_tail}".strip()
        return _fail(node, detail, exit_code=outcome.exit_code, retryable=True, command=outcome.command)
    qc = quality.check(node)
    if qc.failed and not qc.terminate:
        return _fail(node, qc.message, exit_code=outcome.exit_code, retryable=False, command=outcome.command)
    try:
        changes = plan_changes(node, mutations.parse_lines(outcome.control))
    except (mutations.OperationError, mutations.PromiseBroken) as error:
        return _break(node, error, outcome.exit_code)
    message = "; ".join(text for text in (verdict.message, qc.message) if text)
    if changes is None:
        if not move_node(node.pk, NodeStatus.RUNNING, NodeStatus.SUCCEEDED, exit_code=outcome.exit_code, message=message, command=outcome.command):
            return False
    else:
        with transaction.atomic():  # the graph grows before any successor of this node can start
            apply_changes(node, changes)
            if not move_node(node.pk, NodeStatus.RUNNING, NodeStatus.SUCCEEDED, exit_code=outcome.exit_code, message=message, command=outcome.command):
                transaction.set_rollback(True)  # cancelled meanwhile: its additions are not wanted either
                return False
    if key:
        caching.remember(key, node)
    record(node.submission_id, f"step '{node.key}' succeeded in {outcome.duration:.2f} s" + (f" ({message})" if message else ""), node=node)
    if verdict.terminate or qc.failed:
        stop(node.submission_id, SubmissionStatus.COMPLETE, f"step '{node.key}' {message}", remaining=NodeStatus.SKIPPED, released=released)
    return False


def active_promises(submission):
    """The job's registered promises and those made at run time."""
    runtime = [{key: value for key, value in promise.items() if key != "by"} for promise in submission.promises]
    return [promise.as_dict() for promise in submission.job.promises.all()] + runtime


def graph_state(submission_id):
    nodes = {key: (task, status) for key, task, status in Node.objects.filter(submission_id=submission_id).values_list("key", "task__name", "status")}
    return mutations.GraphState(nodes, set(edge_keys(submission_id)))


def plan_changes(node, operations):
    """Check a node's control-channel operations; return the plan, or None when it sent none.

    Raises:
        mutations.OperationError, mutations.PromiseBroken
    """
    if not operations:
        return None
    return mutations.plan(
        graph_state(node.submission_id), operations, node=node.key, dynamic=node.task.dynamic,
        tasks=set(Task.objects.values_list("name", flat=True)), promises=active_promises(node.submission),
    )


def apply_changes(node, changes):
    """Write a checked plan: new nodes and edges, promises, outputs, styles."""
    if changes is None:
        return
    submission = node.submission
    tasks = {task.name: task for task in Task.objects.filter(name__in={item["task"] for item in changes.nodes})}
    Node.objects.bulk_create(
        Node(submission=submission, key=item["key"], task=tasks[item["task"]], params=item["params"], added_by=node.key) for item in changes.nodes
    )
    by_key = dict(Node.objects.filter(submission=submission).values_list("key", "pk"))
    Edge.objects.bulk_create(Edge(submission=submission, source_id=by_key[source], target_id=by_key[target]) for source, target in changes.edges)
    if changes.promises:
        # Remember who promised, so that restarting that node takes its promises back too.
        made = [{**promise, "by": node.key} for promise in changes.promises]
        Submission.objects.filter(pk=submission.pk).update(promises=list(submission.promises) + made)
    if changes.outputs:
        Node.objects.filter(pk=node.pk).update(outputs={**node.outputs, **changes.outputs})
    for style in changes.styles:
        if "node" in style:
            target = Node.objects.get(submission=submission, key=style["node"])
            Node.objects.filter(pk=target.pk).update(style={**target.style, **{k: v for k, v in style.items() if k != "node"}})
        else:
            fields = {"color": style.get("color", ""), **({"label": style["label"]} if "label" in style else {})}
            Edge.objects.filter(submission=submission, source__key=style["from"], target__key=style["to"]).update(**fields)
    if changes.grows:
        record(submission.pk, f"step '{node.key}' added {len(changes.nodes)} nodes and {len(changes.edges)} edges", node=node)


def _break(node, error, exit_code):
    """A node's operations were refused: fail it and end the submission, killing what still runs."""
    text = f"step '{node.key}': {error}"
    if move_node(node.pk, NodeStatus.RUNNING, NodeStatus.FAILED, exit_code=exit_code, message=str(error)):
        stop(node.submission_id, SubmissionStatus.ERROR, text)
    return False


def _fail(node, detail, exit_code=None, retryable=True, command=""):
    """Record a failed attempt; queue a retry if the task allows one, else fail the submission."""
    summary = detail.splitlines()[0] if detail else "failed"
    if command:
        Node.objects.filter(pk=node.pk).update(command=command)
    if retryable and node.attempt <= node.task.retries:
        delay = retry_delay(node.attempt)
        now = timezone.now()
        requeued = move_node(
            node.pk, NodeStatus.RUNNING, NodeStatus.QUEUED,
            exit_code=exit_code, message=detail, finished_at=None, queued_at=now, not_before=now + timedelta(seconds=delay), lease_expires_at=None,
        )
        if requeued:
            record(node.submission_id, f"step '{node.key}' attempt {node.attempt} failed: {summary}; retrying in {delay:g} s", level=Message.Level.WARNING, node=node)
            return True
        return False
    if move_node(node.pk, NodeStatus.RUNNING, NodeStatus.FAILED, exit_code=exit_code, message=detail):
        record(node.submission_id, f"step '{node.key}' failed: {summary}", level=Message.Level.ERROR, node=node)
        stop(node.submission_id, SubmissionStatus.ERROR, f"step '{node.key}' failed: {summary}", remaining=NodeStatus.CANCELLED)
    return False


def stop(submission_id, status, text, remaining=NodeStatus.CANCELLED, released=None):
    """End a submission now: its unfinished nodes get ``remaining``; returns True if this call ended it.

    Sub-jobs of its waiting nodes are cancelled too, and a sub-job that ends
    this way ends the node waiting for it. A sub-job that ends ``complete``
    lets its parent go on: the parent's nodes that became ready are appended
    to ``released``, for the caller to run.
    """
    # One transaction, so that nobody sees the submission ended with nodes still running,
    # or a sub-job ended while its parent's node still waits for it. The e-mail goes after.
    with transaction.atomic():
        if not move_submission(submission_id, SubmissionStatus.ACTIVE, status, last_message=text):
            return False
        for child_id in Submission.objects.filter(parent_node__submission_id=submission_id, status__in=SubmissionStatus.ACTIVE).values_list("pk", flat=True):
            stop(child_id, SubmissionStatus.CANCELLED, f"its parent submission stopped: {text}")
        for node_id, was in Node.objects.filter(submission_id=submission_id, status__in=NodeStatus.ACTIVE).values_list("pk", "status"):
            move_node(node_id, NodeStatus.ACTIVE, remaining, message=f"{'stopped' if was == NodeStatus.RUNNING else 'not run'}: {text}")
        level = {SubmissionStatus.COMPLETE: Message.Level.INFO, SubmissionStatus.CANCELLED: Message.Level.WARNING}.get(status, Message.Level.ERROR)
        record(submission_id, text, level=level, last=False)
        ready = _return_to_parent(submission_id, status, text)
    if released is not None:
        released.extend(ready)
    notify.submission_finished(submission_id)
    return True


def cancel(submission_id, reason="cancelled by request"):
    """Cancel a submission and its unfinished nodes; returns True if it was still active.

    Running nodes become ``cancelled`` at once; the heartbeat of the worker
    running each one sees that within a beat and kills its process group.
    """
    return stop(submission_id, SubmissionStatus.CANCELLED, reason)


def retry_delay(attempt):
    """Seconds to wait before retry number ``attempt``: exponential, capped."""
    return min(settings.SLUICE_RETRY_BACKOFF * 2 ** (attempt - 1), settings.SLUICE_RETRY_BACKOFF_MAX)


def record(submission_id, text, level=Message.Level.INFO, node=None, node_id=None, last=True):
    """Add a message to the submission's timeline and (unless ``last`` is False: the caller has) make it the last message."""
    statements.insert(Message, submission_id=submission_id, node_id=node.pk if node is not None else node_id, level=level, text=text)
    if last:
        statements.update(Submission, submission_id, last_message=text)


def edge_keys(submission_id):
    return list(Edge.objects.filter(submission_id=submission_id).values_list("source__key", "target__key"))


def _workdir(node):
    root = Path(node.task.backend.root_path or settings.SLUICE_WORK_DIR)
    return root / str(node.submission.uuid) / f"{node.pk}-{node.attempt}"


def _prepare(node, workdir):
    """Build the plain-data description of this attempt."""
    task = node.task
    submission = node.submission
    values = {**submission.params, **node.params}
    parameters, environment = task.run_spec()
    inputs, in_names, used = _inputs(node, task.in_endings)
    return executors.NodeRun(
        behaviour=task.backend.queue_type.execution_behaviour,
        executable=task.executable,
        workdir=workdir,
        file_id=submission.file_id,
        in_endings=[ending.lstrip("*") for ending in task.in_endings],
        out_endings=task.out_endings,
        stdout_ending=task.stdout_glob,
        params=[(spec, values.get(rest_name)) for rest_name, spec in parameters],
        value=_value(submission) if "$VALUE" in task.executable else "",
        environment=dict(environment),
        timeout=task.timeout,
        inputs=inputs,
        in_names=in_names,
        item=node.params.get("$ITEM", ""),
        index=node.params.get("$INDEX", ""),
    ), used


def _inputs(node, endings):
    """Find the files a node reads: ``(writers by staged name, staged names per ending, results used)``.

    An ending takes the nearest done ancestor's file (then the upload); a
    foreach instance over files takes its own file; a "*" ending gathers
    every done ancestor's file with that ending, staged as ``<ID>.<n><ending>``.

    Raises:
        MissingInput: no ancestor, nor the upload, has a file with a (non-gathering) ending.
    """
    if not endings:
        return {}, [], []
    ancestors = graph.ancestors_nearest_first(node.key, edge_keys(node.submission_id))
    rank = {key: position for position, key in enumerate(ancestors)}
    plain = {ending.lstrip("*") for ending in endings}
    candidates = [
        result for result in Result.objects.filter(submission_id=node.submission_id, ending__in=plain, superseded=False).select_related("node")
        if result.node_id is None or (result.node.key in rank and result.node.status in NodeStatus.DONE)
    ]
    own = node.params.get("$RESULT")
    writers, names, used = {}, [], []
    for ending in endings:
        if ending.startswith("*"):
            gathered = sorted((r for r in candidates if r.node_id and r.ending == ending[1:]), key=lambda r: (r.node_id, r.pk))
            staged = [f"{node.submission.file_id}.{index}{ending[1:]}" for index in range(len(gathered))]
            writers.update({name: _writer(result) for name, result in zip(staged, gathered)})
            names.append(staged)
            used.extend(gathered)
            continue
        matching = [r for r in candidates if r.ending == ending]
        chosen = next((r for r in matching if r.pk == own), None) or min(
            matching, key=lambda r: (len(rank) if r.node_id is None else rank[r.node.key], r.pk), default=None
        )
        if chosen is None:
            raise MissingInput(node.key, ending)
        name = f"{node.submission.file_id}{ending}"
        writers[name] = _writer(chosen)
        names.append(name)
        used.append(chosen)
    return writers, names, used


def _writer(result):
    def write(destination):
        with result.file.open("rb") as source, open(destination, "wb") as target:
            shutil.copyfileobj(source, target)

    return write


def _value(submission):
    upload = Result.objects.filter(submission=submission, node__isnull=True, ending=".input").first()
    if upload is None or upload.size > VALUE_LIMIT:
        return ""
    with upload.file.open("rb") as handle:
        return handle.read().decode("utf-8", "replace")


def delete_results(results):
    """Delete result rows and their stored files."""
    for result in results:
        result.file.delete(save=False)
        result.delete()


def _store_results(node, outputs):
    for ending, path in outputs:
        result = Result(submission_id=node.submission_id, node=node, name=path.name, ending=ending, size=path.stat().st_size)
        with open(path, "rb") as handle:
            result.file.save(path.name, File(handle), save=True)


def job_by_name(name):
    """Return the job called ``name``.

    Raises:
        SubmissionInvalid: there is no such job.
    """
    try:
        return Job.for_submission().get(name=name)
    except Job.DoesNotExist:
        raise SubmissionInvalid({"job": f"there is no job '{name}'"}) from None
