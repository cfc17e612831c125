"""The engine: create submissions, advance their graphs, run their nodes.

Every function takes ids or rows and returns the ids of nodes that should
now run, so the same code serves the in-process runner and the broker
actors. Every status change goes through ``lifecycle``; what a ready node
does is ``graph.decide``; how an attempt runs is its executor's business
(``executors``).
"""
import logging
import traceback

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import DatabaseError, transaction
from django.utils import timezone

from jobs import catalogue, dag, expressions, mappings, templating
from jobs.models import Compat, Job, QueueType, Task

from . import broker, caching, documents, executors, foreach, graph, lifecycle, logs, mutations, notify, quality, statements, stored, verdicts, workdirs
from .errors import MissingInput, SubmissionInvalid
from .models import Edge, Message, Node, Priority, Result, Submission
from .states import NodeStatus, SubmissionStatus
from .watchdog import watchdog

log = logging.getLogger(__name__)

__all__ = ["advance", "cancel", "conclude_followed", "record", "run_node", "stop", "submit", "upload_reader"]

# $VALUE carries the upload as one word only when it is this small.
VALUE_LIMIT = 64 * 1024
# Errors that mean the attempt cannot run as configured: no retry helps.
NOT_RUNNABLE = (MissingInput, templating.TemplateError, executors.ExecutorError, OSError, ValueError)
Ready = lifecycle.Ready


def submit(job, *, params=None, input_data=None, submission_name="", email="", user=None, ip=None, priority=Priority.NORMAL, batch=None, disabled=(), parent_node=None):
    """Validate and store a submission of ``job`` with its run graph.

    ``input_data`` is the upload as bytes or a file (or None); a file is
    copied to storage in chunks, never read whole unless the job has
    validators. ``params`` maps REST names to raw values; ``disabled`` names
    step keys to skip this time.

    Raises:
        SubmissionInvalid: the job is not runnable (or has no steps), a parameter is missing or
            ill-typed, or a validator refuses the upload.
    """
    steps = job.steps_with_tasks()
    refusal = job.refusal(steps)
    if refusal:
        raise SubmissionInvalid({"job": refusal})
    unknown = set(disabled) - {step.key for step in steps}
    if unknown:
        raise SubmissionInvalid({"disabled": f"job '{job.name}' has no step {', '.join(sorted(unknown))}"})
    input_data = _upload(input_data)
    errors = {}
    reader = upload_reader(job, steps, disabled)
    if reader and input_data is None:
        errors["input_data"] = [f"job '{job.name}' needs an upload: step '{reader}' reads it; send input_data"]
    try:
        values = job.resolve_params(params or {}, steps)
    except ValidationError as error:
        errors.update(error.message_dict)
    if input_data is not None and job.validators.all():  # prefetched by Job.for_submission: no query
        try:
            job.validate_upload(_read(input_data))
        except ValidationError as error:
            errors.update(error.message_dict)
    if errors:
        raise SubmissionInvalid(errors)
    text = f"submitted to job '{job.name}'"
    with transaction.atomic():
        [submission] = statements.create(Submission, [Submission(
            job=job, params=values, submission_name=submission_name, email=email, user=user, ip=ip, priority=priority, batch=batch,
            parent_node=parent_node, last_message=text, upload_name=upload_name(input_data),
        )])
        if input_data is not None:
            result = Result(submission=submission, name=f"{submission.file_id}.input", ending=".input", size=input_data.size)
            result.file.save(result.name, File(input_data), save=True)  # File(): copied, not moved, so a batch can store it again
        nodes, ready = _instantiate(submission, job, steps, set(disabled))
        [message] = statements.create(Message, [Message(submission=submission, text=text)])
    submission.ready = ready if ready is not None else advance(submission.pk)
    # The rows as committed, for the answer to the submitter; None when advance() has moved them on.
    inputs = [result] if input_data is not None else []
    submission.as_made = documents.Rows(nodes, inputs, [message]) if ready is not None else None
    return submission




def upload_reader(job, steps=None, disabled=()):
    """The key of the first enabled step that reads the upload, or None when the job takes none.

    A step reads it through ``.input`` among its in-endings; a compat "aa" job's
    first stage reads it under its first in-glob ending (``_aa_upload_reader``).
    The submission form asks for a file only when this names a step.
    """
    steps = steps if steps is not None else job.steps_with_tasks()
    reader = next((step.key for step in steps if step.enabled and step.key not in disabled and ".input" in step.task.in_endings), None)
    if reader is None and job.compat == Compat.AA:
        reader = _aa_upload_reader(job, steps, disabled)
    return reader


def _aa_upload_reader(job, steps, disabled):
    """The first enabled first-stage step of a compat "aa" job that reads the upload (under its first in-glob ending), or None."""
    later = {after for _, after in dag.step_edges(job.step_specs(steps))}
    for step in steps:
        endings = step.task.in_endings
        if step.enabled and step.key not in disabled and step.key not in later and endings and not endings[0].startswith("*"):
            return step.key
    return None


def _upload(data):
    """The upload as a Django file (bytes are wrapped), or None when there is none or it is empty."""
    if data is None:
        return None
    if isinstance(data, (bytes, bytearray)):
        data = ContentFile(bytes(data))
    return data if data.size else None


def upload_name(upload):
    """The name the submitter's client gave the upload, fit to show (never to use as a path), or ""."""
    if upload is None or isinstance(upload, ContentFile):  # bytes from JSON: no name was given
        return ""
    name = getattr(upload, "name", None) or ""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(character for character in name if character.isprintable())[:255]


def _read(upload):
    upload.seek(0)
    return upload.read()


def _instantiate(submission, job, steps, disabled):
    """Create one node per step and the edges the steps imply; return (the nodes, the nodes queued or None).

    Nodes are born pending, except that when ``graph.decide`` queues every
    first step (each is enabled, and none has a condition that is false, a
    foreach or an input prompt) those are born queued, which is all the
    first ``advance`` would do; otherwise None says that ``advance`` must decide.
    """
    edges = dag.step_edges(job.step_specs(steps))
    later = {after for _, after in edges}
    enabled = {step.key: step.enabled and step.key not in disabled for step in steps}
    first = [step for step in steps if step.key not in later]
    context = dict(submission.params)
    plain = bool(first) and all(
        enabled[step.key] and graph.decide(_ready_node(step.key, step.when, step.foreach, {}, step.task.input_prompt), lambda e: expressions.evaluate(e, context))[0] == graph.QUEUE
        for step in first
    )
    now = timezone.now()
    nodes = statements.create(Node, (
        Node(
            submission=submission, key=step.key, task=step.task, step=step, enabled=enabled[step.key],
            **({"status": NodeStatus.QUEUED, "queued_at": now} if plain and step.key not in later else {}),
        )
        for step in steps
    ))
    by_key = {node.key: node for node in nodes}
    statements.create(Edge, (Edge(submission=submission, source=by_key[before], target=by_key[after]) for before, after in edges))
    if not plain:
        return nodes, None
    return nodes, [Ready(node.pk, broker.queue_name(node.task.backend.queue_type.name, submission.priority)) for node in nodes if node.status == NodeStatus.QUEUED]


def _ready_node(key, when, foreach_source, params, prompt):
    return graph.ReadyNode(key=key, when=when or "", foreach=foreach_source or None, instance="$INDEX" in (params or {}), prompt=prompt or "")


# -- advancing a graph --------------------------------------------------------------------


def advance(submission_id, finished=None):
    """Skip disabled nodes, start ready ones, finish the submission when nothing is left.

    What each ready node does is ``graph.decide``'s answer: queue it, skip it
    (a false ``when``), expand it into instances (``foreach``), wait for a
    person (an input prompt), or fail (a bad condition). Nothing starts while
    the submission is paused. With ``finished`` (the node that just ended),
    first try the cheap way: only that node's successors can have become
    ready, and while other nodes are queued or running the submission can
    neither finish nor wait for people, so nothing else needs a look.
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
    loaded = None
    for _ in range(100):  # each pass may expand a foreach, which makes new nodes ready
        loaded = nodes, statuses, edges = _load(submission_id)
        if submission.status == SubmissionStatus.PAUSED:
            break
        step_plan = graph.plan(statuses, edges, disabled={key for key, node in nodes.items() if not node["enabled"]})
        for key in step_plan.skip:
            lifecycle.skip(nodes[key]["id"], "disabled: skipped")
        replan = False
        context = _Context(submission)
        for key in step_plan.ready:
            action = _start(submission, nodes[key], context)
            if isinstance(action, Ready):
                queued.append(action)
            elif action in (graph.EXPAND, graph.FAIL, graph.SKIP):
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


class _Context:
    """The names a ``when`` condition may use, loaded on first use: parameters by REST name, outputs by node key."""

    def __init__(self, submission):
        self.submission = submission
        self._values = None

    def evaluate(self, expression):
        if self._values is None:
            self._values = dict(self.submission.params)
            for key, outputs in Node.objects.filter(submission_id=self.submission.pk).exclude(outputs={}).values_list("key", "outputs"):
                self._values[key] = outputs
        return expressions.evaluate(expression, self._values)


def _start(submission, node, context):
    """Do what ``graph.decide`` says a ready node does; return its ``Ready`` when queued, else the action."""
    node_id = node["id"]
    action, message = graph.decide(_ready_node(node["key"], node["step__when"], node["step__foreach"], node["params"], node["task__input_prompt"]), context.evaluate)
    if action == graph.QUEUE:
        return lifecycle.queue(node_id) or graph.SKIP  # not pending any more: someone else moved it
    if action == graph.SKIP:
        lifecycle.skip(node_id, message)
    elif action == graph.FAIL:
        _refuse(submission.pk, node_id, message)
    elif action == graph.EXPAND:
        _expand(submission, node_id, node["key"])
    elif action == graph.WAIT and lifecycle.wait_for_input(node_id):
        record(submission.pk, message, node_id=node_id)
    return action


def _expand(submission, node_id, key):
    """Replace a ready foreach step by its instances, in one transaction that claims the step first.

    The claim (pending → skipped) makes a second expander — a duplicate
    message, two predecessors finishing at once on two workers — find the
    step taken and do nothing; a worker dying half-way leaves nothing behind.
    """
    node = Node.objects.select_related("task", "step", "submission__job").get(pk=node_id)
    try:
        with transaction.atomic():
            edges = edge_keys(submission.pk)
            found = foreach.items(submission, node, edges)
            if not lifecycle.skip(node_id, f"expanded into {len(found)} instances"):
                return
            apply_changes(node, foreach.expand(node, edges, found, graph_state(submission.pk), active_promises(submission)))
    except (foreach.ForeachError, mutations.OperationError, mutations.PromiseBroken) as error:
        _refuse(submission.pk, node_id, f"step '{key}': foreach: {error}")


def _refuse(submission_id, node_id, text):
    """A node cannot start (a bad condition or expansion): fail it and end the submission."""
    if lifecycle.refuse(node_id, text):
        stop(submission_id, SubmissionStatus.ERROR, text)


def _mark_waiting(submission, nodes):
    """The submission waits when its only unfinished nodes wait for people (not for sub-jobs)."""
    values = {node["status"] for node in nodes.values()}
    for_people = any(node["status"] == NodeStatus.WAITING and node["task__input_prompt"] for node in nodes.values())
    if for_people and not values & {NodeStatus.QUEUED, NodeStatus.RUNNING} and not any(
        node["status"] == NodeStatus.WAITING and not node["task__input_prompt"] for node in nodes.values()
    ):
        lifecycle.wait(submission.pk)
    elif submission.status == SubmissionStatus.WAITING and values & {NodeStatus.QUEUED, NodeStatus.RUNNING}:
        lifecycle.unwait(submission.pk)


def _advance_after(node_id):
    """Queue the successors of ``node_id`` that ``graph.decide`` queues; None means "use the full path".

    Falls back (returns None) whenever deciding changes more than one node's
    status (a skip, an expansion, a wait, a failure), a successor is
    disabled, or the submission is not running. [] means the successors
    still wait for other predecessors, or there are none.
    """
    successors = statements.successors(node_id, NodeStatus.DONE)
    if not successors:
        return []
    ready = []
    for row in successors:
        if row["submission_status"] != SubmissionStatus.RUNNING or row["source_status"] not in NodeStatus.DONE or not row["enabled"]:
            return None
        if row["status"] != NodeStatus.PENDING or row["unfinished"]:
            continue
        node = _ready_node(f"#{row['target_id']}", row["when"], row["foreach"], row["params"], row["prompt"])
        # A condition needs the submission's outputs: the full path loads them once for every node.
        if node.when or graph.decide(node, evaluate=None)[0] != graph.QUEUE:
            return None
        ready.append(row)
    queued = []
    for row in ready:
        made = lifecycle.queue(row["target_id"], broker.queue_name(row["queue_type"], row["priority"]))
        if made is not None:
            queued.append(made)
    return queued


def _busy(submission_id):
    """True while some node of the submission is queued or running."""
    return Node.objects.filter(submission_id=submission_id, status__in=(NodeStatus.QUEUED, NodeStatus.RUNNING)).exists()


# -- ending submissions ---------------------------------------------------------------------


def _finish(submission, status, statuses):
    done = sum(1 for value in statuses.values() if value in NodeStatus.DONE)
    text = f"{status}: {done} of {len(statuses)} steps done"
    if status == SubmissionStatus.COMPLETE:
        # Shape and component promises were judged on every growth; the finished graph is checked
        # exactly too, for patterns the early check cannot read.
        promises = active_promises(submission)
        try:
            judged = any(promise["kind"] in mutations.FUTURE_KINDS for promise in promises)
            broken = mutations.broken_shape(promises, graph_state(submission.pk)) if judged else None
        except mutations.OperationError as error:
            broken, status, text = None, SubmissionStatus.ERROR, f"a shape promise could not be checked: {error}"
        if broken:
            status, text = SubmissionStatus.ERROR, f"promise {mutations.describe(broken[0])} broken: {broken[1]}"
    # One transaction: nobody sees the submission finished without its last message, or a
    # sub-job finished while its parent's node still waits for it. The e-mail goes after.
    with transaction.atomic():
        if not lifecycle.finish(submission.pk, status, text):
            return []
        record(submission.pk, text, level=Message.Level.INFO if status == SubmissionStatus.COMPLETE else Message.Level.ERROR, last=False)
        queued = _return_to_parent(submission.pk, status, text) if submission.parent_node_id else []
        transaction.on_commit(lambda: notify.submission_finished(submission.pk))
    log.info("Submission %s finished as %s.", submission.pk, status)
    return queued


def _return_to_parent(child_id, status, text):
    """A sub-job ended: finish the parent node that waits for it; return what the parent queued."""
    child = Submission.objects.select_related("parent_node__submission").get(pk=child_id)
    parent = child.parent_node
    if parent is None:
        return []
    if status != SubmissionStatus.COMPLETE:
        reason = f"step '{parent.key}': sub-job {child.uuid} ended {status}: {text}"
        if lifecycle.child_ended(parent.pk, False, reason):
            stop(parent.submission_id, SubmissionStatus.ERROR, reason)
        return []
    parent_id = parent.submission.file_id
    for result in child.results.filter(node__isnull=False, superseded=False):
        name = result.name.replace(child.file_id, parent_id)  # the parent's steps look for <their ID><ending>
        copy = Result(submission_id=parent.submission_id, node=parent, name=name, ending=result.ending, size=result.size)
        with stored.reader(result.file) as handle:
            copy.file.save(name, File(handle), save=True)
    if not lifecycle.child_ended(parent.pk, True, f"sub-job {child.uuid} complete"):
        return []
    record(parent.submission_id, f"step '{parent.key}' succeeded: sub-job {child.uuid} complete", node=parent)
    return advance(parent.submission_id, finished=parent.pk)


def stop(submission_id, status, text, remaining=NodeStatus.CANCELLED, released=None, idle_before=None):
    """End a submission now: its unfinished nodes get ``remaining``; returns True if this call ended it.

    With ``idle_before``, only if it has waited for people (input, a resume) since before then.

    Sub-jobs of its waiting nodes are cancelled through their executor, and a
    sub-job that ends this way ends the node waiting for it. A sub-job that
    ends ``complete`` lets its parent go on: the parent's nodes that became
    ready are appended to ``released``, for the caller to run. Running nodes'
    workers see the change on their next beat and stop their runs.
    """
    # One transaction, so that nobody sees the submission ended with nodes still running,
    # or a sub-job ended while its parent's node still waits for it. The e-mail goes after.
    with transaction.atomic():
        if not lifecycle.finish(submission_id, status, text, idle_before=idle_before):
            return False
        subjobs = executors.get(QueueType.ExecutionBehaviour.JOB)
        waiting = Node.objects.filter(
            submission_id=submission_id, status=NodeStatus.WAITING, task__backend__queue_type__execution_behaviour=subjobs.behaviour,
        ).exclude(handle="")
        for handle in list(waiting.values_list("handle", flat=True)):
            subjobs.cancel(handle, reason=f"its parent submission stopped: {text}")
        lifecycle.end_nodes(submission_id, remaining, text)
        level = {SubmissionStatus.COMPLETE: Message.Level.INFO, SubmissionStatus.CANCELLED: Message.Level.WARNING}.get(status, Message.Level.ERROR)
        record(submission_id, text, level=level, last=False)
        ready = _return_to_parent(submission_id, status, text)
        transaction.on_commit(lambda: notify.submission_finished(submission_id))
    if released is not None:
        released.extend(ready)
    return True


def cancel(submission_id, reason="cancelled by request"):
    """Cancel a submission and its unfinished nodes; returns True if it was still active.

    Running nodes become ``cancelled`` at once; the heartbeat of the worker
    running each one sees that within a beat and stops its run.
    """
    return stop(submission_id, SubmissionStatus.CANCELLED, reason)


# -- running a node -------------------------------------------------------------------------


def run_node(node_id, worker="", watch=False, follower=None):
    """Run a queued node once and return the ids of nodes that should run next.

    A node that is no longer queued (a duplicate message, a cancel) is left
    alone. ``worker`` names the claimant (host:pid). With ``watch``, the
    process's watchdog renews the attempt's lease while it runs and stops its
    run as soon as the attempt no longer owns the node (a cancel, a
    takeover), so a reconciler can tell live workers from dead ones.
    ``follower`` (``follow.follower``) takes the runs of a followed executor
    (Slurm) once they have started, and concludes them when they end; without
    one such a node fails, as nothing here would see its run end.
    Any error after the claim fails the attempt with its real cause, then
    follows the task's retry policy.
    """
    node = statements.load(Node, node_id, "submission__job", "task__backend__queue_type")
    if node is None or node.status != NodeStatus.QUEUED:
        return []
    attempt = lifecycle.claim(node, worker)
    if attempt is None:
        return []
    submission = node.submission
    try:
        return _run_claimed(node, attempt, submission, watch, follower)
    except lifecycle.Fenced as fenced:
        _fenced_off(node, fenced)
        return []
    except Exception as error:  # the cause is recorded on the node; the next statement re-raises if it cannot be
        return _unexpected(node, attempt, error)


def _run_claimed(node, attempt, submission, watch, follower):
    if submission.status in SubmissionStatus.TERMINAL:
        lifecycle.cancel(attempt, f"not run: submission is {submission.status}")
        return []
    if submission.status == SubmissionStatus.PAUSED:  # e.g. a retry that came due during a pause
        lifecycle.defer(attempt)
        return []
    if submission.status == SubmissionStatus.SUBMITTED:
        lifecycle.start(submission.pk)
    try:
        executor = executors.get(node.task.backend.queue_type.execution_behaviour)
    except executors.ExecutorError as error:
        _fail(node, attempt, str(error), retryable=False)
        return advance(submission.pk, finished=node.pk)
    if executor.followed:
        return _start_followed(node, attempt, executor, follower)
    if not executor.attached:
        return _start_subjob(node, attempt, executor)
    workdir = workdirs.path_for(node)
    if watch:
        watchdog.add(attempt, executor)
    try:
        released = []  # nodes of a parent submission that this one's early end lets run
        retry = _attempt(node, attempt, executor, workdir, watch, released)
    finally:
        if watch:
            watchdog.remove(attempt)
        workdirs.remove(workdir)
    return ([node.pk] if retry else []) + released + advance(submission.pk, finished=node.pk)


def _fenced_off(node, fenced):
    """A stale attempt found the node taken from it: it changed nothing; say so."""
    now, number = fenced.now, fenced.attempt.number
    if now is not None and now[2] != fenced.attempt.fence:
        text = f"step '{node.key}' attempt {number} was taken over by attempt {now[1]}; what attempt {number} did was discarded"
        log.warning("Node %s: %s.", node.pk, text)
        record(node.submission_id, text, level=Message.Level.WARNING, node=node, last=False)
        _note(node, number, f"this attempt was taken over by attempt {now[1]} (its worker stopped renewing its lease); its run was stopped and its results discarded")
    else:
        log.info("Node %s attempt %s ended after its node became %s; its results were discarded.", node.pk, number, now and now[0])


def _note(node, attempt_number, text):
    """Add Sluice's words to an attempt's stderr log, if storage takes them (a full disk must not hide the failure itself)."""
    try:
        logs.note(node, attempt_number, text)
    except (OSError, DatabaseError):
        log.warning("Node %s: could not add to the log of attempt %s.", node.pk, attempt_number, exc_info=True)


def _unexpected(node, attempt, error):
    """An error nobody planned for, after the claim: fail the attempt with its real cause."""
    log.exception("Node %s attempt %s failed unexpectedly.", node.pk, attempt.number)
    lines = str(error).strip().splitlines()
    cause = f"{type(error).__name__}: {lines[0] if lines else '(no message)'}"
    _note(node, attempt.number, f"internal error after the step was claimed:\n{''.join(traceback.format_exception(error)).strip()}")
    try:
        retry = _fail(node, attempt, f"internal error: {cause}", retryable=True)
    except lifecycle.Fenced as fenced:
        _fenced_off(node, fenced)
        return []
    except DatabaseError:
        log.exception("Node %s: the unexpected failure could not be recorded; the reconciler will find the node.", node.pk)
        raise error from None
    return ([node.pk] if retry else []) + advance(node.submission_id, finished=node.pk)


def _start_subjob(node, attempt, executor):
    """Run another job as a child submission; the node waits (no process, no lease) until it ends."""
    parent = node.submission
    depth, ancestor = 1, parent
    while ancestor.parent_node_id:
        depth += 1
        ancestor = ancestor.parent_node.submission
    if depth > settings.SLUICE_MAX_SUBJOB_DEPTH:
        _fail(node, attempt, f"sub-job '{node.task.executable.strip()}' would be nested {depth} deep; the limit is SLUICE_MAX_SUBJOB_DEPTH ({settings.SLUICE_MAX_SUBJOB_DEPTH})", retryable=False)
        return advance(parent.pk)
    try:
        # The child's upload: the task's first in-glob file, or else the parent's own upload.
        if node.task.in_endings:
            used = _inputs(node, node.task.in_endings[:1])[2]
        else:
            used = list(Result.objects.filter(submission=parent, node__isnull=True, ending=".input"))
        upload = None
        if used:
            with stored.reader(used[0].file) as handle:
                upload = handle.read()
        step = _step_of(node)
        params = step.params if step is not None else {}
        run = executors.NodeRun(
            behaviour=executor.behaviour, executable=node.task.executable, workdir=None, file_id=parent.file_id, in_endings=[], out_endings=[],
            extra={
                "values": {**parent.params, **node.params}, "mapped": _mapped(node, params), "mapping": params,
                "upload": upload, "user": parent.user, "priority": parent.priority, "node": node,
            },
        )
        with transaction.atomic():
            lifecycle.hold(attempt)
            handle = executor.start(run)
            lifecycle.record_handle(attempt, handle)
            lifecycle.wait_for_child(attempt, f"running sub-job {run.extra['child'].uuid}")
            record(parent.pk, f"step '{node.key}' started sub-job {run.extra['child'].uuid} of job '{run.extra['child'].job.name}'", node=node)
    except (MissingInput, executors.ExecutorError) as error:
        _fail(node, attempt, str(error), retryable=False)
        return advance(parent.pk)
    except mappings.MappingError as error:
        _fail(node, attempt, f"sub-job '{node.task.executable.strip()}': {error}", retryable=False)
        return advance(parent.pk)
    return run.extra["ready"]


def _start_followed(node, attempt, executor, follower):
    """Start a detached run of processes (a cluster job) and give it to ``follower``; return what runs next.

    The node stays ``running`` with the run's handle; the follower renews its
    lease, stops it on a cancel or at its time limit, and concludes it with
    ``conclude_followed`` once it ends. A cached result or a run that cannot
    start is concluded here, as for an attached run.
    """
    if follower is None:
        _fail(node, attempt, f"a {executor.behaviour} step runs on a worker or under runjob, which follow its run; nothing follows it here", retryable=False)
        return advance(node.submission_id, finished=node.pk)
    workdir = workdirs.path_for(node)
    try:
        run, key, handle = _start_or_reuse(node, attempt, executor, workdir)
    except NOT_RUNNABLE as error:
        workdirs.remove(workdir)
        retry = _fail(node, attempt, str(error), retryable=False)
        return ([node.pk] if retry else []) + advance(node.submission_id, finished=node.pk)
    if handle is None:  # a cached run's results were reused
        return advance(node.submission_id, finished=node.pk)
    # Not recorded means the node was cancelled or taken meanwhile: the follower's first beat stops the run.
    lifecycle.record_handle(attempt, handle)
    follower.add(attempt, executor, handle, run, key)
    return []


def conclude_followed(node_id, attempt, executor, handle, finished, run=None, key=None, workdir=None):
    """Conclude a followed run that ended, as an attached run is concluded; return the ids of nodes that should run next.

    ``run`` is None when this process did not start the run (it took it over
    from a worker that died): it is described again from the node, in its
    ``workdir`` (the attempt's, which the node's current attempt may no longer be).
    """
    node = statements.load(Node, node_id, "submission__job", "task__backend__queue_type")
    if node is None:  # its submission was deleted meanwhile
        workdirs.remove(run.workdir if run is not None else workdir)
        return []
    released = []
    try:
        if run is None:
            run, used = _prepare(node, workdir)
            key = _cache_key(node, run, used)
        try:
            outcome = executor.collect(run, handle, finished)
            logs.keep(node, attempt.number, outcome.stdout_path, outcome.stderr_path)
            retry = _conclude(node, attempt, run, outcome, key, released)
        finally:
            workdirs.remove(run.workdir)
    except lifecycle.Fenced as fenced:
        _fenced_off(node, fenced)
        return []
    except Exception as error:  # the cause is recorded on the node, as for an attached run
        return _unexpected(node, attempt, error)
    return ([node.pk] if retry else []) + released + advance(node.submission_id, finished=node.pk)


def _step_of(node):
    """The step whose settings a node follows: its own, or for a foreach instance (which has none) its foreach step's."""
    if node.step_id is None and "$INDEX" in node.params and node.added_by:
        expanded = Node.objects.filter(submission_id=node.submission_id, key=node.added_by).select_related("step").first()
        if expanded is not None and expanded.step is not None:
            return expanded.step
    return node.step if node.step_id else None


def _mapped(node, params):
    """Evaluate a sub-job step's ``params`` on the parent's parameters, its nodes' outputs and the instance's item.

    Raises:
        mappings.MappingError: an entry cannot be evaluated, or gives no single value.
    """
    if not params:
        return {}
    context = {**node.submission.params, **{name: value for name, value in node.params.items() if not name.startswith("$")}}
    context.update(Node.objects.filter(submission_id=node.submission_id).exclude(outputs={}).values_list("key", "outputs"))
    return mappings.evaluate(params, context, item=node.params.get("$ITEM"), index=node.params.get("$INDEX"))


def _attempt(node, attempt, executor, workdir, watch=False, released=None):
    """Run the attempt to its end and record the verdict; return True when it should be retried.

    When the step ends its submission early and that submission is a sub-job,
    the parent's nodes that this lets run are appended to ``released``.
    """
    try:
        run, key, handle = _start_or_reuse(node, attempt, executor, workdir)
    except NOT_RUNNABLE as error:
        return _fail(node, attempt, str(error), retryable=False)
    if handle is None:  # a cached run's results were reused
        return False
    if watch:
        watchdog.started(attempt, handle)
    finished = executor.wait(handle, run.timeout)
    outcome = executor.collect(run, handle, finished)
    logs.keep(node, attempt.number, outcome.stdout_path, outcome.stderr_path)  # every attempt's, a stale one's too
    return _conclude(node, attempt, run, outcome, key, released)


def _conclude(node, attempt, run, outcome, key, released):
    """Judge a finished run and record it, its results and the graph it grew, in one fenced transaction."""
    task = node.task
    verdict = verdicts.judge(
        exit_code=outcome.exit_code, timed_out=outcome.timed_out, timeout=run.timeout, missing=outcome.missing,
        custom_statuses=task.exit_statuses, custom_behaviour=task.custom_exit_behaviour, incomplete_behaviour=task.incomplete_outputs_behaviour,
        reason=outcome.reason,
    )
    qc = quality.check(task.qc, outcome.outputs) if verdict.succeeded else quality.QC()
    changes = refused = None
    if verdict.succeeded and not (qc.failed and not qc.terminate):
        try:
            changes = plan_changes(node, mutations.parse_lines(outcome.control))
        except (mutations.OperationError, mutations.PromiseBroken) as error:
            refused = error
    message = "; ".join(text for text in (verdict.message, qc.message) if text)
    if verdict.succeeded and not outcome.outputs and changes is None and refused is None and attempt.number == 1:
        # Nothing to store or grow (the common case): the fenced success is the only write that counts.
        if not lifecycle.succeed(attempt, message, exit_code=outcome.exit_code, command=outcome.command, **_provenance(outcome)):
            raise lifecycle.Fenced(attempt, lifecycle.now_of(attempt.node_id))
        record(node.submission_id, _success_text(node, outcome, message), node=node)
    else:
        ended = _conclude_with_writes(node, attempt, verdict, qc, outcome, changes, refused, message)
        if ended != NodeStatus.SUCCEEDED:
            return ended == NodeStatus.QUEUED  # retried, or failed for good
    if key:
        caching.remember(key, node)
    if verdict.terminate or qc.failed:
        stop(node.submission_id, SubmissionStatus.COMPLETE, f"step '{node.key}' {message}", remaining=NodeStatus.SKIPPED, released=released)
    return False


def _conclude_with_writes(node, attempt, verdict, qc, outcome, changes, refused, message):
    """Record a run's results, verdict and growth in one transaction that starts by holding the attempt's fence.

    Returns the node's new status: succeeded, queued (a retry) or failed.
    """
    saved = []
    try:
        with transaction.atomic():
            lifecycle.hold(attempt, command=outcome.command, **_provenance(outcome))
            _replace_results(node, attempt, outcome.outputs, saved)
            if not verdict.succeeded:
                retried = _fail(node, attempt, f"{verdict.message}\n{outcome.stderr_tail}".strip(), exit_code=outcome.exit_code, retryable=True)
                return NodeStatus.QUEUED if retried else NodeStatus.FAILED
            if qc.failed and not qc.terminate:
                _fail(node, attempt, qc.message, exit_code=outcome.exit_code, retryable=False)
                return NodeStatus.FAILED
            if refused is not None:
                lifecycle.fail(attempt, str(refused), exit_code=outcome.exit_code)
                stop(node.submission_id, SubmissionStatus.ERROR, f"step '{node.key}': {refused}")
                return NodeStatus.FAILED
            apply_changes(node, changes)  # the graph grows before any successor of this node can start
            lifecycle.succeed(attempt, message, exit_code=outcome.exit_code)
            record(node.submission_id, _success_text(node, outcome, message), node=node)
            return NodeStatus.SUCCEEDED
    except BaseException:
        for name in saved:  # the rows went with the rollback; their files must go too
            Result.file.field.storage.delete(name)
        raise


def _start_or_reuse(node, attempt, executor, workdir):
    """Describe the attempt's run and start it, or reuse an earlier run's results; return ``(run, cache key, handle)``.

    The handle is None when cached results were reused (the node is done).

    Raises:
        any of NOT_RUNNABLE: the run cannot be described or started.
    """
    run, used = _prepare(node, workdir)
    key = _cache_key(node, run, used)
    source = caching.find(node, key) if key else None
    if source is not None:
        _reuse(node, attempt, source)
        return run, key, None
    return run, key, executor.start(run)


def _cache_key(node, run, used):
    """The run's cache key, or None for a task that is not cached (a dynamic one never is: its growth is not replayed)."""
    return caching.key_for(node, run, used) if node.task.cache and not node.task.dynamic else None


def _provenance(outcome):
    """Fields that say what the run used, written with its verdict: the container image's digest."""
    return {"image_digest": outcome.image_digest} if outcome.image_digest else {}


def _success_text(node, outcome, message):
    return f"step '{node.key}' succeeded in {outcome.duration:.2f} s" + (f" ({message})" if message else "")


def _fail(node, attempt, detail, exit_code=None, retryable=True):
    """Record a failed attempt; queue a retry if the task allows one, else fail the node and its submission.

    Raises ``lifecycle.Fenced`` when the attempt no longer owns the node.
    """
    summary = detail.splitlines()[0] if detail else "failed"
    with transaction.atomic():
        if retryable and attempt.number <= node.task.retries:
            delay = retry_delay(attempt.number)
            if not lifecycle.retry(attempt, detail, exit_code, delay):
                raise lifecycle.Fenced(attempt, lifecycle.now_of(attempt.node_id))
            record(node.submission_id, f"step '{node.key}' attempt {attempt.number} failed: {summary}; retrying in {delay:g} s", level=Message.Level.WARNING, node=node)
            return True
        if not lifecycle.fail(attempt, detail, exit_code=exit_code):
            raise lifecycle.Fenced(attempt, lifecycle.now_of(attempt.node_id))
        record(node.submission_id, f"step '{node.key}' failed: {summary}", level=Message.Level.ERROR, node=node)
        stop(node.submission_id, SubmissionStatus.ERROR, f"step '{node.key}' failed: {summary}", remaining=NodeStatus.CANCELLED)
    return False


# -- graph mutations ------------------------------------------------------------------------


def active_promises(submission):
    """The job's registered promises and those made at run time."""
    runtime = [{key: value for key, value in promise.items() if key != "by"} for promise in submission.promises]
    return [promise.as_dict() for promise in submission.job.promises.all()] + runtime


def graph_state(submission_id):
    """The run graph as plain data, with which nodes may still grow it and which may still be skipped."""
    rows = Node.objects.filter(submission_id=submission_id).values_list(
        "key", "task__name", "status", "task__dynamic", "enabled", "step__when", "step__foreach", "params"
    )
    nodes, growing, optional = {}, set(), set()
    for key, task, status, dynamic, enabled, when, foreach_source, params in rows:
        nodes[key] = (task, status)
        expands = bool(foreach_source) and "$INDEX" not in (params or {}) and status == NodeStatus.PENDING
        if expands or (dynamic and status in NodeStatus.ACTIVE):
            growing.add(key)
        if status == NodeStatus.PENDING and (expands or not enabled or when):
            optional.add(key)
    return mutations.GraphState(nodes, set(edge_keys(submission_id)), growing, optional)


def plan_changes(node, operations):
    """Check a node's control-channel operations; return the plan, or None when it sent none.

    Raises:
        mutations.OperationError, mutations.PromiseBroken
    """
    if not operations:
        return None
    known = dict(Task.objects.values_list("name", "dynamic"))
    return mutations.plan(
        graph_state(node.submission_id), operations, node=node.key, dynamic=node.task.dynamic,
        tasks=set(known), promises=active_promises(node.submission), dynamic_tasks={name for name, dynamic in known.items() if dynamic},
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


def retry_delay(attempt):
    """Seconds to wait before retry number ``attempt``: exponential, capped."""
    return min(settings.SLUICE_RETRY_BACKOFF * 2 ** (attempt - 1), settings.SLUICE_RETRY_BACKOFF_MAX)


def record(submission_id, text, level=Message.Level.INFO, node=None, node_id=None, last=True):
    """Add a message to the submission's timeline and (unless ``last`` is False: the caller has) make it the last message."""
    message = {"submission_id": submission_id, "node_id": node.pk if node is not None else node_id, "level": level, "text": text}
    if last:
        statements.insert_then_update(Message, message, Submission, submission_id, last_message=text)
    else:
        statements.insert(Message, **message)


def edge_keys(submission_id):
    return list(Edge.objects.filter(submission_id=submission_id).values_list("source__key", "target__key"))


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
        node_id=node.pk,
        attempt=node.attempt,
        resources=dict(task.resources or {}),
        image=task.image,
        container_options=dict(task.container_options or {}),
        compat=submission.job.compat,
        extra={"options": dict(task.backend.options or {})},
    ), used


def _inputs(node, endings):
    """Find the files a node reads: ``(writers by staged name, staged names per ending, results used)``.

    An ending takes the nearest done ancestor's file (then the upload); a
    foreach instance over files takes its own file; a "*" ending gathers
    every done ancestor's file with that ending, staged as ``<ID>.<n><ending>``.
    A job with ``compat: aa`` stages as Analytics Automated did: a step with
    no ancestor gets the upload under its first ending (``_aa_first_inputs``),
    a later one every done ancestor's file with an ending (``_aa_add_earlier``),
    and a missing file is left out.

    Raises:
        MissingInput: no ancestor, nor the upload, has a file with a (non-gathering) ending (never for ``compat: aa``).
    """
    if not endings:
        return {}, [], []
    ancestors = graph.ancestors_nearest_first(node.key, edge_keys(node.submission_id))
    compat = node.submission.job.compat == Compat.AA
    if compat and not ancestors:
        return _aa_first_inputs(node, endings)
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
        matching = sorted((r for r in candidates if r.ending == ending), key=lambda r: (len(rank) if r.node_id is None else rank[r.node.key], r.pk))
        chosen = next((r for r in matching if r.pk == own), None) or (matching[0] if matching else None)
        name = f"{node.submission.file_id}{ending}"
        names.append(name)
        if chosen is None:
            if compat:  # A_A ran the step without it (its check is commented out: tasks.py, get_data)
                continue
            raise MissingInput(node.key, ending)
        writers[name] = _writer(chosen)
        used.append(chosen)
        if compat:
            _aa_add_earlier(node, ending, [r for r in matching if r.node_id and r is not chosen], writers, used)
    return writers, names, used


def _aa_first_inputs(node, endings):
    """A_A's first stage: the upload, staged under the first in-glob ending, and nothing else (tasks.py, get_data)."""
    file_id = node.submission.file_id
    names = [[] if ending.startswith("*") else f"{file_id}{ending}" for ending in endings]
    upload = Result.objects.filter(submission_id=node.submission_id, node__isnull=True, ending=".input", superseded=False).order_by("pk").first()
    if upload is None or endings[0].startswith("*"):
        return {}, names, []
    return {names[0]: _writer(upload)}, names, [upload]


def _aa_add_earlier(node, ending, others, writers, used):
    """Stage every other earlier result with ``ending`` too, as A_A copied them all (tasks.py, get_data).

    They are named ``<ID>.aa<n><ending>``, nearest first: the name is Sluice's,
    never the user's, and still ends with the ending a step may look for.
    """
    for number, result in enumerate(others, start=1):
        name = f"{node.submission.file_id}.aa{number}{ending}"
        if name not in writers:
            writers[name] = _writer(result)
            used.append(result)


def _writer(result):
    def write(destination):
        stored.copy_to(result.file, destination)  # in chunks, from a directory or a bucket alike

    return write


def _value(submission):
    upload = Result.objects.filter(submission=submission, node__isnull=True, ending=".input").first()
    if upload is None or upload.size > VALUE_LIMIT:
        return ""
    with stored.reader(upload.file) as handle:
        return handle.read().decode("utf-8", "replace")


def delete_results(results):
    """Delete result rows and their stored files."""
    for result in results:
        result.file.delete(save=False)
        result.delete()


def _replace_results(node, attempt, outputs, saved):
    """Make ``outputs`` the node's results in place of an earlier attempt's; append each stored file's name to ``saved``."""
    if attempt.number > 1:  # only an earlier attempt of this run can have left results (a restart supersedes them)
        delete_results(Result.objects.filter(node=node, superseded=False))
    for ending, path in outputs:
        result = Result(submission_id=node.submission_id, node=node, name=path.name, ending=ending, size=path.stat().st_size)
        with open(path, "rb") as handle:
            result.file.save(path.name, File(handle), save=False)
        saved.append(result.file.name)
        result.save()


def _reuse(node, attempt, source):
    """Give the node the results of an earlier run of the same key (``source``, a node) and mark it cached."""
    with transaction.atomic():
        lifecycle.hold(attempt)
        delete_results(Result.objects.filter(node=node, superseded=False))
        caching.copy_results(source, node)
        text = f"reused the results of step '{source.key}' in an earlier submission (cache)"
        lifecycle.cache(attempt, text, source.outputs)
        record(node.submission_id, f"step '{node.key}' {text}", node=node, last=False)


def job_by_name(name):
    """Return the job called ``name``, with what submitting needs loaded; shared by the process's threads, so never changed.

    Raises:
        SubmissionInvalid: there is no such job.
    """
    try:
        return catalogue.job(name)
    except Job.DoesNotExist:
        raise SubmissionInvalid({"job": f"there is no job '{name}'"}) from None
